"""What images.yaml says: reading it (with file and line for every value), the enrolment model,
image references, the JSON Schemas, and the values a schema cannot bound."""
