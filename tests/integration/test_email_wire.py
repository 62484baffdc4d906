"""The wire form of an email: the direct writer of the common message (`mime_bytes`'s
fast path) writes byte for byte what the standard library's email package writes for it
(boundary and Date aside, both chosen when written), and leaves every other message to
the library."""

from __future__ import annotations

import email
import email.policy
import itertools
import re

from orderhub.delivery.integrations.base import EmailMessage
from orderhub.delivery.integrations.email import render

SENDERS = [
    "orderhub <orders@shop.example>",
    "orders@shop.example",
    "O'Brien Shop <a.b@x.example>",
    '"Shop, Inc." <a@b.example>',
    "Ünï <a@b.example>",
    "Shop  Two <a@b.example>",
]
SUBJECTS = [
    "Your order 1a2b3c4d is confirmed",
    "Ünïcode subject",
    "=?utf-8?q?x?=",
    "two  spaces",
    " leading",
    "trailing ",
    "x" * 990,
    "x" * 100,
    "tab\there",
    "Order #1: 3 items (2 paid) [x] {y} \\z",
]
BODIES = [
    "",
    "Hello\n",
    "no line end",
    "Hello\r\nthere\r\n",
    "a\rb\n",
    "x" * 78 + "\n",
    "x" * 79 + "\n",
    ("x" * 100 + "\n") * 12,
    "é\n",
    ("é" * 50 + "\n") * 3,
    "line\n" * 12 + "y" * 120,
    "=\n",
    "trailing space \n",
    "a\x0cb\u2028c\n",
    "From me\n.\n",
]


def _library_bytes(message: EmailMessage, written: bytes) -> bytes:
    """What the email package writes, with the boundary and Date of `written`."""
    boundary = re.search(rb'boundary="([^"]+)"', written)
    date = re.search(rb"\r\nDate: ([^\r]+)\r\n", written)
    assert boundary is not None and date is not None
    mime = render.build_mime(message)
    mime.replace_header("Date", date.group(1).decode())
    mime.set_boundary(boundary.group(1).decode())
    return mime.as_bytes(policy=render.WIRE_POLICY)


def test_the_direct_writer_writes_what_the_library_writes() -> None:
    direct = 0
    for sender, subject, text, html in itertools.product(SENDERS, SUBJECTS, BODIES, BODIES[:3]):
        message = EmailMessage(
            delivery_id="0192f0c4-delivery",
            event_id="0192f0c4-event",
            sender=sender,
            to="customer+tag@example.com",
            subject=subject,
            text=text,
            html=html,
        )
        written = render.mime_bytes(message)
        assert written == _library_bytes(message, written), message
        direct += render.plain_mime_bytes(message) is not None
    assert direct > 300  # the plain ones were written directly


def test_a_plain_order_email_is_written_directly_and_reads_back_as_sent() -> None:
    message = EmailMessage(
        delivery_id="0192f0c4-delivery",
        event_id="0192f0c4-event",
        sender="orderhub <orders@shop.example>",
        to="customer@example.com",
        subject="Your order 1a2b3c4d is confirmed",
        text="Thank you, Ana.\n\nTotal: 109.97 EUR\n",
        html="<p>Thank you, Ana.</p>\n<p>Total: 109.97&nbsp;€</p>\n",
    )
    assert render.plain_mime_bytes(message) is not None
    parsed = email.message_from_bytes(render.mime_bytes(message), policy=email.policy.default)
    assert parsed["Subject"] == message.subject
    assert parsed["From"] == message.sender
    assert parsed["X-Orderhub-Delivery-Id"] == message.delivery_id
    text, html = parsed.iter_parts()
    assert text.get_content().replace("\r\n", "\n") == message.text  # type: ignore[attr-defined]
    assert html.get_content().replace("\r\n", "\n") == message.html  # type: ignore[attr-defined]
    assert html["Content-Transfer-Encoding"] == "quoted-printable"
