"""Outside systems the factory calls: GitHub (workflow dispatches, the dashboard issue) and OCI
registries. Every network call of the tool lives here."""
