"""Idempotency-Key (SPEC §8): replay, 422 on a different request, 409 while in flight.

A handler is run through `IdempotencyService.run`. It receives a *resource id* that is
the same for every attempt with the same key, so a retried create reuses its order id
(and thereby the provider's idempotency key) even after a failure in the middle.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta

import structlog
from starlette.responses import Response

from orderhub.kit.clock import Clock
from orderhub.kit.envelope import app_error_response
from orderhub.kit.errors import AppError, BadRequest, Conflict, IdempotencyMismatch
from orderhub.kit.ids import new_id
from orderhub.store.protocol import IdempotencyRecord, IdempotencyRepository

log = structlog.get_logger(__name__)

LOCK_SECONDS = 60
MAX_KEY_LENGTH = 255
REPLAY_HEADER = "Idempotent-Replayed"

Handler = Callable[[uuid.UUID], Awaitable[Response]]


def fingerprint(method: str, path: str, canonical_body: str) -> str:
    return hashlib.sha256(f"{method}\x00{path}\x00{canonical_body}".encode()).hexdigest()


def scope_of(caller: str) -> str:
    """Callers' identities can be long (JWT iss + sub); the store keeps a fixed-size hash."""
    return hashlib.sha256(caller.encode()).hexdigest()


def _remembered(status_code: int) -> bool:
    """400s and 5xx are not remembered, so a retry runs again."""
    return status_code != 400 and status_code < 500


class IdempotencyService:
    def __init__(self, repository: IdempotencyRepository, clock: Clock, ttl_hours: int) -> None:
        self._repository = repository
        self._clock = clock
        self._ttl = timedelta(hours=ttl_hours)

    async def run(
        self,
        *,
        caller: str,
        key: str | None,
        method: str,
        path: str,
        canonical_body: str,
        handler: Handler,
    ) -> Response:
        if key is None:
            response, _ = await self._call(handler, new_id())
            return response
        if not key or len(key) > MAX_KEY_LENGTH or not key.isprintable():
            raise BadRequest(
                f"Idempotency-Key must be 1 to {MAX_KEY_LENGTH} printable characters",
                code="invalid_idempotency_key",
            )
        now = self._clock.now()
        scope = scope_of(caller)
        candidate = IdempotencyRecord(
            scope=scope,
            key=key,
            fingerprint=fingerprint(method, path, canonical_body),
            resource_id=new_id(),
            status_code=None,
            response_body=None,
            locked_until=now + timedelta(seconds=LOCK_SECONDS),
            expires_at=now + self._ttl,
        )
        claimed, record = await self._repository.claim(candidate, now)
        if record.fingerprint != candidate.fingerprint:
            raise IdempotencyMismatch(
                "Idempotency-Key was already used with a different request",
            )
        if not claimed:
            if record.status_code is not None and record.response_body is not None:
                return Response(
                    content=record.response_body,
                    status_code=record.status_code,
                    media_type="application/json",
                    headers={REPLAY_HEADER: "true"},
                )
            raise Conflict(
                "A request with this Idempotency-Key is still being processed",
                code="idempotency_in_flight",
            )

        try:
            response, retryable = await self._call(handler, record.resource_id)
        except BaseException:
            await self._repository.release(scope=scope, key=key, forget=False)
            raise
        status = response.status_code
        if _remembered(status) and not retryable:
            await self._repository.complete(
                scope, key, status, bytes(response.body), self._clock.now() + self._ttl
            )
        else:
            # 400: the request itself was wrong; forget it. 5xx (or a conflict worth
            # retrying): keep the resource id so the retry reuses it, and drop the lock.
            await self._repository.release(scope=scope, key=key, forget=status == 400)
        return response

    @staticmethod
    async def _call(handler: Handler, resource_id: uuid.UUID) -> tuple[Response, bool]:
        """The handler's response, and whether a retry might answer differently."""
        try:
            return await handler(resource_id), False
        except AppError as exc:
            return app_error_response(exc), exc.retryable
