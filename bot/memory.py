"""Keeping the resident memory of ``pgdb-bot run`` close to what it really uses (glibc only),
and the cyclic garbage collector out of the way of a pass over a large fleet.

glibc's malloc gives threads their own arenas (up to eight per core) and rarely hands freed
memory back to the system. Commands run on worker threads, and one ``/pgdb status`` over
thousands of apps allocates tens of MiB for a moment: after a burst of them, the process kept
more than twice what it was using (``bench/chat.py``, README "Benchmarks"). Two arenas are
plenty for a bot that mostly waits on the network, and trimming once the last running command
has finished returns the freed pages. On other C libraries (musl, macOS) both do nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import gc
import logging

log = logging.getLogger(__name__)

_M_ARENA_MAX = -8  # mallopt parameter, from glibc's malloc.h

# A diagnostics pass or a fleet `status` over 5,000 apps makes about a million short-lived
# objects. With Python's default thresholds (700, 10, 10) the cyclic collector runs some
# thousand times during one pass and walks the older objects again and again: 0.1 s of a
# 0.8 s pass (bench/run.py). Reference counting frees nearly all of them anyway; the
# collector is only for cycles, which a pass makes few of, so it can run far less often.
GC_THRESHOLDS = (50_000, 20, 20)


def tune_collector() -> None:
    """Collect cycles less often (``GC_THRESHOLDS`` says why); the same in every command."""
    gc.set_threshold(*GC_THRESHOLDS)


@functools.cache
def _glibc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        libc = ctypes.CDLL(name)
    except OSError:
        return None
    if not hasattr(libc, "malloc_trim") or not hasattr(libc, "mallopt"):
        return None  # not glibc
    return libc


def limit_arenas(*, count: int = 2) -> bool:
    """At most ``count`` malloc arenas from now on (call before starting threads); True when
    applied. ``MALLOC_ARENA_MAX`` in the environment does the same from the start."""
    libc = _glibc()
    if libc is None:
        return False
    return bool(libc.mallopt(_M_ARENA_MAX, count))


def trim() -> bool:
    """Give memory freed by finished commands back to the system; True when some was."""
    libc = _glibc()
    if libc is None:
        return False
    try:
        return bool(libc.malloc_trim(0))
    except OSError:  # pragma: no cover - a libc without a working malloc_trim
        log.debug("malloc_trim failed", exc_info=True)
        return False
