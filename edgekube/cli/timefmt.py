"""Time rendering as kubectl does it: AGE columns (duration.HumanDuration) and describe's RFC 1123 stamps."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

UNKNOWN = "<unknown>"


def parse_timestamp(value: object) -> datetime | None:
    """Parse an RFC 3339 timestamp to an aware datetime; None when absent or unreadable."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def human_duration(delta: timedelta) -> str:
    """Port of k8s.io/apimachinery duration.HumanDuration: precision drops as the duration grows."""
    seconds = int(delta.total_seconds())
    # Up to 2 s in the future is clock skew between hosts, not an error.
    if seconds < -1:
        return "<invalid>"
    if seconds < 0:
        return "0s"
    if seconds < 120:
        return f"{seconds}s"
    minutes = seconds // 60
    if minutes < 10:
        rest = seconds % 60
        return f"{minutes}m{rest}s" if rest else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    hours = seconds // 3600
    if hours < 8:
        rest = minutes % 60
        return f"{hours}h{rest}m" if rest else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    days = hours // 24
    if hours < 24 * 8:
        rest = hours % 24
        return f"{days}d{rest}h" if rest else f"{days}d"
    if hours < 24 * 365 * 2:
        return f"{days}d"
    years = days // 365
    if hours < 24 * 365 * 8:
        rest = days % 365
        return f"{years}y{rest}d" if rest else f"{years}y"
    return f"{years}y"


def age(timestamp: object, now: datetime | None = None) -> str:
    """Format the AGE column for an RFC 3339 creation timestamp."""
    then = parse_timestamp(timestamp)
    if then is None:
        return UNKNOWN
    return human_duration((now or datetime.now(UTC)) - then)


def rfc1123(timestamp: object) -> str:
    """Format a timestamp as describe does (Go's RFC1123Z), e.g. `Mon, 02 Jan 2006 15:04:05 +0000`."""
    then = parse_timestamp(timestamp)
    if then is None:
        return str(timestamp) if timestamp else UNKNOWN
    return then.strftime("%a, %d %b %Y %H:%M:%S %z")
