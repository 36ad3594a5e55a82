"""Heartbeating while a blocking call works: a slow clone, fetch or planner must not look like
a lost worker to an activity with a heartbeat timeout."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import TypeVar

T = TypeVar("T")
# Well inside the shortest heartbeat timeout the workflows give (15 s).
HEARTBEAT_SECONDS = 5.0


def while_heartbeating(
    call: Callable[[], T], beat: Callable[[], object], every: float = HEARTBEAT_SECONDS
) -> T:
    """`call()`'s result (or its exception), calling `beat()` every `every` seconds meanwhile.

    The call runs in a thread of its own; `beat` runs in the caller's, where the activity's
    context is."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        future = pool.submit(call)
        while True:
            try:
                return future.result(timeout=every)
            except FutureTimeout:
                beat()
