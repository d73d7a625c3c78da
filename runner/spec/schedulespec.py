"""The ``schedule:`` model of a job spec: a cron expression, its time zone, and catch-up."""

from __future__ import annotations

from typing import Any

from pydantic import field_validator, model_validator

from runner.spec._base import SpecModel as _Model


class Schedule(_Model):
    """When ``etlrun schedule`` runs the job; a bare string is shorthand for ``{cron: ...}``."""

    cron: str
    """A five-field cron expression, e.g. "0 2 * * *"."""
    timezone: str = "UTC"
    """IANA time zone the cron expression is read in."""
    catchup: bool = False
    """After a gap (scheduler stopped, machine asleep), run once for the missed fire times;
    by default they are skipped and logged."""

    @field_validator("cron")
    @classmethod
    def _valid_cron(cls, value: str) -> str:
        from runner.spec.validators import check_cron

        return check_cron(value)

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        import zoneinfo

        from runner.spec.validators import did_you_mean

        try:
            zoneinfo.ZoneInfo(value)
            return value
        except Exception:  # not found, a folder, a path: all mean "no such zone"
            pass
        known = sorted(zoneinfo.available_timezones())
        exact = [k for k in known if k.lower() == value.lower()]
        hint = f" (did you mean '{exact[0]}'?)" if exact else did_you_mean(value, known)
        raise ValueError(f"unknown time zone '{value}'{hint}; use an IANA name like Europe/Oslo")

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        return {"cron": data} if isinstance(data, str) else data
