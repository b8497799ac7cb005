"""Image Factory: rebuild container images when the public base images under them change."""

__version__ = "0.1.0"
