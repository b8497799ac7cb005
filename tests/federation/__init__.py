"""A team repository's pull request to the factory."""
