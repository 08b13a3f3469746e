"""Event-time days as the workers and the controller count them: whole days since 1970 of
the trips' wall-clock times (the contracts carry local-timestamp-millis, which fastavro
reads as naive datetimes), so a worker's day and the controller's day are the same day."""

from __future__ import annotations

from datetime import date, datetime, timedelta

__all__ = ["MS_PER_DAY", "day_number", "day_of", "from_wall_ms", "wall_ms"]

MS_PER_DAY = 86_400_000
_EPOCH_DAY = date(1970, 1, 1)
_EPOCH = datetime(1970, 1, 1)


def day_number(day: date) -> int:
    """Days since 1970-01-01."""
    return (day - _EPOCH_DAY).days


def day_of(number: int) -> date:
    """The date ``number`` days after 1970-01-01."""
    return _EPOCH_DAY + timedelta(days=number)


def wall_ms(at: datetime) -> int:
    """A naive wall-clock datetime as milliseconds since 1970."""
    return (at - _EPOCH) // timedelta(milliseconds=1)


def from_wall_ms(ms: int) -> datetime:
    return _EPOCH + timedelta(milliseconds=ms)
