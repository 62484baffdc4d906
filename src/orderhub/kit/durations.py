"""Spans of time as operators type them: `30m`, `24h`, `7d`; and `since` moments."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from orderhub.kit.errors import ValidationFailed

_DURATION = re.compile(r"^([1-9][0-9]{0,5})([mhd])$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days"}
SINCE_RULE = "must be a duration such as 30m, 24h or 7d, or an ISO 8601 time"


def parse_duration(text: str) -> timedelta | None:
    """`<n>m`, `<n>h` or `<n>d` (n from 1 to 999999); None for anything else."""
    match = _DURATION.fullmatch(text)
    if match is None:
        return None
    return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


def parse_since(text: str, now: datetime, field: str = "since") -> datetime:
    """A moment given as a span back from `now` (`7d`) or as an ISO 8601 time (a time
    without an offset is UTC). Anything else is a 400 naming `field`."""
    span = parse_duration(text.strip())
    if span is not None:
        return now - span
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValidationFailed.one(field, SINCE_RULE) from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
