"""The status site, the dashboard issue and the graph."""
