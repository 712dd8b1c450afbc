"""Cron schedules: 5-field expressions evaluated in a time zone (croniter does the arithmetic).

Ticks are computed in the schedule's zone, so ``0 7 * * 1-5`` in ``Europe/Madrid`` fires at 7:00
local time on both sides of a daylight-saving change.
"""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter

from faena.domain.errors import ValidationError


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValidationError(f"schedule: unknown time zone {name!r}") from None


def check_cron(expression: str, timezone: str = "UTC") -> None:
    """Raise :class:`ValidationError` unless ``expression`` is a valid 5-field cron."""
    zone(timezone)
    if len(expression.split()) != 5 or not croniter.is_valid(expression):
        raise ValidationError(
            f"schedule: {expression!r} is not a 5-field cron expression "
            "(minute hour day-of-month month day-of-week)"
        )


def next_tick(expression: str, timezone: str, after: float) -> float:
    """The first tick strictly after ``after`` (epoch seconds)."""
    start = datetime.fromtimestamp(after, UTC).astimezone(zone(timezone))
    found: datetime = croniter(expression, start).get_next(datetime)
    return found.timestamp()
