"""Who is calling: an API key (environment or stored) or a verified JWT (SPEC §4)."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import jwt
import structlog
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from orderhub.auth.keys import KeyCache, hash_key
from orderhub.kit.clock import Clock
from orderhub.kit.errors import Unauthorized
from orderhub.settings import Settings
from orderhub.store.protocol import Store

log = structlog.get_logger(__name__)

TOUCH_EVERY = timedelta(minutes=1)
CHALLENGE = {"WWW-Authenticate": 'Bearer realm="orderhub", ApiKey header="X-API-Key"'}


@dataclass(frozen=True, slots=True)
class Caller:
    """An authenticated caller; `identity` scopes idempotency keys and rate limits."""

    identity: str
    kind: str


def _unauthorized(message: str) -> Unauthorized:
    return Unauthorized(message, headers=CHALLENGE)


TIME_CLAIMS = ("exp", "nbf", "iat")


def _numeric_times(claims: dict[str, Any]) -> bool:
    """RFC 7519 §2: `exp`, `nbf` and `iat` are NumericDates, JSON numbers; PyJWT would take
    a numeric string such as "1700000000" too."""
    return all(
        isinstance(claims[name], int | float) and not isinstance(claims[name], bool)
        for name in TIME_CLAIMS
        if name in claims
    )


class JwtVerifier:
    def __init__(self, settings: Settings) -> None:
        self._audience = settings.jwt_audience or None
        self._issuer = settings.jwt_issuer or None
        self._leeway = settings.jwt_leeway_seconds
        self._key: Any = None
        self._algorithms: list[str] = []
        self._jwks: jwt.PyJWKClient | None = None
        if settings.jwt_secret:
            self._key = settings.jwt_secret
            self._algorithms = ["HS256"]
        elif settings.jwt_public_key:
            # Settings checked it is an RSA or EC P-256 key.
            key = load_pem_public_key(settings.jwt_public_key_pem)
            self._algorithms = ["RS256"] if isinstance(key, RSAPublicKey) else ["ES256"]
            self._key = key
        elif settings.jwt_jwks_url:
            self._jwks = jwt.PyJWKClient(settings.jwt_jwks_url, cache_keys=True, timeout=5)
            self._algorithms = ["RS256", "ES256"]

    @property
    def enabled(self) -> bool:
        return bool(self._algorithms)

    async def verify(self, token: str) -> dict[str, Any]:
        if not self.enabled:
            raise _unauthorized("Bearer tokens are not accepted by this server")
        try:
            header = jwt.get_unverified_header(token)
            if header.get("alg") not in self._algorithms:
                raise _unauthorized("Invalid token")
            key = self._key
            if self._jwks is not None:
                key = (await asyncio.to_thread(self._jwks.get_signing_key_from_jwt, token)).key
            claims: dict[str, Any] = jwt.decode(
                token,
                key=key,
                algorithms=self._algorithms,
                audience=self._audience,
                issuer=self._issuer,
                options={"require": ["exp"], "verify_aud": self._audience is not None},
                leeway=self._leeway,
            )
        except jwt.ExpiredSignatureError:
            raise _unauthorized("Token has expired") from None
        except (jwt.PyJWTError, ValueError):
            raise _unauthorized("Invalid token") from None
        if not _numeric_times(claims):
            raise _unauthorized("Invalid token")
        return claims


class Authenticator:
    def __init__(
        self, settings: Settings, store: Store, clock: Clock, key_cache: KeyCache | None = None
    ) -> None:
        self._env_key_hashes = [hash_key(k) for k in settings.api_keys]
        self._store = store
        self._clock = clock
        self._key_cache = key_cache if key_cache is not None else KeyCache()
        self._jwt = JwtVerifier(settings)
        self._last_touch: dict[str, Any] = {}

    async def authenticate(self, api_key: str | None, authorization: str | None) -> Caller:
        if api_key:
            return await self._by_api_key(api_key)
        if authorization:
            scheme, _, token = authorization.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise _unauthorized("Authorization header must be 'Bearer <token>'")
            claims = await self._jwt.verify(token.strip())
            subject = claims.get("sub")
            if not isinstance(subject, str) or not subject:
                raise _unauthorized("Invalid token")
            iss = claims.get("iss")
            issuer = iss if isinstance(iss, str) else ""
            return Caller(identity=jwt_identity(issuer, subject), kind="jwt")
        raise _unauthorized("Authentication required")

    async def _by_api_key(self, api_key: str) -> Caller:
        presented = hash_key(api_key)
        for known in self._env_key_hashes:
            if hmac.compare_digest(presented, known):
                return Caller(identity=f"env:{known[:16]}", kind="api_key")
        key_id = self._key_cache.get(presented)
        if key_id is None:
            record = await self._store.api_keys.find_active_by_hash(presented)
            if record is None or not hmac.compare_digest(record.key_hash, presented):
                raise _unauthorized("Invalid API key")
            key_id = record.id
            self._key_cache.put(presented, key_id)
        await self._touch(key_id)
        return Caller(identity=f"key:{key_id}", kind="api_key")

    async def key_accepted(self, key_hash: str) -> bool:
        """Whether the API key with this SHA-256 is still accepted (an `API_KEYS` key, or
        a stored key not revoked): sessions opened with a key end when it is revoked."""
        if any(hmac.compare_digest(key_hash, known) for known in self._env_key_hashes):
            return True
        return await self._store.api_keys.find_active_by_hash(key_hash) is not None

    async def _touch(self, key_id: Any) -> None:
        """Keep `last_used_at`, written at most once a minute per key."""
        now = self._clock.now()
        last = self._last_touch.get(str(key_id))
        if last is not None and now - last < TOUCH_EVERY:
            return
        self._last_touch[str(key_id)] = now
        await self._store.api_keys.touch(key_id, now)


def jwt_identity(issuer: str, subject: str) -> str:
    """The caller a token names, unambiguous: the issuer is length-prefixed, so no two
    (iss, sub) pairs give one identity (`a:b`+`c` and `a`+`b:c` stay apart)."""
    return f"jwt:{len(issuer)}:{issuer}:{subject}"


def credential_fingerprint(api_key: str | None, authorization: str | None) -> str | None:
    """A stable, non-reversible name for a presented credential (for logs and limits)."""
    presented = api_key or authorization
    if not presented:
        return None
    return hashlib.sha256(presented.encode()).hexdigest()[:16]
