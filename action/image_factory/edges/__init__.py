"""Outside systems: GitHub through PyGithub (the client every GitHub call starts from, workflow
dispatches, the dashboard issue) and OCI registries."""
