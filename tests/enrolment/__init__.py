"""images.yaml read, checked against the schemas, with file and line in every error."""
