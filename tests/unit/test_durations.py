"""`since` values: spans back from now and ISO 8601 times; what cannot be a moment is a 400."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from orderhub.kit.durations import parse_since
from orderhub.kit.errors import ValidationFailed

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


def test_a_span_goes_back_from_now() -> None:
    assert parse_since("7d", NOW) == NOW - timedelta(days=7)


def test_a_time_without_offset_is_utc() -> None:
    assert parse_since("2026-12-01T10:00", NOW) == datetime(2026, 12, 1, 10, 0, tzinfo=UTC)


@pytest.mark.parametrize("text", ["999999d", "nope", "2025-02-30"])
def test_what_is_no_moment_is_a_validation_error(text: str) -> None:
    """A span back past year 1 was a 500 (OverflowError); it is a 400 like any bad value."""
    with pytest.raises(ValidationFailed) as caught:
        parse_since(text, NOW, field="since")
    assert caught.value.details[0].field == "since"
