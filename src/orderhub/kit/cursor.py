"""Opaque, tamper-proof pagination keys (`lastKey`), bound to the query they came from."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import uuid
from collections.abc import Awaitable, Callable

from orderhub.kit.errors import ValidationFailed


class CursorCodec:
    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    def _sign(self, scope: str, last_id: str) -> str:
        mac = hmac.new(self._secret, f"{scope}\x00{last_id}".encode(), hashlib.sha256)
        return mac.hexdigest()[:32]

    def encode(self, last_id: uuid.UUID, scope: str) -> str:
        payload = {"id": str(last_id), "sig": self._sign(scope, str(last_id))}
        raw = json.dumps(payload, separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    def decode(self, token: str, scope: str) -> uuid.UUID:
        """The id after which the next page starts; 400 for a tampered or foreign key."""
        invalid = ValidationFailed.one("lastKey", "is not a valid pagination key")
        if len(token) > 512:
            raise invalid
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
            payload = json.loads(raw)
            last_id, signature = payload["id"], payload["sig"]
            if not isinstance(last_id, str) or not isinstance(signature, str):
                raise invalid
            parsed = uuid.UUID(last_id)
            expected = self._sign(scope, last_id).encode()
            if not hmac.compare_digest(signature.encode("utf-8"), expected):
                raise invalid
        except (binascii.Error, ValueError, TypeError, KeyError, UnicodeError):
            raise invalid from None
        return parsed


class Cursors:
    """A CursorCodec whose secret is fetched on first use (it lives in the store, which is
    only reachable once the event loop runs)."""

    def __init__(self, secret: Callable[[], Awaitable[bytes]]) -> None:
        self._secret = secret
        self._codec: CursorCodec | None = None

    async def codec(self) -> CursorCodec:
        if self._codec is None:
            self._codec = CursorCodec(await self._secret())
        return self._codec
