"""The Stripe test double speaks Stripe's protocol to the real `stripe` SDK over HTTP."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
import stripe

from tests.fixtures import stripe_server
from tests.fixtures.stripe_server import (
    WEBHOOK_SECRET,
    FakeStripe,
    make_event,
    parse_form,
    sign_payload,
    signed_webhook,
)

fake_stripe = stripe_server.fake_stripe  # the shared fixture, registered in this module

# The SDK's HTTPXClient passes the form body as `data=<str>`, which httpx 0.28 deprecates.
pytestmark = pytest.mark.filterwarnings("ignore:Use 'content=<...>':DeprecationWarning")

# Redirect-based methods are off, so a server-side confirm needs no return_url (as in Stripe).
CARD_ONLY: Any = {"enabled": True, "allow_redirects": "never"}


def _client(
    fake: FakeStripe, *, timeout: float = 2, retries: int = 2
) -> tuple[stripe.StripeClient, stripe.HTTPXClient]:
    http_client = stripe.HTTPXClient(timeout=timeout)
    client = stripe.StripeClient(
        fake.api_key,
        base_addresses={"api": fake.url},
        max_network_retries=retries,
        http_client=http_client,
    )
    return client, http_client


@pytest.fixture
async def client(fake_stripe: FakeStripe) -> AsyncIterator[stripe.StripeClient]:
    http_client = stripe.HTTPXClient(timeout=2)
    yield stripe.StripeClient(
        fake_stripe.api_key,
        base_addresses={"api": fake_stripe.url},
        max_network_retries=2,
        http_client=http_client,
    )
    await http_client.close_async()  # type: ignore[no-untyped-call,unused-ignore]


async def _intent(
    client: stripe.StripeClient, amount: int = 1099, key: str | None = None, **extra: object
) -> stripe.PaymentIntent:
    params: dict[str, object] = {
        "amount": amount,
        "currency": "usd",
        "metadata": {"orderId": "ord_1"},
        "automatic_payment_methods": CARD_ONLY,
        **extra,
    }
    options: dict[str, str] = {"idempotency_key": key} if key else {}
    return await client.v1.payment_intents.create_async(params, options=options)  # type: ignore[arg-type]


async def _paid(client: stripe.StripeClient, amount: int = 1099) -> stripe.PaymentIntent:
    intent = await _intent(client, amount)
    return await client.v1.payment_intents.confirm_async(
        intent.id, {"payment_method": "pm_card_visa"}
    )


# --------------------------------------------------------------------------- plumbing


def test_parse_form_bracket_syntax() -> None:
    pairs = [
        ("amount", "1099"),
        ("metadata[orderId]", "o1"),
        ("expand[]", "a"),
        ("expand[]", "b"),
        ("items[0][price]", "p1"),
        ("items[1][price]", "p2"),
        ("automatic_payment_methods[enabled]", "true"),
    ]
    assert parse_form(pairs) == {
        "amount": "1099",
        "metadata": {"orderId": "o1"},
        "expand": ["a", "b"],
        "items": [{"price": "p1"}, {"price": "p2"}],
        "automatic_payment_methods": {"enabled": "true"},
    }


def test_raw_protocol_auth_and_unknown_route(fake_stripe: FakeStripe) -> None:
    with httpx.Client(base_url=fake_stripe.url) as http:
        anonymous = http.get("/v1/payment_intents/pi_x")
        assert anonymous.status_code == 401
        assert anonymous.headers["Request-Id"].startswith("req_")
        assert anonymous.json()["error"]["type"] == "invalid_request_error"
        assert "did not provide an API key" in anonymous.json()["error"]["message"]

        auth = {"Authorization": f"Bearer {fake_stripe.api_key}"}
        unknown = http.post("/v1/nothing", headers=auth)
        assert unknown.status_code == 404
        assert "Unrecognized request URL (POST: /v1/nothing)" in unknown.json()["error"]["message"]

        missing = http.get("/v1/payment_intents/pi_missing", headers=auth)
        assert missing.status_code == 404
        assert missing.json()["error"]["code"] == "resource_missing"
        assert missing.json()["error"]["param"] == "intent"


async def test_bad_api_key_is_401_invalid_request_error(fake_stripe: FakeStripe) -> None:
    http_client = stripe.HTTPXClient(timeout=2)
    bad = stripe.StripeClient(
        "sk_test_wrongkey1234",
        base_addresses={"api": fake_stripe.url},
        http_client=http_client,
    )
    with pytest.raises(stripe.AuthenticationError) as info:
        await bad.v1.payment_intents.retrieve_async("pi_x")
    await http_client.close_async()  # type: ignore[no-untyped-call,unused-ignore]
    assert info.value.http_status == 401
    assert info.value.user_message == "Invalid API Key provided: sk_test_********1234"
    assert info.value.json_body["error"]["type"] == "invalid_request_error"  # type: ignore[index]


# --------------------------------------------------------------------------- payment intents


async def test_create_and_retrieve(client: stripe.StripeClient, fake_stripe: FakeStripe) -> None:
    intent = await _intent(client, key="order:ord_1", description="Order ord_1")
    assert intent.object == "payment_intent"
    assert intent.id.startswith("pi_")
    assert intent.client_secret is not None
    assert intent.client_secret.startswith(f"{intent.id}_secret_")
    assert intent.status == "requires_payment_method"
    assert (intent.amount, intent.currency, intent.amount_received) == (1099, "usd", 0)
    assert intent.metadata["orderId"] == "ord_1"
    assert intent.latest_charge is None
    assert intent.livemode is False
    assert abs(intent.created - time.time()) < 5
    assert intent.description == "Order ord_1"
    assert intent.last_response is not None
    assert intent.last_response.request_id is not None
    assert intent.last_response.request_id.startswith("req_")

    again = await client.v1.payment_intents.retrieve_async(intent.id)
    assert again.to_dict() == intent.to_dict()

    (create,) = fake_stripe.requests_to("POST", "/v1/payment_intents")
    assert create.idempotency_key == "order:ord_1"
    assert create.params["amount"] == "1099"
    assert create.params["metadata"] == {"orderId": "ord_1"}
    assert create.params["automatic_payment_methods"] == {
        "enabled": "true",
        "allow_redirects": "never",
    }
    assert create.headers["Authorization"] == f"Bearer {fake_stripe.api_key}"


@pytest.mark.parametrize(
    ("params", "code", "param"),
    [
        ({"currency": "usd"}, "parameter_missing", "amount"),
        ({"amount": 0, "currency": "usd"}, "parameter_invalid_integer", "amount"),
        ({"amount": -5, "currency": "usd"}, "parameter_invalid_integer", "amount"),
        ({"amount": "12.5", "currency": "usd"}, "parameter_invalid_integer", "amount"),
        ({"amount": 1099}, "parameter_missing", "currency"),
        ({"amount": 10, "currency": "usd"}, "amount_too_small", "amount"),
        ({"amount": 1099, "currency": "usd", "bogus": "x"}, "parameter_unknown", "bogus"),
    ],
)
async def test_create_validation(
    client: stripe.StripeClient, params: dict[str, object], code: str, param: str
) -> None:
    with pytest.raises(stripe.InvalidRequestError) as info:
        await client.v1.payment_intents.create_async(params)  # type: ignore[arg-type]
    assert info.value.http_status == 400
    assert (info.value.code, info.value.param) == (code, param)


async def test_retrieve_unknown_is_404_resource_missing(client: stripe.StripeClient) -> None:
    with pytest.raises(stripe.InvalidRequestError) as info:
        await client.v1.payment_intents.retrieve_async("pi_nope")
    assert info.value.http_status == 404
    assert (info.value.code, info.value.param) == ("resource_missing", "intent")
    assert info.value.user_message == "No such payment_intent: 'pi_nope'"


async def test_confirm_visa_succeeds_with_a_charge(
    client: stripe.StripeClient, fake_stripe: FakeStripe
) -> None:
    intent = await _intent(client)
    paid = await client.v1.payment_intents.confirm_async(
        intent.id, {"payment_method": "pm_card_visa"}
    )
    assert paid.status == "succeeded"
    assert paid.amount_received == 1099
    assert isinstance(paid.latest_charge, str) and paid.latest_charge.startswith("ch_")
    assert isinstance(paid.payment_method, str) and paid.payment_method.startswith("pm_")
    assert paid.payment_method != "pm_card_visa"  # a token becomes a real PaymentMethod id

    expanded = await client.v1.payment_intents.retrieve_async(
        intent.id, {"expand": ["latest_charge"]}
    )
    charge = expanded.latest_charge
    assert isinstance(charge, stripe.Charge)
    assert (charge.id, charge.status, charge.paid, charge.amount) == (
        paid.latest_charge,
        "succeeded",
        True,
        1099,
    )
    assert charge.payment_intent == intent.id
    assert charge.payment_method_details is not None
    assert charge.payment_method_details.card is not None
    assert charge.payment_method_details.card.last4 == "4242"
    assert [e["type"] for e in fake_stripe.events] == [
        "payment_intent.created",
        "charge.succeeded",
        "payment_intent.succeeded",
    ]


async def test_confirm_declined_raises_card_error(
    client: stripe.StripeClient, fake_stripe: FakeStripe
) -> None:
    intent = await _intent(client)
    with pytest.raises(stripe.CardError) as info:
        await client.v1.payment_intents.confirm_async(
            intent.id, {"payment_method": "pm_card_chargeDeclined"}
        )
    err = info.value
    assert err.http_status == 402
    assert err.code == "card_declined"
    assert err.user_message == "Your card was declined."
    assert err.error is not None
    assert err.error.type == "card_error"
    assert err.error.decline_code == "generic_decline"
    assert err.error.payment_intent is not None
    assert err.error.payment_intent.status == "requires_payment_method"
    assert err.error.payment_intent.last_payment_error is not None
    assert err.error.payment_intent.last_payment_error.code == "card_declined"

    stored = fake_stripe.get_intent(intent.id)
    assert stored["status"] == "requires_payment_method"
    assert stored["payment_method"] is None
    assert fake_stripe.get_charge(stored["latest_charge"])["status"] == "failed"

    # The customer tries another card on the same intent.
    paid = await client.v1.payment_intents.confirm_async(
        intent.id, {"payment_method": "pm_card_visa"}
    )
    assert paid.status == "succeeded"
    assert paid.last_payment_error is None


@pytest.mark.parametrize("pm", ["pm_card_authenticationRequired", "pm_card_threeDSecure2Required"])
async def test_confirm_3ds_requires_action(
    client: stripe.StripeClient, fake_stripe: FakeStripe, pm: str
) -> None:
    intent = await _intent(client)
    pending = await client.v1.payment_intents.confirm_async(intent.id, {"payment_method": pm})
    assert pending.status == "requires_action"
    assert pending.next_action is not None
    assert pending.next_action.type == "use_stripe_sdk"
    assert pending.latest_charge is None

    fake_stripe.succeed_intent(intent.id)  # the customer completes 3-D Secure
    done = await client.v1.payment_intents.retrieve_async(intent.id)
    assert (done.status, done.amount_received, done.next_action) == ("succeeded", 1099, None)


async def test_confirm_unknown_payment_method(client: stripe.StripeClient) -> None:
    intent = await _intent(client)
    with pytest.raises(stripe.InvalidRequestError) as info:
        await client.v1.payment_intents.confirm_async(intent.id, {"payment_method": "pm_nope"})
    assert (info.value.code, info.value.param) == ("resource_missing", "payment_method")


async def test_server_side_confirm_needs_return_url_when_redirects_allowed(
    client: stripe.StripeClient,
) -> None:
    intent = await client.v1.payment_intents.create_async({"amount": 1099, "currency": "usd"})
    assert intent.automatic_payment_methods is not None
    assert intent.automatic_payment_methods.allow_redirects == "always"
    with pytest.raises(stripe.InvalidRequestError, match="return_url"):
        await client.v1.payment_intents.confirm_async(intent.id, {"payment_method": "pm_card_visa"})
    paid = await client.v1.payment_intents.confirm_async(
        intent.id, {"payment_method": "pm_card_visa", "return_url": "https://shop.test/done"}
    )
    assert paid.status == "succeeded"


async def test_unexpected_state_errors(client: stripe.StripeClient) -> None:
    paid = await _paid(client)
    with pytest.raises(stripe.InvalidRequestError) as confirm_again:
        await client.v1.payment_intents.confirm_async(paid.id, {"payment_method": "pm_card_visa"})
    assert confirm_again.value.code == "payment_intent_unexpected_state"
    with pytest.raises(stripe.InvalidRequestError) as cancel_paid:
        await client.v1.payment_intents.cancel_async(paid.id)
    assert cancel_paid.value.code == "payment_intent_unexpected_state"

    open_intent = await _intent(client)
    canceled = await client.v1.payment_intents.cancel_async(
        open_intent.id, {"cancellation_reason": "requested_by_customer"}
    )
    assert canceled.status == "canceled"
    assert canceled.canceled_at is not None
    assert canceled.cancellation_reason == "requested_by_customer"
    with pytest.raises(stripe.InvalidRequestError) as confirm_canceled:
        await client.v1.payment_intents.confirm_async(
            open_intent.id, {"payment_method": "pm_card_visa"}
        )
    assert confirm_canceled.value.code == "payment_intent_unexpected_state"


# --------------------------------------------------------------------------- refunds


async def test_full_refund(client: stripe.StripeClient, fake_stripe: FakeStripe) -> None:
    paid = await _paid(client)
    refund = await client.v1.refunds.create_async(
        {"payment_intent": paid.id, "metadata": {"refundId": "rf_1"}},
        options={"idempotency_key": "rf_1"},
    )
    assert refund.object == "refund"
    assert refund.id.startswith("re_")
    assert (refund.amount, refund.currency, refund.status) == (1099, "usd", "succeeded")
    assert (refund.charge, refund.payment_intent) == (paid.latest_charge, paid.id)
    assert refund.metadata is not None
    assert refund.metadata["refundId"] == "rf_1"
    assert refund.reason is None

    fetched = await client.v1.refunds.retrieve_async(refund.id)
    assert fetched.to_dict() == refund.to_dict()
    charge = fake_stripe.get_charge(str(paid.latest_charge))
    assert (charge["amount_refunded"], charge["refunded"]) == (1099, True)
    assert fake_stripe.events_of("charge.refunded")[-1]["data"]["object"]["id"] == charge["id"]

    with pytest.raises(stripe.InvalidRequestError) as info:
        await client.v1.refunds.create_async({"payment_intent": paid.id})
    assert info.value.code == "charge_already_refunded"


async def test_partial_refunds_and_over_refund(client: stripe.StripeClient) -> None:
    paid = await _paid(client, 1000)
    first = await client.v1.refunds.create_async(
        {"payment_intent": paid.id, "amount": 300, "reason": "requested_by_customer"}
    )
    second = await client.v1.refunds.create_async({"payment_intent": paid.id, "amount": 300})
    assert first.id != second.id
    assert first.reason == "requested_by_customer"

    with pytest.raises(stripe.InvalidRequestError) as info:
        await client.v1.refunds.create_async({"payment_intent": paid.id, "amount": 401})
    assert (info.value.code, info.value.param) == ("amount_too_large", "amount")
    assert "$4.01" in str(info.value.user_message)
    assert "$4.00" in str(info.value.user_message)

    rest = await client.v1.refunds.create_async({"payment_intent": paid.id})
    assert rest.amount == 400


async def test_refund_validation(client: stripe.StripeClient) -> None:
    paid = await _paid(client)
    with pytest.raises(stripe.InvalidRequestError) as bad_reason:
        await client.v1.refunds.create_async(
            {"payment_intent": paid.id, "reason": "changed_mind"}  # type: ignore[typeddict-item,unused-ignore]
        )
    assert bad_reason.value.param == "reason"

    unpaid = await _intent(client)
    with pytest.raises(stripe.InvalidRequestError, match="does not have a successful charge"):
        await client.v1.refunds.create_async({"payment_intent": unpaid.id})

    with pytest.raises(stripe.InvalidRequestError) as unknown:
        await client.v1.refunds.create_async({"payment_intent": "pi_nope"})
    assert (unknown.value.code, unknown.value.param) == ("resource_missing", "payment_intent")

    with pytest.raises(stripe.InvalidRequestError) as missing:
        await client.v1.refunds.retrieve_async("re_nope")
    assert missing.value.http_status == 404


# --------------------------------------------------------------------------- idempotency


async def test_idempotent_replay_creates_one_intent(
    client: stripe.StripeClient, fake_stripe: FakeStripe
) -> None:
    first = await _intent(client, key="order:abc")
    second = await _intent(client, key="order:abc")
    assert second.to_dict() == first.to_dict()
    assert second.last_response is not None
    assert second.last_response.headers["Idempotent-Replayed"] == "true"
    assert len(fake_stripe.intents()) == 1


async def test_same_key_different_params_is_idempotency_error(
    client: stripe.StripeClient, fake_stripe: FakeStripe
) -> None:
    await _intent(client, 1099, key="order:abc")
    with pytest.raises(stripe.IdempotencyError) as info:
        await _intent(client, 2000, key="order:abc")
    assert info.value.http_status == 400
    assert len(fake_stripe.intents()) == 1


async def test_declined_confirm_is_replayed_under_the_same_key(
    client: stripe.StripeClient, fake_stripe: FakeStripe
) -> None:
    intent = await _intent(client)
    errors = []
    for _ in range(2):
        with pytest.raises(stripe.CardError) as info:
            await client.v1.payment_intents.confirm_async(
                intent.id,
                {"payment_method": "pm_card_chargeDeclined"},
                options={"idempotency_key": "confirm-1"},
            )
        errors.append(info.value)
    assert errors[1].headers is not None
    assert errors[1].headers["Idempotent-Replayed"] == "true"
    assert errors[1].json_body == errors[0].json_body
    assert len(fake_stripe.events_of("charge.failed")) == 1


# --------------------------------------------------------------------------- injected faults


async def test_500_once_then_sdk_retry_succeeds(
    client: stripe.StripeClient, fake_stripe: FakeStripe
) -> None:
    fake_stripe.fail_next(500, path_prefix="/v1/payment_intents")
    intent = await _intent(client)
    assert intent.status == "requires_payment_method"
    attempts = fake_stripe.requests_to("POST", "/v1/payment_intents")
    assert [a.fault for a in attempts] == ["status:500", None]
    # The SDK made up one idempotency key and reused it on the retry.
    assert attempts[0].idempotency_key is not None
    assert attempts[0].idempotency_key == attempts[1].idempotency_key
    assert len(fake_stripe.intents()) == 1


@pytest.mark.parametrize(
    ("status", "options", "raised", "field", "value"),
    [
        pytest.param(
            503,
            {"max_network_retries": 0},
            stripe.APIError,
            "type",
            "api_error",
            id="5xx-without-retries-left-is-api-error",
        ),
        pytest.param(
            429, {}, stripe.RateLimitError, "code", "rate_limit", id="429-rate-limit-not-retried"
        ),
    ],
)
async def test_a_failure_not_retried_raises_and_creates_nothing(
    client: stripe.StripeClient,
    fake_stripe: FakeStripe,
    status: int,
    options: stripe.RequestOptions,
    raised: type[stripe.StripeError],
    field: str,
    value: str,
) -> None:
    """The fault answered once (`options`: the request's own); the SDK raises `raised`, its
    error's `field` is `value`; one request reached the server, no intent exists."""
    fake_stripe.fail_next(status)
    with pytest.raises(raised) as info:
        await client.v1.payment_intents.create_async(
            {"amount": 1099, "currency": "usd"},
            options=options,
        )
    assert info.value.http_status == status
    assert info.value.error is not None
    assert getattr(info.value.error, field) == value
    assert len(fake_stripe.requests) == 1
    assert fake_stripe.intents() == []


async def test_429_lock_timeout_is_retried(
    client: stripe.StripeClient, fake_stripe: FakeStripe
) -> None:
    fake_stripe.fail_next(429, code="lock_timeout")
    intent = await _intent(client)
    assert intent.id.startswith("pi_")
    assert [r.fault for r in fake_stripe.requests] == ["status:429", None]
    assert len(fake_stripe.intents()) == 1


@pytest.mark.parametrize("applied", [False, True])
async def test_reset_connection_is_retried(
    client: stripe.StripeClient, fake_stripe: FakeStripe, applied: bool
) -> None:
    fake_stripe.reset_next(applied=applied)
    intent = await _intent(client)
    assert [r.fault for r in fake_stripe.requests] == ["reset", None]
    assert [i["id"] for i in fake_stripe.intents()] == [intent.id]
    assert intent.last_response is not None
    replayed = intent.last_response.headers.get("Idempotent-Replayed") == "true"
    assert replayed is applied


async def test_timeout_exhausting_retries_is_api_connection_error(
    fake_stripe: FakeStripe,
) -> None:
    client, http_client = _client(fake_stripe, timeout=0.3, retries=1)
    fake_stripe.timeout_next(2.0, count=2)
    with pytest.raises(stripe.APIConnectionError):
        await _intent(client)
    assert [r.fault for r in fake_stripe.requests] == ["timeout", "timeout"]
    assert fake_stripe.intents() == []
    await http_client.close_async()  # type: ignore[no-untyped-call,unused-ignore]


async def test_timeout_after_the_operation_ran_is_replayed_on_retry(
    fake_stripe: FakeStripe,
) -> None:
    client, http_client = _client(fake_stripe, timeout=0.3, retries=1)
    paid = await _paid(client)
    fake_stripe.timeout_next(2.0, path_prefix="/v1/refunds", applied=True)
    refund = await client.v1.refunds.create_async({"payment_intent": paid.id, "amount": 500})
    assert [r.fault for r in fake_stripe.requests_to("POST", "/v1/refunds")] == ["timeout", None]
    assert [r["id"] for r in fake_stripe.refunds_for(paid.id)] == [refund.id]
    assert fake_stripe.get_charge(str(paid.latest_charge))["amount_refunded"] == 500
    await http_client.close_async()  # type: ignore[no-untyped-call,unused-ignore]


def test_sync_sdk_works_too(fake_stripe: FakeStripe) -> None:
    http_client = stripe.HTTPXClient(timeout=2, allow_sync_methods=True)
    client = stripe.StripeClient(
        fake_stripe.api_key,
        base_addresses={"api": fake_stripe.url},
        http_client=http_client,
    )
    intent = client.v1.payment_intents.create(
        {"amount": 500, "currency": "eur", "automatic_payment_methods": CARD_ONLY}
    )
    paid = client.v1.payment_intents.confirm(intent.id, {"payment_method": "pm_card_visa"})
    assert paid.status == "succeeded"
    http_client.close()  # type: ignore[no-untyped-call,unused-ignore]


def test_context_manager_stops_the_server() -> None:
    with FakeStripe() as fake:
        url = fake.url
        assert httpx.get(f"{url}/v1/payment_intents/pi_x").status_code == 401
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{url}/v1/payment_intents/pi_x", timeout=1)


# --------------------------------------------------------------------------- webhooks


@pytest.fixture
def signed_event() -> Iterator[tuple[bytes, int]]:
    intent = {"id": "pi_123", "object": "payment_intent", "amount": 1099, "currency": "usd"}
    event = make_event("payment_intent.succeeded", intent, event_id="evt_123")
    yield json.dumps(event).encode(), int(time.time())


def test_sign_payload_matches_the_sdk(signed_event: tuple[bytes, int]) -> None:
    body, now = signed_event
    ours = sign_payload(body, WEBHOOK_SECRET, timestamp=now)
    sdk = stripe.WebhookSignature.generate_signature_header(
        body.decode(), WEBHOOK_SECRET, timestamp=now
    )
    assert ours == sdk


def test_construct_event_accepts_sign_payload(signed_event: tuple[bytes, int]) -> None:
    body, _ = signed_event
    header = sign_payload(body, WEBHOOK_SECRET)
    event = stripe.Webhook.construct_event(body, header, WEBHOOK_SECRET, tolerance=300)
    assert (event.id, event.type, event.object) == ("evt_123", "payment_intent.succeeded", "event")
    assert event.data.object["id"] == "pi_123"
    assert stripe.WebhookSignature.verify_header(body, header, WEBHOOK_SECRET, 300) is True


def test_webhook_rejects_wrong_secret_and_stale_timestamp(
    signed_event: tuple[bytes, int],
) -> None:
    body, now = signed_event
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(
            body, sign_payload(body, "whsec_wrong"), WEBHOOK_SECRET, tolerance=300
        )
    stale = sign_payload(body, WEBHOOK_SECRET, timestamp=now - 301)
    with pytest.raises(stripe.SignatureVerificationError, match="tolerance"):
        stripe.WebhookSignature.verify_header(body, stale, WEBHOOK_SECRET, 300)
    fresh_enough = sign_payload(body, WEBHOOK_SECRET, timestamp=now - 200)
    assert stripe.WebhookSignature.verify_header(body, fresh_enough, WEBHOOK_SECRET, 300)
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.WebhookSignature.verify_header(body + b" ", fresh_enough, WEBHOOK_SECRET, 300)


def test_webhook_accepts_several_v1_values_when_one_is_right(
    signed_event: tuple[bytes, int],
) -> None:
    body, now = signed_event
    right = sign_payload(body, WEBHOOK_SECRET, timestamp=now).split("v1=")[1]
    header = sign_payload(body, "whsec_old", timestamp=now, extra_v1=["0" * 64, right])
    assert header.count("v1=") == 3
    assert not header.split(",")[1].endswith(right)  # the right one is not first
    event = stripe.Webhook.construct_event(body, header, WEBHOOK_SECRET, tolerance=300)
    assert event.id == "evt_123"

    only_wrong = sign_payload(body, "whsec_old", timestamp=now, extra_v1=["0" * 64])
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(body, only_wrong, WEBHOOK_SECRET, tolerance=300)


async def test_generated_events_round_trip_through_webhook_verification(
    client: stripe.StripeClient, fake_stripe: FakeStripe
) -> None:
    paid = await _paid(client)
    (succeeded,) = fake_stripe.events_of("payment_intent.succeeded")
    assert succeeded["data"]["object"]["id"] == paid.id
    assert succeeded["data"]["object"]["amount_received"] == 1099
    assert succeeded["request"]["id"] is not None

    body, headers = signed_webhook(succeeded, WEBHOOK_SECRET)
    event = stripe.Webhook.construct_event(
        body, headers["Stripe-Signature"], WEBHOOK_SECRET, tolerance=300
    )
    assert event.type == "payment_intent.succeeded"
    assert event.data.object["latest_charge"] == paid.latest_charge

    built = fake_stripe.event("charge.refunded", fake_stripe.get_charge(str(paid.latest_charge)))
    assert built["object"] == "event"
    assert built["id"].startswith("evt_")
    assert built["data"]["object"]["object"] == "charge"
    assert built["livemode"] is False


async def test_events_are_listed_newest_first_by_type_and_time_in_pages(
    client: stripe.StripeClient, fake_stripe: FakeStripe
) -> None:
    paid = []
    for _ in range(3):
        intent = await _intent(client, payment_method="pm_card_visa", confirm=True)
        paid.append(intent.id)
    newest_first = list(reversed(fake_stripe.events_of("payment_intent.succeeded")))
    assert [e["data"]["object"]["id"] for e in newest_first] == list(reversed(paid))
    types: Any = ["payment_intent.succeeded", "charge.refunded"]
    first = await client.v1.events.list_async({"types": types, "limit": 2})
    assert [e.id for e in first.data] == [e["id"] for e in newest_first[:2]]
    assert first.has_more is True and first.object == "list" and first.url == "/v1/events"
    rest = await client.v1.events.list_async(
        {"types": types, "limit": 2, "starting_after": first.data[-1].id}
    )
    assert [e.id for e in rest.data] == [newest_first[2]["id"]]
    assert rest.has_more is False
    assert rest.data[0].to_dict() == newest_first[2]  # the event as it was emitted
    # one type, with a wildcard; a time range; every event of the account
    charges = await client.v1.events.list_async({"type": "charge.*", "limit": 100})
    assert {e.type for e in charges.data} == {"charge.succeeded"}
    later = await client.v1.events.list_async(
        {"created": {"gte": int(time.time()) + 60}, "limit": 100}
    )
    assert later.data == [] and later.has_more is False
    everything = await client.v1.events.list_async({"limit": 100})
    assert len(everything.data) == len(fake_stripe.events)
    with pytest.raises(stripe.InvalidRequestError):
        await client.v1.events.list_async({"limit": 101})
    with pytest.raises(stripe.InvalidRequestError):
        await client.v1.events.list_async({"starting_after": "evt_unknown"})


async def test_events_older_than_thirty_days_are_not_listed() -> None:
    now = [time.time() - 31 * 86400]
    with FakeStripe(clock=lambda: now[0]) as fake:
        client, http_client = _client(fake)
        await _intent(client)
        now[0] = time.time()
        await _intent(client)
        listed = await client.v1.events.list_async({"type": "payment_intent.created"})
        await http_client.close_async()  # type: ignore[no-untyped-call,unused-ignore]
    assert len(fake.events_of("payment_intent.created")) == 2
    assert len(listed.data) == 1
