"""SPEC §4: API keys (environment and stored) and JWTs; 401 in the envelope otherwise."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from orderhub.auth.keys import KeyCache
from orderhub.auth.service import Authenticator
from orderhub.kit.errors import Unauthorized
from tests.fixtures.app import AUTH, Harness

SECRET = "a-long-enough-hs256-secret-for-tests-0123456789"


def _token(claims: dict[str, Any], key: Any = SECRET, algorithm: str = "HS256") -> str:
    return jwt.encode(claims, key, algorithm=algorithm)


def _claims(**extra: Any) -> dict[str, Any]:
    return {"sub": "user-1", "exp": int(time.time()) + 300, **extra}


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


def _assert_401(response: Any) -> None:
    assert response.status_code == 401, response.text
    body = response.json()
    assert body["success"] is False
    assert body["error"]["message"]
    assert "WWW-Authenticate" in response.headers


async def test_missing_credentials(harness: Harness) -> None:
    _assert_401(await harness.client.get("/api/orders"))


async def test_wrong_api_key(harness: Harness) -> None:
    _assert_401(await harness.client.get("/api/orders", headers={"X-API-Key": "nope"}))


async def test_env_api_key(harness: Harness) -> None:
    assert (await harness.client.get("/api/orders", headers=AUTH)).status_code == 200


async def test_stored_key_works_and_is_kept_hashed_and_revocable(harness: Harness) -> None:
    created = await harness.container.api_keys.create("ci")
    headers = {"X-API-Key": created.key}
    assert (await harness.client.get("/api/orders", headers=headers)).status_code == 200
    records = await harness.container.api_keys.list_all()
    stored = next(r for r in records if r.id == created.record.id)
    assert stored.key_hash != created.key and len(stored.key_hash) == 64
    assert stored.last_used_at is not None
    assert await harness.container.api_keys.revoke(str(created.record.id))
    _assert_401(await harness.client.get("/api/orders", headers=headers))


@pytest.fixture
async def hs256(make_harness: Callable[..., Any]) -> Harness:
    result: Harness = await make_harness(jwt_secret=SECRET)
    return result


async def test_valid_hs256_token(hs256: Harness) -> None:
    headers = {"Authorization": f"Bearer {_token(_claims())}"}
    assert (await hs256.client.get("/api/orders", headers=headers)).status_code == 200


@pytest.mark.parametrize(
    "token",
    [
        pytest.param(_token(_claims(exp=int(time.time()) - 3600)), id="expired"),
        pytest.param(_token(_claims(), key="another-secret-another-secret-xx"), id="forged"),
        pytest.param(_token({"sub": "user-1"}), id="no-exp"),
        pytest.param(
            _b64({"alg": "none", "typ": "JWT"}) + "." + _b64(_claims()) + ".", id="alg-none"
        ),
        pytest.param(_b64({"alg": "HS256", "typ": "JWT"}) + "." + _b64(_claims()), id="unsigned"),
        pytest.param("not-a-token", id="garbage"),
        pytest.param(_token(_claims(nbf=int(time.time()) + 3600)), id="not-yet-valid"),
    ],
)
async def test_bad_tokens_are_401(hs256: Harness, token: str) -> None:
    _assert_401(await hs256.client.get("/api/orders", headers={"Authorization": f"Bearer {token}"}))


@pytest.mark.parametrize(
    "claims",
    [
        pytest.param(_claims(exp=str(int(time.time()) + 300)), id="exp-string"),
        pytest.param(_claims(nbf=str(int(time.time()) - 60)), id="nbf-string"),
        pytest.param(_claims(iat=str(int(time.time()))), id="iat-string"),
        pytest.param(_claims(iat=True), id="iat-bool"),
    ],
)
async def test_time_claims_must_be_numbers(hs256: Harness, claims: dict[str, Any]) -> None:
    token = _token(claims)
    _assert_401(await hs256.client.get("/api/orders", headers={"Authorization": f"Bearer {token}"}))
    fine = _token({**claims, **_claims(iat=int(time.time()), nbf=int(time.time()) - 60)})
    response = await hs256.client.get("/api/orders", headers={"Authorization": f"Bearer {fine}"})
    assert response.status_code == 200


async def test_leeway_is_the_setting(make_harness: Callable[..., Any]) -> None:
    lately = _token(_claims(exp=int(time.time()) - 20))  # expired 20 s ago
    default: Harness = await make_harness(jwt_secret=SECRET)  # 30 s of clock skew
    headers = {"Authorization": f"Bearer {lately}"}
    assert (await default.client.get("/api/orders", headers=headers)).status_code == 200
    strict: Harness = await make_harness(jwt_secret=SECRET, jwt_leeway_seconds=5)
    _assert_401(await strict.client.get("/api/orders", headers=headers))


async def test_non_bearer_scheme_is_401(hs256: Harness) -> None:
    _assert_401(await hs256.client.get("/api/orders", headers={"Authorization": f"Basic {SECRET}"}))


async def test_audience_and_issuer_checked_when_set(make_harness: Callable[..., Any]) -> None:
    h: Harness = await make_harness(jwt_secret=SECRET, jwt_audience="orderhub", jwt_issuer="idp")
    good = _token(_claims(aud="orderhub", iss="idp"))
    assert (
        await h.client.get("/api/orders", headers={"Authorization": f"Bearer {good}"})
    ).status_code == 200
    for bad in (_claims(aud="other", iss="idp"), _claims(aud="orderhub", iss="evil"), _claims()):
        _assert_401(
            await h.client.get("/api/orders", headers={"Authorization": f"Bearer {_token(bad)}"})
        )


def _pem(public_key: Any) -> str:
    return public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


async def test_rs256_public_key_and_algorithm_confusion(make_harness: Callable[..., Any]) -> None:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = _pem(private.public_key())
    h: Harness = await make_harness(jwt_public_key=pem)
    good = _token(_claims(), key=private, algorithm="RS256")
    assert (
        await h.client.get("/api/orders", headers={"Authorization": f"Bearer {good}"})
    ).status_code == 200
    # The classic confusion attack: HS256 signed with the public key's PEM as the secret.
    header = _b64({"alg": "HS256", "typ": "JWT"})
    payload = _b64(_claims())
    import hashlib
    import hmac

    signature = hmac.new(pem.encode(), f"{header}.{payload}".encode(), hashlib.sha256).digest()
    forged = f"{header}.{payload}." + base64.urlsafe_b64encode(signature).decode().rstrip("=")
    _assert_401(await h.client.get("/api/orders", headers={"Authorization": f"Bearer {forged}"}))


async def test_es256_public_key(make_harness: Callable[..., Any]) -> None:
    private = ec.generate_private_key(ec.SECP256R1())
    h: Harness = await make_harness(jwt_public_key=_pem(private.public_key()))
    good = _token(_claims(), key=private, algorithm="ES256")
    assert (
        await h.client.get("/api/orders", headers={"Authorization": f"Bearer {good}"})
    ).status_code == 200
    other = ec.generate_private_key(ec.SECP256R1())
    _assert_401(
        await h.client.get(
            "/api/orders",
            headers={"Authorization": f"Bearer {_token(_claims(), key=other, algorithm='ES256')}"},
        )
    )


async def test_tokens_refused_when_no_jwt_configured(harness: Harness) -> None:
    _assert_401(
        await harness.client.get(
            "/api/orders", headers={"Authorization": f"Bearer {_token(_claims())}"}
        )
    )


async def test_open_endpoints_need_no_credentials(harness: Harness) -> None:
    for path in ("/health", "/ready", "/openapi.json", "/docs"):
        assert (await harness.client.get(path)).status_code == 200, path


async def test_jwks_url_picks_the_key_by_kid(make_harness: Callable[..., Any]) -> None:
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    from jwt.algorithms import RSAAlgorithm

    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = json.loads(RSAAlgorithm.to_jwk(private.public_key()))
    jwk.update({"kid": "key-1", "use": "sig", "alg": "RS256"})
    document = json.dumps({"keys": [jwk]}).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(document)

        def log_message(self, *args: Any) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/.well-known/jwks.json"
        h: Harness = await make_harness(jwt_jwks_url=url)
        good = jwt.encode(_claims(), private, algorithm="RS256", headers={"kid": "key-1"})
        response = await h.client.get("/api/orders", headers={"Authorization": f"Bearer {good}"})
        assert response.status_code == 200, response.text
        unknown_kid = jwt.encode(_claims(), private, algorithm="RS256", headers={"kid": "nope"})
        _assert_401(
            await h.client.get("/api/orders", headers={"Authorization": f"Bearer {unknown_kid}"})
        )
    finally:
        server.shutdown()


async def test_a_key_revoked_by_another_instance_is_refused_within_a_second(
    harness: Harness,
) -> None:
    created = await harness.container.api_keys.create("elsewhere")
    clock = _Monotonic()
    container = harness.container
    authenticator = Authenticator(
        container.settings, container.store, container.clock, KeyCache(1.0, monotonic=clock)
    )
    caller = await authenticator.authenticate(created.key, None)
    assert caller.identity == f"key:{created.record.id}"
    # another instance (or `orderhub keys revoke`) revokes it: straight in the store
    assert await container.store.api_keys.revoke(created.record.id, container.clock.now())
    assert await authenticator.authenticate(created.key, None) == caller  # believed a second
    clock.now += 1.0
    with pytest.raises(Unauthorized):
        await authenticator.authenticate(created.key, None)


class _Monotonic:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now
