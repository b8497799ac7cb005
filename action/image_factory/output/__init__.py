"""What people read: command reports, where each image stands, the status site (which also writes
its folder and draws the graph with Graphviz) and the dashboard issue's body."""
