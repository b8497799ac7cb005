"""What is rebuilt, when and on what: the planner, runtime events, dispatching builds, rollbacks,
promotions and what a build needs to pin its bases."""
