"""Fixed-window counters per client, in memory or in Redis shared by every instance."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import structlog
from limits import RateLimitItemPerSecond
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import FixedWindowRateLimiter

from orderhub.kit.failures import in_words
from orderhub.settings import Settings

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    limit: int
    remaining: int
    reset_at: int  # Unix seconds when the window ends

    @property
    def retry_after(self) -> int:
        return max(1, self.reset_at - int(time.time()))


def limits_redis_uri(redis_url: str) -> str:
    """`redis://h:p/0` -> `async+redis://h:p/0` (the `limits` async storage scheme)."""
    scheme, _, rest = redis_url.partition("://")  # the scheme was checked by Settings
    return f"async+{scheme}://{rest}"


class RateLimiter:
    def __init__(self, settings: Settings, on_failure: Callable[[], None] | None = None) -> None:
        self.item = RateLimitItemPerSecond(
            settings.rate_limit_max, settings.rate_limit_window_seconds
        )
        self.backend = "redis" if settings.redis_url else "memory"
        self._storage: Storage
        if settings.redis_url:
            self._storage = RedisStorage(
                limits_redis_uri(settings.redis_url),
                implementation="redispy",
                wrap_exceptions=True,
                # long enough for a busy instance, short enough that a hung Redis only
                # delays requests briefly before they pass (SPEC §5)
                socket_timeout=2,
                socket_connect_timeout=1,
            )
        else:
            self._storage = MemoryStorage()
        self._strategy = FixedWindowRateLimiter(self._storage)
        self.failures = 0
        self.last_error: str | None = None
        self._on_failure = on_failure

    async def hit(self, client: str) -> Decision | None:
        """Count one request; None when the counter store failed (the request passes)."""
        try:
            allowed = await self._strategy.hit(self.item, client)
            stats = await self._strategy.get_window_stats(self.item, client)
        except Exception as exc:
            self.failures += 1
            self.last_error = in_words(exc)
            if self._on_failure is not None:
                self._on_failure()
            log.warning(
                "rate_limit_backend_failed",
                backend=self.backend,
                error=self.last_error,
                error_type=type(exc).__name__,
            )
            return None
        return Decision(
            allowed=allowed,
            limit=self.item.amount,
            remaining=max(0, stats.remaining),
            reset_at=int(stats.reset_time),
        )

    async def ping(self) -> bool:
        try:
            return bool(await self._storage.check())
        except Exception:
            return False
