"""Failed sign-ins, counted per (client address, user) and locked out when they pile up.

The rule is NOBA's, applied to every API: `failures` failed attempts within `window` seconds
lock that pair out for `lockout` seconds, during which even the right password is refused
with 429 and `Retry-After`. Successes are not counted. The counts live in this process's
memory (the `limits` package's storage), so each API process keeps its own.
"""

from __future__ import annotations

import math
import time
from urllib.parse import quote

from limits import RateLimitItemPerSecond
from limits.storage import MemoryStorage, Storage
from limits.strategies import FixedWindowRateLimiter, MovingWindowRateLimiter

from api.errors import ApiError

UNKNOWN_ADDRESS = "unknown"


class LockedOut(ApiError):
    """429: too many failed attempts for this client and user; `Retry-After` says how long."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(
            429,
            f"too many failed sign-in attempts: try again in {retry_after} seconds",
            error="too many requests",
        )
        self.headers = {"Retry-After": str(retry_after)}


class LoginThrottle:
    """The failed sign-ins of one API process."""

    def __init__(
        self,
        *,
        failures: int = 5,
        window_seconds: int = 60,
        lockout_seconds: int = 300,
        storage: Storage | None = None,
    ) -> None:
        storage = storage or MemoryStorage()
        self._failures = MovingWindowRateLimiter(storage)
        self._lockouts = FixedWindowRateLimiter(storage)
        self._failure_rule = RateLimitItemPerSecond(failures, window_seconds, namespace="FAILED")
        self._lockout_rule = RateLimitItemPerSecond(1, lockout_seconds, namespace="LOCKED")

    @staticmethod
    def _pair(address: str | None, user: str) -> tuple[str, str]:
        # limits joins identifiers with "/": quoting keeps ("a/b", "c") and ("a", "b/c") apart.
        who = user.strip().lower()
        return quote(address or UNKNOWN_ADDRESS, safe=""), quote(who, safe="")

    def retry_after(self, address: str | None, user: str) -> int | None:
        """Seconds until this pair may try again; None when it is not locked out."""
        pair = self._pair(address, user)
        if self._lockouts.test(self._lockout_rule, *pair):
            return None
        reset = self._lockouts.get_window_stats(self._lockout_rule, *pair).reset_time
        return max(1, math.ceil(reset - time.time()))

    def check(self, address: str | None, user: str) -> None:
        """LockedOut while this pair is locked out; checked before any password is."""
        wait = self.retry_after(address, user)
        if wait is not None:
            raise LockedOut(wait)

    def failed(self, address: str | None, user: str) -> None:
        """Count one failed attempt; the one that reaches the limit starts the lockout."""
        pair = self._pair(address, user)
        self._failures.hit(self._failure_rule, *pair)
        if not self._failures.test(self._failure_rule, *pair):
            self._lockouts.hit(self._lockout_rule, *pair)
            # A fresh count once the lockout ends, not a relock at the first new failure.
            self._failures.clear(self._failure_rule, *pair)
