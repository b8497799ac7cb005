"""Work in a second process."""
