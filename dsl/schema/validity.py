"""How long an award of a currency stays spendable, and when it becomes spendable.

A currency in the schema declares both in words (docs/language.md, "Currencies"):

- ``validity``: ``"never"`` (the default: it never expires), ``"N days|weeks|months|years"``
  after it was earned, ``"to the end of the month|quarter|year"`` it was earned in, or both:
  ``"12 months to the end of the month"`` (twelve months on, then to that month's end);
- ``pending``: ``"N days|weeks"`` before an award is spendable (``""``, the default: at once).

Month arithmetic keeps the day of the month, clamped to the month's length (31 January plus
one month is 28 or 29 February). Calendar ends are the local midnight starting the next
period in the programme's time zone, like a calendar period's end in ``dsl.periods``.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo

#: The instant stored for "never expires": far beyond any event, yet a plain datetime.
NEVER = datetime(9999, 12, 31, tzinfo=UTC)
#: The most units a validity or a pending period may count (100 years in days).
MAX_UNITS = 36_600

_UNITS = {"day": "days", "days": "days", "week": "weeks", "weeks": "weeks", "month": "months",
          "months": "months", "year": "years", "years": "years"}
_VALIDITY = re.compile(
    r"^(?:(?P<n>\d{1,5})\s+(?P<unit>days?|weeks?|months?|years?))?"
    r"\s*(?:to the end of the (?P<end>month|quarter|year))?$")
_PENDING = re.compile(r"^(?:(?:available after\s+)?(?P<n>\d{1,5})\s+(?P<unit>days?|weeks?))?$")


@dataclass(frozen=True, slots=True)
class Validity:
    """A currency's validity and pending period, parsed (see the module's words)."""

    #: How many ``unit`` after earning an award expires (0 with ``unit`` "": no offset).
    count: int = 0
    unit: str = ""
    #: "month", "quarter" or "year": the award lasts to the end of that calendar period.
    to_end_of: str = ""
    #: Never expires (``count`` and ``to_end_of`` are then unset).
    never: bool = True
    #: How long an award is pending before it may be spent.
    pending: timedelta = timedelta(0)

    @property
    def text(self) -> str:
        """The validity in the schema's words."""
        if self.never:
            return "never"
        words = [f"{self.count} {self.unit}"] if self.unit else []
        if self.to_end_of:
            words.append(f"to the end of the {self.to_end_of}")
        return " ".join(words)

    def expires_at(self, earned_at: datetime, zone: tzinfo) -> datetime:
        """The instant an award earned at ``earned_at`` expires (:data:`NEVER` if it does not)."""
        if self.never:
            return NEVER
        local = earned_at.astimezone(zone)
        if self.unit == "days":
            local = local + timedelta(days=self.count)
        elif self.unit == "weeks":
            local = local + timedelta(weeks=self.count)
        elif self.unit in ("months", "years"):
            months = self.count * (12 if self.unit == "years" else 1)
            local = _add_months(local, months)
        if not self.to_end_of:
            return local.astimezone(UTC)
        day = local.date()
        months = {"month": 1, "quarter": 3, "year": 12}[self.to_end_of]
        first = (day.year * 12 + day.month - 1) // months * months + months  # next period's month
        if first // 12 > 9998:
            return NEVER
        end = date(first // 12, first % 12 + 1, 1)
        # The local midnight starting the next period (as dsl.periods.local_midnight).
        return datetime.combine(end, time(0), tzinfo=zone).astimezone(UTC)

    def available_from(self, earned_at: datetime) -> datetime:
        """The instant an award earned at ``earned_at`` may first be spent."""
        return earned_at.astimezone(UTC) + self.pending


def _add_months(at: datetime, months: int) -> datetime:
    index = at.year * 12 + at.month - 1 + months
    year, month = divmod(index, 12)
    if year > 9998:
        return NEVER
    day = min(at.day, calendar.monthrange(year, month + 1)[1])
    return at.replace(year=year, month=month + 1, day=day)


def parse_validity(validity: str = "never", pending: str = "") -> Validity:
    """The :class:`Validity` of a currency's words; ValueError says what is wrong with them."""
    text = " ".join(str(validity).lower().split())
    pending_text = " ".join(str(pending).lower().split())
    waiting = _parse_pending(pending_text)
    if text == "never":
        return Validity(pending=waiting)
    match = _VALIDITY.match(text)
    if match is None or not text:
        raise ValueError(f'validity {validity!r}: write "never", "24 months", "to the end of the month" '
                         'or "12 months to the end of the month"')
    count = int(match["n"]) if match["n"] else 0
    if match["n"] and not 1 <= count <= MAX_UNITS:
        raise ValueError(f"validity {validity!r}: the count must be from 1 to {MAX_UNITS}")
    unit = _UNITS[match["unit"]] if match["unit"] else ""
    return Validity(count, unit, match["end"] or "", False, waiting)


def _parse_pending(text: str) -> timedelta:
    match = _PENDING.match(text)
    if match is None:
        raise ValueError(f'pending {text!r}: write "14 days" or "2 weeks" (empty: spendable at once)')
    if not match["n"]:
        return timedelta(0)
    count = int(match["n"])
    if not 0 <= count <= MAX_UNITS:
        raise ValueError(f"pending {text!r}: the count must be from 0 to {MAX_UNITS}")
    return timedelta(days=count) if match["unit"].startswith("day") else timedelta(weeks=count)


#: The validity of a currency that declares none: it never expires and is spendable at once.
FOREVER = Validity()


def local_date(at: datetime, zone: tzinfo) -> date:
    """The local date of ``at`` in ``zone`` (what a statement line shows)."""
    return at.astimezone(zone).date()
