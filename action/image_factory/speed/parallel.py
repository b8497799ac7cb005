"""Work done in a forked process while this one does something else."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Generic, TypeVar

if TYPE_CHECKING:
    from concurrent.futures import Future

Result = TypeVar("Result")

# Below this many files a second process costs more (start-up, pickling) than it saves.
WORTHWHILE_FILES = 2000


class Pending(Generic[Result]):
    """A result computed in the background, or on demand when it runs inline."""

    def __init__(self, future: Future | None, thunk: Callable[[], Result]):
        self._future, self._thunk = future, thunk

    def result(self) -> Result:
        return self._future.result() if self._future is not None else self._thunk()


def can_fork() -> bool:
    """Two usable CPUs and fork (Linux): a child starts at once and shares what is loaded."""
    import multiprocessing

    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    return cpus >= 2 and "fork" in multiprocessing.get_all_start_methods()


@contextmanager
def background(function: Callable[..., Result], *args, worthwhile: bool = True) -> Iterator[Pending[Result]]:
    """`function(*args)` in a forked process for the duration of the block (its result must
    pickle; an exception in it is raised by `result()`); inline, when asked for, if forking is
    not `worthwhile` or not possible."""
    if not (worthwhile and can_fork()):
        yield Pending(None, lambda: function(*args))
        return
    # Imported only when forking: they cost a small command 15 ms.
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("fork")) as pool:
        yield Pending(pool.submit(function, *args), lambda: function(*args))
