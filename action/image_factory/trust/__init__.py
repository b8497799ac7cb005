"""Who may vouch for a digest: cosign signatures checked in Python, and the trust boundary of the
events the factory receives."""
