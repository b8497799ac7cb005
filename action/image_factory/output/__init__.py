"""What people read: command reports, where each image stands, the dependency graph, the status site
and the dashboard issue's body. Pure functions: the CLI prints what they return."""
