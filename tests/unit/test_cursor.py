"""Pagination keys (`lastKey`): opaque, tamper-proof, bound to their query (SPEC §7)."""

from __future__ import annotations

import base64
import json
import uuid
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orderhub.kit.cursor import CursorCodec
from orderhub.kit.errors import ValidationFailed
from orderhub.kit.ids import new_id

SCOPE = "orders||"
OTHER_SCOPE = "orders|paid|"
MESSAGE = "Validation error: lastKey is not a valid pagination key"

codec = CursorCodec(b"test-secret-0123456789")


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def token_for(payload: Any) -> str:
    return b64(json.dumps(payload).encode())


def assert_refused(token: str, scope: str = SCOPE) -> None:
    with pytest.raises(ValidationFailed) as caught:
        codec.decode(token, scope)
    assert caught.value.status_code == 400
    assert caught.value.message == MESSAGE
    assert [(p.field, p.message) for p in caught.value.details] == [
        ("lastKey", "is not a valid pagination key")
    ]


@given(st.uuids(), st.text(max_size=200))
def test_round_trip(last_id: uuid.UUID, scope: str) -> None:
    token = codec.encode(last_id, scope)
    assert codec.decode(token, scope) == last_id


def test_token_is_url_safe_and_unpadded() -> None:
    token = codec.encode(new_id(), SCOPE)
    assert "=" not in token
    assert set(token) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def test_same_input_same_token() -> None:
    last_id = new_id()
    assert codec.encode(last_id, SCOPE) == codec.encode(last_id, SCOPE)
    assert codec.encode(last_id, SCOPE) != codec.encode(last_id, OTHER_SCOPE)


def test_token_from_another_scope_is_refused() -> None:
    token = codec.encode(new_id(), SCOPE)
    assert_refused(token, OTHER_SCOPE)
    assert_refused(token, "orders||cust_1")


def test_token_signed_with_another_secret_is_refused() -> None:
    token = CursorCodec(b"another-secret").encode(new_id(), SCOPE)
    assert_refused(token)


def test_token_with_a_swapped_id_is_refused() -> None:
    token = codec.encode(new_id(), SCOPE)
    payload = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    payload["id"] = str(new_id())
    assert_refused(token_for(payload))


def test_token_with_a_changed_signature_is_refused() -> None:
    last_id = new_id()
    token = codec.encode(last_id, SCOPE)
    payload = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    signature = payload["sig"]
    payload["sig"] = ("0" if signature[0] != "0" else "1") + signature[1:]
    assert_refused(token_for(payload))
    payload["sig"] = signature + "00"
    assert_refused(token_for(payload))


def test_every_single_character_change_is_refused() -> None:
    token = codec.encode(new_id(), SCOPE)
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    for index, char in enumerate(token):
        replacement = alphabet[(alphabet.index(char) + 1) % len(alphabet)]
        tampered = token[:index] + replacement + token[index + 1 :]
        try:
            decoded = codec.decode(tampered, SCOPE)
        except ValidationFailed as exc:
            assert exc.message == MESSAGE
        else:  # pragma: no cover - only a change in base64 padding bits decodes at all
            assert decoded == codec.decode(token, SCOPE)


@pytest.mark.parametrize(
    "token",
    [
        "",
        "abc",
        "!!!",
        "not a token",
        "%%%%",
        "é",
        "x" * 513,
        b64(b"not json"),
        b64(b"\xff\xfe\x00garbage"),
        b64(b""),
        token_for([1, 2]),
        token_for("a string"),
        token_for(1),
        token_for(None),
        token_for({}),
        token_for({"id": str(uuid.uuid4())}),
        token_for({"sig": "0" * 32}),
        token_for({"id": "not-a-uuid", "sig": "0" * 32}),
        token_for({"id": 1, "sig": "0" * 32}),
        token_for({"id": None, "sig": "0" * 32}),
        token_for({"id": {"nested": 1}, "sig": "0" * 32}),
        token_for({"id": str(uuid.uuid4()), "sig": 12345}),
        token_for({"id": str(uuid.uuid4()), "sig": None}),
        token_for({"id": str(uuid.uuid4()), "sig": ""}),
    ],
    ids=lambda token: token[:20] or "empty",
)
def test_garbage_is_refused(token: str) -> None:
    assert_refused(token)


def test_non_ascii_signature_is_refused() -> None:
    """A tampered key is a 400, whatever bytes it carries (hmac.compare_digest raises
    TypeError on non-ASCII text, which must not escape as a 500)."""
    assert_refused(token_for({"id": str(uuid.uuid4()), "sig": "é" * 32}))


def test_over_long_token_is_refused_even_if_signed() -> None:
    last_id = new_id()
    token = codec.encode(last_id, SCOPE)
    assert_refused(token + "A" * (513 - len(token)))


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=40),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3)
    ),
    max_leaves=8,
)


@given(st.text(max_size=600))
def test_any_text_is_a_uuid_or_refused(token: str) -> None:
    try:
        codec.decode(token, SCOPE)
    except ValidationFailed as exc:
        assert exc.message == MESSAGE


@given(st.binary(max_size=300))
def test_any_base64_junk_is_refused(raw: bytes) -> None:
    assert_refused(b64(raw))


@given(
    st.fixed_dictionaries(
        {"id": st.uuids().map(str) | json_values, "sig": json_values}, optional={"x": json_values}
    )
)
def test_any_forged_payload_is_refused(payload: dict[str, Any]) -> None:
    assert_refused(token_for(payload))
