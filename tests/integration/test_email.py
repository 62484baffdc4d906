"""Email integration (SPEC §10) against real peers on 127.0.0.1.

Rendering runs the built-in (and overridden) Jinja2 templates; the SMTP sender talks to an
aiosmtpd server (plain, STARTTLS + AUTH with a throw-away self-signed certificate, and
implicit TLS) that can be scripted to answer 4yz / 5yz; the SendGrid sender talks to a
small stdlib HTTP server speaking `/v3/mail/send` and `/v3/scopes`.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import email
import email.policy
import html as html_module
import ipaddress
import json
import re
import socket
import ssl
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage as MimeMessage
from email.utils import parseaddr
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from orderhub.delivery.integrations.base import (
    DeliveryMessage,
    EmailMessage,
    PermanentDeliveryError,
    TransientDeliveryError,
)
from orderhub.delivery.integrations.email.file import FileEmailSender
from orderhub.delivery.integrations.email.render import EMAIL_EVENTS, EmailRenderer
from orderhub.delivery.integrations.email.sendgrid import SendGridEmailSender
from orderhub.delivery.integrations.email.smtp import SmtpEmailSender
from tests.fixtures.orders import api_order

SENDER = "Orderhub Shop <orders@shop.test>"
NOW = dt.datetime(2025, 11, 29, 10, 30, tzinfo=dt.UTC)
ALL_EVENTS = (
    "order.created",
    "order.paid",
    "order.payment_failed",
    "order.processing",
    "order.shipped",
    "order.delivered",
    "order.updated",
    "order.cancelled",
    "order.partially_refunded",
    "order.refunded",
)
MAILING_EVENTS = (
    "order.created",
    "order.paid",
    "order.payment_failed",
    "order.shipped",
    "order.tracking_updated",  # a tracking number added or changed after shipping
    "order.cancelled",
    "order.partially_refunded",
    "order.refunded",
)
ORDER_ID = "0192f0c4-5b7e-7cc3-9a40-4f1d2e3c4b5a"


# -- orders and messages ------------------------------------------------------------------


def make_order(**overrides: Any) -> dict[str, Any]:
    """The seed's order exactly as the API presents it (the shared `api_order`), with a
    fixed id unless `id` is given."""
    return api_order(str(overrides.pop("id", "0192f0c4-5b7e-7cc3-9a40-4f1d2e3c4b5a")), **overrides)


def delivery(
    event_type: str = "order.created",
    order: dict[str, Any] | None = None,
    delivery_id: str = "dlv-0001",
    event_id: str = "evt-0001",
) -> DeliveryMessage:
    return DeliveryMessage(
        delivery_id=delivery_id,
        event_id=event_id,
        event_type=event_type,
        occurred_at=NOW,
        order=order if order is not None else make_order(),
        order_version=2,
    )


def order_for(event_type: str) -> dict[str, Any]:
    """An order in a state that fits the event (tracking number, refunds)."""
    if event_type in ("order.shipped", "order.tracking_updated"):
        return make_order(status="shipped", paymentStatus="completed", trackingNumber="1Z999AA1")
    if event_type == "order.cancelled":
        return make_order(status="cancelled", paymentStatus="cancelled")
    if event_type in ("order.partially_refunded", "order.refunded"):
        amount = 109.97 if event_type == "order.refunded" else 10
        refund = {
            "id": "re_1",
            "amount": amount,
            "reason": "requested_by_customer",
            "status": "succeeded",
            "createdAt": "2025-11-30T10:00:00.000Z",
        }
        return make_order(
            status="refunded" if event_type == "order.refunded" else "paid",
            paymentStatus=event_type.removeprefix("order."),
            refunds=[refund],
            refundedAmount=amount,
        )
    return make_order()


def rendered(renderer: EmailRenderer, event_type: str) -> EmailMessage:
    """The built-in email for `event_type`, for an order in a state that fits it."""
    message = renderer.render(delivery(event_type, order_for(event_type)), SENDER)
    assert message is not None
    return message


def email_message(delivery_id: str = "dlv-0001", subject: str = "Hello") -> EmailMessage:
    return EmailMessage(
        delivery_id=delivery_id,
        event_id="evt-0001",
        sender=SENDER,
        to="john.doe@example.com",
        subject=subject,
        text="Plain text body\n",
        html="<p>HTML body</p>\n",
    )


@pytest.fixture(scope="module")
def renderer() -> EmailRenderer:
    return EmailRenderer()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def parts_of(mime: MimeMessage) -> dict[str, str]:
    """Each part's decoded text, with the wire's CRLF line ends read back as `\n`."""
    return {
        part.get_content_type(): part.get_content().replace("\r\n", "\n")
        for part in mime.iter_parts()
    }


# -- rendering ----------------------------------------------------------------------------


def test_email_events_are_the_spec_list() -> None:
    assert frozenset(MAILING_EVENTS) == EMAIL_EVENTS


@pytest.mark.parametrize("event_type", MAILING_EVENTS)
def test_every_email_event_names_order_items_and_total(
    renderer: EmailRenderer, event_type: str
) -> None:
    message = rendered(renderer, event_type)
    assert message.to == "john.doe@example.com"
    assert message.sender == SENDER
    assert message.delivery_id == "dlv-0001"
    assert message.event_id == "evt-0001"
    # a short reference in the subject, the whole id in the body
    assert "2e3c4b5a" in message.subject and ORDER_ID not in message.subject
    assert "\n" not in message.subject
    for body in (message.text, message.html):
        assert ORDER_ID in body
        assert "Product A" in body
        assert "Product B" in body
        assert "29.99" in body
        assert "49.99" in body
        assert "109.97 USD" in body
    assert "Product A x 2 @ 29.99 USD" in message.text
    assert ">2</td>" in message.html
    assert message.html.lstrip().startswith("<!DOCTYPE html>")


def test_subjects_differ_per_event(renderer: EmailRenderer) -> None:
    subjects = set()
    for event_type in MAILING_EVENTS:
        message = renderer.render(delivery(event_type, order_for(event_type)), SENDER)
        assert message is not None
        subjects.add(message.subject)
    assert len(subjects) == len(MAILING_EVENTS)


def test_shipped_names_tracking_number(renderer: EmailRenderer) -> None:
    message = renderer.render(delivery("order.shipped", order_for("order.shipped")), SENDER)
    assert message is not None
    assert "1Z999AA1" in message.text
    assert "1Z999AA1" in message.html


def test_shipped_without_tracking_number_has_no_tracking_line(renderer: EmailRenderer) -> None:
    order = make_order(status="shipped", paymentStatus="completed")
    message = renderer.render(delivery("order.shipped", order), SENDER)
    assert message is not None
    for body in (message.text, message.html):
        assert "Tracking number:" not in body and "None" not in body
        assert "tracking number as soon as" in body


def test_tracking_number_email_names_the_number(renderer: EmailRenderer) -> None:
    message = rendered(renderer, "order.tracking_updated")
    assert message.subject == "Tracking number for order 2e3c4b5a: 1Z999AA1"
    for body in (message.text, message.html):
        assert "1Z999AA1" in body


def test_sender_is_the_shop_name_and_the_text_names_the_shop() -> None:
    renderer = EmailRenderer(shop_name="Zoë's Tea & Co")
    message = renderer.render(delivery("order.paid"), "orders@shop.test")
    assert message is not None
    assert parseaddr(message.sender) == ("Zoë's Tea & Co", "orders@shop.test")
    assert "Zoë's Tea & Co" in message.text
    assert "Zoë&#39;s Tea &amp; Co" in message.html
    named = renderer.render(delivery("order.paid"), "Billing <billing@shop.test>")
    assert named is not None
    assert named.sender == "Billing <billing@shop.test>"  # a name in EMAIL_FROM wins


@pytest.mark.parametrize(
    ("reason", "words"),
    [
        ("requested_by_customer", "requested by you"),
        ("duplicate", "a duplicate payment"),
        ("fraudulent", "a fraudulent payment"),
    ],
)
def test_refund_reason_is_in_words(renderer: EmailRenderer, reason: str, words: str) -> None:
    order = order_for("order.partially_refunded")
    order["refunds"][0]["reason"] = reason
    message = renderer.render(delivery("order.partially_refunded", order), SENDER)
    assert message is not None
    for body in (message.text, message.html):
        assert f"Reason: {reason}" not in body
        assert f"Reason: {words}" in body


def test_an_unpaid_cancelled_order_is_told_nothing_about_refunds(renderer: EmailRenderer) -> None:
    message = renderer.render(delivery("order.cancelled", order_for("order.cancelled")), SENDER)
    assert message is not None
    for body in (message.text, message.html):
        assert "cancelled" in body
        assert "refund" not in body.lower() and "charged" not in body.lower()


def test_a_paid_cancelled_order_is_told_its_refund_is_on_its_way(renderer: EmailRenderer) -> None:
    refund = {
        "id": "cancel-1",
        "amount": 109.97,
        "reason": "requested_by_customer",
        "status": "requested",
        "createdAt": "2025-11-30T10:00:00.000Z",
    }
    order = make_order(status="cancelled", paymentStatus="completed", refunds=[refund])
    message = renderer.render(delivery("order.cancelled", order), SENDER)
    assert message is not None
    assert "refund of 109.97 USD is on its way" in message.text
    assert "refund of <strong>109.97 USD</strong> is on its way" in message.html


def _paragraphs(html: str) -> list[str]:
    """The visible text of each heading and paragraph of an HTML email."""
    blocks = re.findall(r"<(p|h1)\b[^>]*>(.*?)</\1>", html, flags=re.S)
    texts = [html_module.unescape(re.sub(r"<[^>]+>", "", block)) for _, block in blocks]
    return [" ".join(text.split()) for text in texts if text.strip()]


@pytest.mark.parametrize("event_type", MAILING_EVENTS)
def test_html_is_a_table_layout_with_inline_styles_and_the_text_part_says_the_same(
    renderer: EmailRenderer, event_type: str
) -> None:
    message = rendered(renderer, event_type)
    html = message.html
    assert "<style" not in html and "class=" not in html and "<div" not in html
    assert html.count('<table role="presentation"') >= 2  # the frame and the items
    assert '<body style="' in html
    text = " ".join(message.text.split())
    paragraphs = _paragraphs(html)
    assert len(paragraphs) >= 6  # shop, heading, greeting, copy, order, footer
    for paragraph in paragraphs:
        assert paragraph in text, f"{paragraph!r} is in the HTML only"


@pytest.mark.parametrize("event_type", MAILING_EVENTS)
async def test_every_subject_reads_back_exactly(
    renderer: EmailRenderer, tmp_path: Path, smtp_server: SmtpPeer, event_type: str
) -> None:
    message = rendered(renderer, event_type)
    await FileEmailSender(tmp_path).send(message)
    await smtp_sender(smtp_server.url()).send(message)
    raw_file = (tmp_path / "dlv-0001.eml").read_bytes()
    raw_smtp = smtp_server.handler.messages[0].content
    for raw in (raw_file, raw_smtp):
        for policy in (email.policy.compat32, email.policy.default):
            parsed = email.message_from_bytes(raw, policy=policy)
            assert parsed["Subject"] == message.subject, raw[:400]
            assert parseaddr(str(parsed["From"])) == parseaddr(message.sender)


async def test_a_long_override_subject_reads_back_exactly(
    tmp_path: Path, smtp_server: SmtpPeer
) -> None:
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "receipt.subject.j2").write_text(
        "Your receipt from the very long named shop for order {{ order_id }} of "
        "{{ total }} {{ currency }}, with thanks from all of us"
    )
    renderer = EmailRenderer(tmp_path / "templates")
    message = renderer.render(delivery("order.paid"), SENDER)
    assert message is not None and len(message.subject) > 120
    await FileEmailSender(tmp_path).send(message)
    await smtp_sender(smtp_server.url()).send(message)
    for raw in ((tmp_path / "dlv-0001.eml").read_bytes(), smtp_server.handler.messages[0].content):
        assert all(len(line) <= 998 for line in raw.split(b"\r\n"))
        assert email.message_from_bytes(raw)["Subject"] == message.subject


@pytest.mark.parametrize(
    ("event_type", "amount"),
    [("order.partially_refunded", "10.00 USD"), ("order.refunded", "109.97 USD")],
)
def test_refund_says_how_much(renderer: EmailRenderer, event_type: str, amount: str) -> None:
    message = rendered(renderer, event_type)
    assert f"refunded {amount}" in message.text
    assert amount in message.subject
    assert amount in message.html


@pytest.mark.parametrize(
    ("currency", "price", "total", "price_text", "total_text"),
    [
        ("usd", 29.99, 109.97, "29.99 USD", "109.97 USD"),
        ("jpy", 30, 100, "30 JPY", "100 JPY"),
        ("kwd", 1.5, 3.25, "1.500 KWD", "3.250 KWD"),
        ("eur", 10, 20, "10.00 EUR", "20.00 EUR"),
    ],
)
def test_amounts_are_formatted_for_the_currency(
    renderer: EmailRenderer,
    currency: str,
    price: float,
    total: float,
    price_text: str,
    total_text: str,
) -> None:
    order = make_order(
        currency=currency,
        items=[{"id": "sku-1", "name": "Thing", "quantity": 1, "price": price}],
        totalAmount=total,
    )
    message = renderer.render(delivery("order.paid", order), SENDER)
    assert message is not None
    for body in (message.text, message.html):
        assert price_text in body
        assert f"Total: {total_text}" in body or f"<strong>{total_text}</strong>" in body
    if currency == "jpy":
        assert "100.0" not in message.text
        assert "100.0" not in message.html


def test_extra_amounts_appear_only_when_set(renderer: EmailRenderer) -> None:
    plain = renderer.render(delivery(), SENDER)
    assert plain is not None
    assert "Shipping" not in plain.text
    order = make_order(shippingAmount=5, taxAmount=1.25, discountAmount=2)
    message = renderer.render(delivery(order=order), SENDER)
    assert message is not None
    assert "Shipping: 5.00 USD" in message.text
    assert "Tax: 1.25 USD" in message.text
    assert "Discount: -2.00 USD" in message.text


def test_customer_text_is_escaped_in_html_and_raw_in_text(renderer: EmailRenderer) -> None:
    evil = '<script>alert("x")</script>'
    order = make_order(
        customerName=evil,
        items=[{"id": "sku-1", "name": "<b>Bold</b> & co", "quantity": 1, "price": 109.97}],
    )
    message = renderer.render(delivery(order=order), SENDER)
    assert message is not None
    assert "<script>" not in message.html
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in message.html
    assert "&lt;b&gt;Bold&lt;/b&gt; &amp; co" in message.html
    assert evil in message.text
    assert "<b>Bold</b> & co" in message.text


@pytest.mark.parametrize(
    "event_type", [e for e in ALL_EVENTS if e not in MAILING_EVENTS] + ["order.unknown"]
)
def test_events_without_email_render_nothing(renderer: EmailRenderer, event_type: str) -> None:
    assert renderer.render(delivery(event_type), SENDER) is None
    # not even a missing address matters for them
    order = dict(make_order())
    order["customerEmail"] = ""
    assert renderer.render(delivery(event_type, order), SENDER) is None


@pytest.mark.parametrize("address", ["", "   ", None])
def test_missing_address_is_permanent(renderer: EmailRenderer, address: str | None) -> None:
    order = dict(make_order())
    order["customerEmail"] = address
    with pytest.raises(PermanentDeliveryError, match="missing address"):
        renderer.render(delivery(order=order), SENDER)
    del order["customerEmail"]
    with pytest.raises(PermanentDeliveryError, match="missing address"):
        renderer.render(delivery(order=order), SENDER)


def test_override_dir_replaces_templates_file_by_file(tmp_path: Path) -> None:
    (tmp_path / "shipped.subject.j2").write_text("Custom: {{ order_id }} via {{ tracking_number }}")
    (tmp_path / "confirmation.html.j2").write_text(
        "<p>Custom hello {{ customer_name }}</p>{% include '_items.html.j2' %}"
    )
    renderer = EmailRenderer(tmp_path)
    shipped = renderer.render(delivery("order.shipped", order_for("order.shipped")), SENDER)
    assert shipped is not None
    assert shipped.subject == f"Custom: {ORDER_ID} via 1Z999AA1"
    assert "Good news" in shipped.text  # built-in body still used
    order = make_order(customerName="<i>Ann</i>")
    created = renderer.render(delivery("order.created", order), SENDER)
    assert created is not None
    assert created.html.startswith("<p>Custom hello &lt;i&gt;Ann&lt;/i&gt;</p>")  # escaped too
    assert "109.97 USD" in created.html  # the built-in partial it includes
    assert created.subject.startswith("Order confirmation")  # built-in subject
    assert "Thank you for your order" in created.text  # built-in text
    paid = renderer.render(delivery("order.paid"), SENDER)
    assert paid is not None
    assert "Payment received" in paid.html  # untouched events are entirely built in


def test_override_dir_must_exist(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="EMAIL_TEMPLATES_DIR"):
        EmailRenderer(tmp_path / "nope")


def test_broken_override_is_a_permanent_error(tmp_path: Path) -> None:
    (tmp_path / "receipt.txt.j2").write_text("{{ no_such_variable }}")
    renderer = EmailRenderer(tmp_path)
    with pytest.raises(PermanentDeliveryError, match="no_such_variable"):
        renderer.render(delivery("order.paid"), SENDER)


# -- file backend -------------------------------------------------------------------------


async def test_file_backend_writes_one_eml_per_delivery(
    renderer: EmailRenderer, tmp_path: Path
) -> None:
    mail_dir = tmp_path / "mail" / "out"
    sender = FileEmailSender(mail_dir)
    message = renderer.render(delivery("order.created", delivery_id="dlv-A"), SENDER)
    assert message is not None
    await sender.send(message)
    path = mail_dir / "dlv-A.eml"
    assert [p.name for p in mail_dir.iterdir()] == ["dlv-A.eml"]
    raw = path.read_bytes()
    assert b"\r\n" in raw  # RFC 5322 line endings
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(parsed, MimeMessage)
    assert parsed.get_content_type() == "multipart/alternative"
    assert parsed["To"] == "john.doe@example.com"
    assert parsed["From"] == SENDER
    assert parsed["Subject"] == message.subject
    assert parsed["Message-ID"] == "<dlv-A@shop.test>"
    assert parsed["X-Orderhub-Event-Id"] == "evt-0001"
    parts = parts_of(parsed)
    assert set(parts) == {"text/plain", "text/html"}
    assert "109.97 USD" in parts["text/plain"]
    assert "109.97 USD" in parts["text/html"]


async def test_file_backend_retry_overwrites(tmp_path: Path) -> None:
    sender = FileEmailSender(tmp_path)
    await sender.send(email_message("dlv-A", subject="first"))
    await sender.send(email_message("dlv-A", subject="second"))
    await sender.send(email_message("dlv-B", subject="other"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dlv-A.eml", "dlv-B.eml"]
    parsed = email.message_from_bytes((tmp_path / "dlv-A.eml").read_bytes())
    assert parsed["Subject"] == "second"


async def test_file_backend_non_ascii_content(tmp_path: Path) -> None:
    sender = FileEmailSender(tmp_path)
    message = EmailMessage(
        delivery_id="dlv-U",
        event_id="evt-U",
        sender=SENDER,
        to="john.doe@example.com",
        subject="Bestellung für Zoë ✓",
        text="Grüße — 100 ¥\n",
        html="<p>Grüße — 100 ¥</p>\n",
    )
    await sender.send(message)
    parsed = email.message_from_bytes(
        (tmp_path / "dlv-U.eml").read_bytes(), policy=email.policy.default
    )
    assert isinstance(parsed, MimeMessage)
    assert parsed["Subject"] == "Bestellung für Zoë ✓"
    assert parts_of(parsed)["text/plain"] == "Grüße — 100 ¥\n"


async def test_file_backend_refuses_unsafe_delivery_id(tmp_path: Path) -> None:
    with pytest.raises(PermanentDeliveryError):
        await FileEmailSender(tmp_path).send(email_message("../escape"))
    assert list(tmp_path.iterdir()) == []


async def test_file_backend_probe(tmp_path: Path) -> None:
    await FileEmailSender(tmp_path / "new" / "dir").probe()
    assert (tmp_path / "new" / "dir").is_dir()
    assert list((tmp_path / "new" / "dir").iterdir()) == []
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    down = FileEmailSender(blocker / "mail")
    with pytest.raises(OSError):
        await down.probe()
    with pytest.raises(TransientDeliveryError):
        await down.send(email_message())


# -- SMTP: a real aiosmtpd server ---------------------------------------------------------


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    content: bytes
    tls: bool
    login: bytes | None

    @property
    def mime(self) -> MimeMessage:
        parsed = email.message_from_bytes(self.content, policy=email.policy.default)
        assert isinstance(parsed, MimeMessage)
        return parsed


@dataclass
class RecordingHandler:
    """Records accepted messages; scripted answers are used (first in, first out) first."""

    messages: list[Received] = field(default_factory=list)
    rcpt_answers: list[str] = field(default_factory=list)
    data_answers: list[str] = field(default_factory=list)

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: Any
    ) -> str:
        if self.rcpt_answers:
            return self.rcpt_answers.pop(0)
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.data_answers:
            return self.data_answers.pop(0)
        login = session.auth_data.login if isinstance(session.auth_data, LoginPassword) else None
        self.messages.append(
            Received(
                mail_from=envelope.mail_from,
                rcpt_tos=list(envelope.rcpt_tos),
                content=envelope.original_content,
                tls=server.transport.get_extra_info("ssl_object") is not None,
                login=login,
            )
        )
        return "250 Message accepted for delivery"


@dataclass
class SmtpPeer:
    handler: RecordingHandler
    port: int

    def url(self, scheme: str = "smtp", userinfo: str = "") -> str:
        return f"{scheme}://{userinfo}127.0.0.1:{self.port}"


@dataclass
class Tls:
    server: ssl.SSLContext
    client: ssl.SSLContext


@pytest.fixture(scope="module")
def tls() -> Tls:
    """A throw-away self-signed certificate for 127.0.0.1."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    # load_cert_chain wants files; keep them in memory-backed temp files via a pipe-less route
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        cert_file, key_file = Path(folder) / "cert.pem", Path(folder) / "key.pem"
        cert_file.write_bytes(cert_pem)
        key_file.write_bytes(key_pem)
        server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        server.load_cert_chain(cert_file, key_file)
    client = ssl.create_default_context(cadata=cert_pem.decode())
    return Tls(server=server, client=client)


def _authenticator(
    server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
) -> AuthResult:
    ok = (
        isinstance(auth_data, LoginPassword)
        and auth_data.login == b"shop"
        and auth_data.password == b"s3cret/pw"
    )
    return AuthResult(success=ok, handled=False, auth_data=auth_data)


def _start(handler: RecordingHandler, **kwargs: Any) -> Iterator[SmtpPeer]:
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port, **kwargs)
    controller.start()
    try:
        yield SmtpPeer(handler, port)
    finally:
        controller.stop()


@pytest.fixture
def smtp_server() -> Iterator[SmtpPeer]:
    yield from _start(RecordingHandler())


@pytest.fixture
def smtp_starttls_server(tls: Tls) -> Iterator[SmtpPeer]:
    """STARTTLS offered; AUTH (after TLS) required."""
    yield from _start(
        RecordingHandler(),
        tls_context=tls.server,
        require_starttls=True,
        authenticator=_authenticator,
        auth_required=True,
        auth_require_tls=True,
    )


@pytest.fixture
def smtps_server(tls: Tls) -> Iterator[SmtpPeer]:
    yield from _start(RecordingHandler(), ssl_context=tls.server)


def smtp_sender(url: str, timeout: float = 2, tls: Tls | None = None) -> SmtpEmailSender:
    return SmtpEmailSender(
        url,
        timeout=timeout,
        tls_context=tls.client if tls else None,
        local_hostname="orderhub.test",
    )


async def test_smtp_delivers(renderer: EmailRenderer, smtp_server: SmtpPeer) -> None:
    message = renderer.render(delivery("order.shipped", order_for("order.shipped")), SENDER)
    assert message is not None
    await smtp_sender(smtp_server.url()).send(message)
    [received] = smtp_server.handler.messages
    assert received.mail_from == "orders@shop.test"
    assert received.rcpt_tos == ["john.doe@example.com"]
    assert not received.tls
    mime = received.mime
    assert mime["Message-ID"] == "<dlv-0001@shop.test>"
    assert mime["X-Orderhub-Event-Id"] == "evt-0001"
    assert mime["Subject"] == message.subject
    parts = parts_of(mime)
    assert "1Z999AA1" in parts["text/plain"]
    assert "1Z999AA1" in parts["text/html"]


async def test_smtp_starttls_and_auth(smtp_starttls_server: SmtpPeer, tls: Tls) -> None:
    url = smtp_starttls_server.url(userinfo="shop:s3cret%2Fpw@")
    await smtp_sender(url, tls=tls).send(email_message())
    [received] = smtp_starttls_server.handler.messages
    assert received.tls
    assert received.login == b"shop"


async def test_smtp_wrong_password_is_permanent(smtp_starttls_server: SmtpPeer, tls: Tls) -> None:
    url = smtp_starttls_server.url(userinfo="shop:wrong@")
    with pytest.raises(PermanentDeliveryError, match="SMTP 535"):
        await smtp_sender(url, tls=tls).send(email_message())
    assert smtp_starttls_server.handler.messages == []


async def test_smtp_untrusted_certificate_is_transient(smtp_starttls_server: SmtpPeer) -> None:
    url = smtp_starttls_server.url(userinfo="shop:s3cret%2Fpw@")
    with pytest.raises(TransientDeliveryError):
        await smtp_sender(url).send(email_message())  # system trust store: self-signed fails


async def test_smtps_implicit_tls(smtps_server: SmtpPeer, tls: Tls) -> None:
    await smtp_sender(smtps_server.url("smtps"), tls=tls).send(email_message())
    [received] = smtps_server.handler.messages
    assert received.tls


@pytest.mark.parametrize("stage", ["rcpt", "data"])
async def test_smtp_4yz_is_transient_then_delivers(smtp_server: SmtpPeer, stage: str) -> None:
    answers = (
        smtp_server.handler.rcpt_answers if stage == "rcpt" else smtp_server.handler.data_answers
    )
    answers.append("451 4.3.0 try later")
    sender = smtp_sender(smtp_server.url())
    with pytest.raises(TransientDeliveryError, match="SMTP 451") as caught:
        await sender.send(email_message())
    assert not isinstance(caught.value, PermanentDeliveryError)
    assert smtp_server.handler.messages == []
    await sender.send(email_message())  # the retry
    assert len(smtp_server.handler.messages) == 1


@pytest.mark.parametrize(
    ("stage", "answer"),
    [("rcpt", "550 5.1.1 no such user"), ("data", "554 5.6.0 message rejected")],
)
async def test_smtp_5yz_is_permanent(smtp_server: SmtpPeer, stage: str, answer: str) -> None:
    handler = smtp_server.handler
    (handler.rcpt_answers if stage == "rcpt" else handler.data_answers).append(answer)
    with pytest.raises(PermanentDeliveryError, match=f"SMTP {answer[:3]}"):
        await smtp_sender(smtp_server.url()).send(email_message())
    assert handler.messages == []


async def test_smtp_server_down_is_transient() -> None:
    sender = smtp_sender(f"smtp://127.0.0.1:{free_port()}")
    with pytest.raises(TransientDeliveryError):
        await sender.send(email_message())
    with pytest.raises(TransientDeliveryError):
        await sender.probe()


@pytest.fixture
async def silent_server() -> AsyncIterator[int]:
    """Accepts TCP connections and never says a word."""
    writers: list[asyncio.StreamWriter] = []

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    yield server.sockets[0].getsockname()[1]
    for writer in writers:
        writer.close()
    server.close()
    await server.wait_closed()


async def test_smtp_timeout_is_transient(silent_server: int) -> None:
    sender = smtp_sender(f"smtp://127.0.0.1:{silent_server}", timeout=0.3)
    with pytest.raises(TransientDeliveryError, match="timeout"):
        await sender.send(email_message())


async def test_smtp_probe(smtp_server: SmtpPeer, smtps_server: SmtpPeer, tls: Tls) -> None:
    await smtp_sender(smtp_server.url()).probe()
    await smtp_sender(smtps_server.url("smtps"), tls=tls).probe()
    assert smtp_server.handler.messages == []


def test_smtp_url_is_checked() -> None:
    for bad in ("http://host", "smtp://", "smtp://host:notaport", "host:25"):
        with pytest.raises(ValueError, match="SMTP_URL"):
            SmtpEmailSender(bad)
    sender = SmtpEmailSender("smtps://u:p%40ss@mail.example.com")
    assert (sender.hostname, sender.port, sender.use_tls) == ("mail.example.com", 465, True)
    assert (sender.username, sender.password) == ("u", "p@ss")
    assert "p@ss" not in repr(sender)
    assert SmtpEmailSender("smtp://mail.example.com").port == 587


# -- SendGrid: a local v3 server ----------------------------------------------------------

API_KEY = "SG.test-key"


@dataclass
class Answer:
    status: int
    body: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0


@dataclass
class FakeSendGrid:
    url: str
    bodies: list[dict[str, Any]] = field(default_factory=list)
    auth_headers: list[str] = field(default_factory=list)
    answers: list[Answer] = field(default_factory=list)


def _sendgrid_handler(state: FakeSendGrid) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _reply(self, answer: Answer) -> None:
            if answer.delay:
                time.sleep(answer.delay)
            payload = answer.body.encode()
            self.send_response(answer.status)
            for name, value in answer.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def _authorized(self) -> bool:
            auth = self.headers.get("Authorization", "")
            state.auth_headers.append(auth)
            if auth != f"Bearer {API_KEY}":
                msg = {"errors": [{"message": "The provided authorization grant is invalid"}]}
                self._reply(Answer(401, json.dumps(msg)))
                return False
            return True

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            raw = self.rfile.read(length)
            if self.path != "/v3/mail/send":
                self._reply(Answer(404, '{"errors":[{"message":"not found"}]}'))
                return
            if not self._authorized():
                return
            if state.answers:
                self._reply(state.answers.pop(0))
                return
            state.bodies.append(json.loads(raw))
            self._reply(Answer(202))

        def do_GET(self) -> None:
            if self.path != "/v3/scopes":
                self._reply(Answer(404, '{"errors":[{"message":"not found"}]}'))
                return
            if self._authorized():
                self._reply(Answer(200, '{"scopes":["mail.send"]}'))

    return Handler


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that timed out and left is expected here


@pytest.fixture
def sendgrid() -> Iterator[FakeSendGrid]:
    state = FakeSendGrid(url="")
    server = _QuietServer(("127.0.0.1", 0), _sendgrid_handler(state))
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
async def sg_sender(sendgrid: FakeSendGrid) -> AsyncIterator[SendGridEmailSender]:
    sender = SendGridEmailSender(API_KEY, sendgrid.url + "/", timeout=2)
    yield sender
    await sender.aclose()


async def test_sendgrid_delivers(
    renderer: EmailRenderer, sendgrid: FakeSendGrid, sg_sender: SendGridEmailSender
) -> None:
    message = renderer.render(delivery("order.paid"), SENDER)
    assert message is not None
    await sg_sender.send(message)
    [body] = sendgrid.bodies
    assert sendgrid.auth_headers == [f"Bearer {API_KEY}"]
    assert body["personalizations"] == [{"to": [{"email": "john.doe@example.com"}]}]
    assert body["from"] == {"email": "orders@shop.test", "name": "Orderhub Shop"}
    assert body["subject"] == message.subject
    assert body["content"] == [
        {"type": "text/plain", "value": message.text},
        {"type": "text/html", "value": message.html},
    ]
    assert body["custom_args"] == {"event_id": "evt-0001", "delivery_id": "dlv-0001"}
    assert body["headers"]["X-Orderhub-Event-Id"] == "evt-0001"


async def test_sendgrid_with_injected_client(sendgrid: FakeSendGrid) -> None:
    async with httpx.AsyncClient() as client:
        sender = SendGridEmailSender(API_KEY, sendgrid.url, client=client, timeout=2)
        await sender.send(email_message())
        await sender.aclose()  # does not close a client it was given
        assert not client.is_closed
    assert len(sendgrid.bodies) == 1


@pytest.mark.parametrize(
    ("answer", "retry_after"),
    [
        (Answer(500, '{"errors":[{"message":"internal"}]}'), None),
        (Answer(503, "unavailable", {"Retry-After": "3"}), 3.0),
        (Answer(429, '{"errors":[{"message":"too many"}]}', {"Retry-After": "7"}), 7.0),
        (Answer(403, '{"errors":[{"message":"forbidden"}]}'), None),
    ],
)
async def test_sendgrid_transient_answers(
    sendgrid: FakeSendGrid,
    sg_sender: SendGridEmailSender,
    answer: Answer,
    retry_after: float | None,
) -> None:
    sendgrid.answers.append(answer)
    with pytest.raises(TransientDeliveryError, match=f"HTTP {answer.status}") as caught:
        await sg_sender.send(email_message())
    assert caught.value.retry_after == retry_after
    await sg_sender.send(email_message())  # the retry goes through
    assert len(sendgrid.bodies) == 1


async def test_sendgrid_bad_key_is_transient(sendgrid: FakeSendGrid) -> None:
    sender = SendGridEmailSender("SG.rotated-away", sendgrid.url, timeout=2)
    try:
        with pytest.raises(TransientDeliveryError, match="HTTP 401"):
            await sender.send(email_message())
        with pytest.raises(TransientDeliveryError, match="HTTP 401"):
            await sender.probe()
    finally:
        await sender.aclose()
    assert sendgrid.bodies == []


async def test_sendgrid_400_is_permanent(
    sendgrid: FakeSendGrid, sg_sender: SendGridEmailSender
) -> None:
    errors = {"errors": [{"message": "Does not contain a valid address.", "field": "to"}]}
    sendgrid.answers.append(Answer(400, json.dumps(errors)))
    with pytest.raises(PermanentDeliveryError, match="valid address"):
        await sg_sender.send(email_message())


async def test_sendgrid_slow_is_transient(sendgrid: FakeSendGrid) -> None:
    sendgrid.answers.append(Answer(202, delay=1.5))
    sender = SendGridEmailSender(API_KEY, sendgrid.url, timeout=0.3)
    try:
        with pytest.raises(TransientDeliveryError, match="timed out"):
            await sender.send(email_message())
    finally:
        await sender.aclose()


async def test_sendgrid_refused_is_transient() -> None:
    sender = SendGridEmailSender(API_KEY, f"http://127.0.0.1:{free_port()}", timeout=2)
    try:
        with pytest.raises(TransientDeliveryError, match="connection"):
            await sender.send(email_message())
        with pytest.raises(TransientDeliveryError):
            await sender.probe()
    finally:
        await sender.aclose()


async def test_sendgrid_probe(sendgrid: FakeSendGrid, sg_sender: SendGridEmailSender) -> None:
    await sg_sender.probe()
    assert sendgrid.auth_headers == [f"Bearer {API_KEY}"]
    assert sendgrid.bodies == []


def test_sendgrid_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="SENDGRID_API_KEY"):
        SendGridEmailSender("")
    sender = SendGridEmailSender("SG.x", "")
    assert sender.api_base == "https://api.sendgrid.com"
    assert "SG.x" not in repr(sender)


# -- end to end: render, then each backend --------------------------------------------------


async def test_rendered_email_through_every_backend(
    renderer: EmailRenderer,
    tmp_path: Path,
    smtp_server: SmtpPeer,
    sendgrid: FakeSendGrid,
    sg_sender: SendGridEmailSender,
) -> None:
    order = make_order(
        customerName="<script>x</script>",
        currency="jpy",
        totalAmount=100,
        items=[{"id": "a", "name": "Tea", "quantity": 1, "price": 100}],
    )
    message = renderer.render(delivery("order.created", order), SENDER)
    assert message is not None
    await FileEmailSender(tmp_path).send(message)
    await smtp_sender(smtp_server.url()).send(message)
    await sg_sender.send(message)
    from_file = email.message_from_bytes(
        (tmp_path / "dlv-0001.eml").read_bytes(), policy=email.policy.default
    )
    assert isinstance(from_file, MimeMessage)
    for mime in (from_file, smtp_server.handler.messages[0].mime):
        parts = parts_of(mime)
        assert "100 JPY" in parts["text/plain"]
        assert "<script>x</script>" in parts["text/plain"]
        assert "&lt;script&gt;x&lt;/script&gt;" in parts["text/html"]
        assert "<script>" not in parts["text/html"]
    assert sendgrid.bodies[0]["content"][1]["value"] == message.html
