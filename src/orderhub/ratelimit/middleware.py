"""ASGI middleware: count every /api/ and /sandbox/ request before authentication."""

from __future__ import annotations

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from orderhub.auth.service import Authenticator
from orderhub.kit.envelope import error_response
from orderhub.kit.errors import Unauthorized
from orderhub.ratelimit.clientip import Network, client_ip
from orderhub.ratelimit.limiter import Decision, RateLimiter
from orderhub.store.protocol import StoreError

# The sandbox's pages and JSON confirm need no credential: counted like the API.
COUNTED = ("/api/", "/sandbox/")
TOO_MANY = "Too many requests from this IP, please try again later."


def _headers(decision: Decision) -> dict[str, str]:
    return {
        "X-RateLimit-Limit": str(decision.limit),
        "X-RateLimit-Remaining": str(decision.remaining),
        "X-RateLimit-Reset": str(decision.reset_at),
    }


class RateLimitMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        limiter: RateLimiter,
        trusted_proxies: list[Network],
        by: str,
        authenticator: Authenticator,
    ) -> None:
        self.app = app
        self.limiter = limiter
        self.trusted_proxies = trusted_proxies
        self.by = by
        self.authenticator = authenticator

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(COUNTED):
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        peer = scope.get("client")
        # Every X-Forwarded-For line, in order: a proxy may add a line of its own rather
        # than append to the client's.
        forwarded = ",".join(headers.getlist("x-forwarded-for")) or None
        ip = client_ip(peer[0] if peer else None, forwarded, self.trusted_proxies)
        client = f"ip:{ip}"
        if self.by == "credential":
            client = await self._credential_client(scope, headers) or client
        decision = await self.limiter.hit(client)
        # The counter store failed: the request passes, and says only what the limit is.
        limit_headers = (
            _headers(decision)
            if decision is not None
            else {"X-RateLimit-Limit": str(self.limiter.item.amount)}
        )
        if decision is not None and not decision.allowed:
            response = error_response(
                429,
                TOO_MANY,
                code="rate_limited",
                headers={**limit_headers, "Retry-After": str(decision.retry_after)},
            )
            await response(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                mutable = MutableHeaders(scope=message)
                for name, value in limit_headers.items():
                    mutable[name] = value
            await send(message)

        await self.app(scope, receive, send_with_headers)

    async def _credential_client(self, scope: Scope, headers: Headers) -> str | None:
        """In `credential` mode a verified caller is counted by identity; anything else
        (no or bad credentials) still by IP. The verified caller is kept for the route."""
        if not headers.get("x-api-key") and not headers.get("authorization"):
            return None
        try:
            caller = await self.authenticator.authenticate(
                headers.get("x-api-key"), headers.get("authorization")
            )
        except (Unauthorized, StoreError):
            return None
        scope.setdefault("state", {})["caller"] = caller
        return f"caller:{caller.identity}"
