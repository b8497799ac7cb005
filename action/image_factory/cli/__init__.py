"""The `image-factory` command line: one module per command group, argument parsing and output only."""

from image_factory.cli.app import main

__all__ = ["main"]
