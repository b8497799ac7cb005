"""Dockerfiles to base images, and the discover job."""
