"""Signatures and the trust boundary of events."""
