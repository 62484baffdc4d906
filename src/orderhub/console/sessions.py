"""Signing in to the operator console: an API key exchanged for a server-side session.

The browser holds a random token in an HttpOnly cookie; the store keeps only the token's
SHA-256 and the SHA-256 of the key, so every request can check that the key is still
accepted (a revoked key ends its sessions at their next request) and sign-out deletes the
session. Sessions expire after `IDLE` without a request. Each session's CSRF token is an
HMAC of its token under a secret shared by every instance on the store, so no second
value needs keeping. Sign-in attempts are counted by the API's rate limiter, by client IP.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from orderhub.auth.keys import hash_key
from orderhub.auth.service import Authenticator
from orderhub.kit.clock import Clock
from orderhub.ratelimit.clientip import Network, client_ip
from orderhub.ratelimit.limiter import Decision, RateLimiter
from orderhub.store.protocol import ConsoleSession, Store

IDLE = timedelta(hours=8)
EXTEND_EVERY = timedelta(minutes=1)  # the idle expiry is written at most this often
SIGNING_NAME = "console-csrf"  # the store secret CSRF tokens are made with


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class SignIn:
    """The outcome of a sign-in attempt: a new session (and its token, for the cookie),
    or a refusal; `limited` tells a refusal by the rate limit."""

    token: str | None = None
    session: ConsoleSession | None = None
    limited: Decision | None = None


class ConsoleSessions:
    def __init__(
        self,
        store: Store,
        authenticator: Authenticator,
        limiter: RateLimiter,
        trusted_proxies: Sequence[Network],
        clock: Clock,
    ) -> None:
        self._store = store
        self._authenticator = authenticator
        self._limiter = limiter
        self._trusted = list(trusted_proxies)
        self._clock = clock

    async def sign_in(self, api_key: str, peer: str | None, forwarded: str | None) -> SignIn:
        """Count the attempt (as the API counts requests), then check the key. Raises
        Unauthorized for a key that is not accepted."""
        decision = await self._limiter.hit(f"ip:{client_ip(peer, forwarded, self._trusted)}")
        if decision is not None and not decision.allowed:
            return SignIn(limited=decision)
        caller = await self._authenticator.authenticate(api_key, None)
        token = secrets.token_urlsafe(32)
        now = self._clock.now()
        session = ConsoleSession(
            token_hash=_digest(token),
            key_hash=hash_key(api_key),
            identity=caller.identity,
            created_at=now,
            expires_at=now + IDLE,
        )
        await self._store.console_sessions.add(session)
        return SignIn(token=token, session=session)

    async def resume(self, token: str) -> ConsoleSession | None:
        """The session of a cookie's token, if it is live and its key still accepted; its
        idle expiry moves forward."""
        if not token:
            return None
        now = self._clock.now()
        session = await self._store.console_sessions.get(_digest(token), now)
        if session is None:
            return None
        if not await self._authenticator.key_accepted(session.key_hash):
            await self._store.console_sessions.delete(session.token_hash)
            return None
        if session.expires_at - now < IDLE - EXTEND_EVERY:
            await self._store.console_sessions.extend(session.token_hash, now + IDLE)
        return session

    async def sign_out(self, token: str) -> None:
        if token:
            await self._store.console_sessions.delete(_digest(token))

    async def csrf_token(self, session: ConsoleSession) -> str:
        secret = await self._store.server_secret(SIGNING_NAME)
        return hmac.new(secret, session.token_hash.encode(), hashlib.sha256).hexdigest()

    async def csrf_valid(self, session: ConsoleSession, presented: str) -> bool:
        return bool(presented) and hmac.compare_digest(await self.csrf_token(session), presented)
