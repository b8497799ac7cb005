"""What is rebuilt, when and on what: the planner, applying events to state files, dispatching
builds, rollbacks, promotions, platforms and what a build needs to pin its bases."""
