"""Python's cycle collector, paused for one command."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def paused() -> Iterator[None]:
    """Run without the cycle collector, then restore it.

    Loading a large factory allocates millions of long-lived objects, and each collection rescans
    all of them: a quarter of a 10,000-image run. A command lives seconds and makes no cycles
    worth collecting; reference counting still frees everything else.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
