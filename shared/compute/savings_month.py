"""A month's estimated savings, summed from the saved run reports: the one computation behind `GET /api/savings`
and the dashboard's savings section (both call `month_savings` / `summarize`, so they cannot disagree).

The rules:
- a report belongs to the day (and month) in its blob name (`{kind}/YYYY/MM/DD/{id}.json`, the run's start in
  UTC); blobs that are not named so (the reconciler's state, working blobs) are not reports;
- dry runs saved nothing;
- amounts in different currencies are never added: totals are per currency. A report's totals say what it saved
  either as `estimated_savings_by_currency` ({"USD": 12.5, "EUR": 3.1}; then `estimated_savings` and `currency`
  are null when there are several) or, in reports saved before that field, as `estimated_savings` + `currency`;
  a report without either (saved before savings were estimated) counts as stopping instances without estimate;
- only each report's head is read, never its instances (shared.compute.run_reports, which keeps them);
- measured savings (shared.compute.measured: when each instance the app stopped was seen running again) come first,
  next to the estimate, from the same call (`with_measured`), so the page and the API show the same measurement.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from shared.compute.run_reports import KINDS, UNREADABLE, MonthHeads, month_heads
from shared.settings import REPORTS_CONTAINER

UNKNOWN_CURRENCY = "unknown"  # an amount whose report names no currency (hand-made reports)


def _amount(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None  # NaN or Infinity (an older report of a bad price) is no estimate, never a sum's poison
    return float(value)


def savings_by_currency(totals: Mapping[str, Any]) -> dict[str, float] | None:
    """What one report's totals say it saved, per currency; None when they carry no estimate at all."""
    per_currency = totals.get("estimated_savings_by_currency")
    if isinstance(per_currency, Mapping):
        out = {str(code): amount for code, value in per_currency.items() if (amount := _amount(value)) is not None}
        return out
    amount = _amount(totals.get("estimated_savings"))
    if amount is None:
        return None
    currency = totals.get("currency")
    if not currency:
        return {UNKNOWN_CURRENCY: amount} if amount else {}
    return {str(currency): amount}


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


@dataclass(frozen=True)
class RunSavings:
    """What one saved report contributes to its month."""

    kind: str
    day: str  # YYYY-MM-DD
    dry_run: bool
    stopped: int
    started: int
    by_currency: dict[str, float] | None  # None: no estimate in the report

    @classmethod
    def of(cls, kind: str, day: str, fields: Mapping[str, Any]) -> RunSavings:
        totals = fields.get("totals")
        totals = totals if isinstance(totals, Mapping) else {}
        return cls(
            kind=kind,
            day=day,
            dry_run=fields.get("dry_run") is True,
            stopped=_int(totals.get("stopped")),
            started=_int(totals.get("started")),
            by_currency=savings_by_currency(totals),
        )

    @property
    def without_estimate(self) -> bool:
        """It stopped or started instances and says nothing of what that saved."""
        return (self.stopped or self.started) > 0 and not self.by_currency


def _add(into: dict[str, float], amounts: Mapping[str, float]) -> None:
    for code, amount in amounts.items():
        into[code] = into.get(code, 0.0) + amount


def _rounded(amounts: Mapping[str, float]) -> dict[str, float]:
    return {code: round(amount, 2) for code, amount in sorted(amounts.items())}


def _single(amounts: Mapping[str, float]) -> tuple[float | None, str | None]:
    """(amount, currency) when there is at most one currency (0.0 and None for none); (None, None) for several."""
    if not amounts:
        return 0.0, None
    if len(amounts) == 1:
        ((code, amount),) = amounts.items()
        return round(amount, 2), code
    return None, None


@dataclass
class MonthSavings:
    month: str  # YYYY-MM
    by_currency: dict[str, float] = field(default_factory=dict)
    by_kind: dict[str, dict[str, float]] = field(default_factory=lambda: {kind: {} for kind in KINDS})
    by_day: dict[str, dict[str, float]] = field(default_factory=dict)
    reports: int = 0
    stopped: int = 0
    started: int = 0
    without_estimate: int = 0
    unreadable: list[str] = field(default_factory=list)
    measured: dict[str, Any] | None = None  # shared.compute.measured.MeasuredMonth, or {"error": ...}

    def to_dict(self) -> dict[str, Any]:
        """The answer of `GET /api/savings` (README: "Savings"): what was measured first, then the estimate."""
        amount, currency = _single(self.by_currency)
        return {
            "measured": self.measured,
            "month": self.month,
            "estimated_savings": amount,
            "currency": currency,
            "estimated_savings_by_currency": _rounded(self.by_currency),
            "by_kind": {kind: _single(amounts)[0] for kind, amounts in self.by_kind.items()},
            "by_kind_by_currency": {kind: _rounded(amounts) for kind, amounts in self.by_kind.items()},
            "by_day": {day: _rounded(amounts) for day, amounts in sorted(self.by_day.items())},
            "reports": self.reports,
            "stopped": self.stopped,
            "started": self.started,
            "reports_without_estimate": self.without_estimate,
            "unreadable_reports": list(self.unreadable),
        }


def summarize(month: str, runs: Iterable[RunSavings], unreadable: Iterable[str] = ()) -> MonthSavings:
    """The month's savings from its runs' contributions (runs of other months are left out)."""
    out = MonthSavings(month, unreadable=sorted(unreadable))
    for run in runs:
        if not run.day.startswith(f"{month}-") or run.dry_run:
            continue  # a dry run saved nothing
        out.reports += 1
        out.stopped += run.stopped
        out.started += run.started
        out.without_estimate += run.without_estimate
        amounts = {code: amount for code, amount in (run.by_currency or {}).items() if amount}
        _add(out.by_currency, amounts)
        _add(out.by_kind[run.kind], amounts)
        if amounts:
            _add(out.by_day.setdefault(run.day, {}), amounts)
    return out


def savings_of(month: MonthHeads) -> MonthSavings:
    """The month's savings from its reports' heads (the dashboard passes the heads it read anyway)."""
    runs = [
        RunSavings.of(report.kind, report.day, month.heads[report.blob])
        for report in month.reports
        if UNREADABLE not in month.heads.get(report.blob, {UNREADABLE: "not read"})
    ]
    return summarize(month.month, runs, month.unreadable)


def with_measured(savings: MonthSavings, now: datetime, env: Mapping[str, str] | None = None) -> MonthSavings:
    """The month's estimate with what was measured in it (a storage failure is said in `measured.error`, and the
    estimate still answers)."""
    from shared.compute.measured import measured_month
    from shared.errors import AppError

    year, month = (int(part) for part in savings.month.split("-"))
    try:
        measured: dict[str, Any] = measured_month(year, month, now, env).to_dict()
    except AppError as err:
        measured = {"error": f"measured savings not read: {err}"}
    return replace(savings, measured=measured)


def month_savings(month: str, env: Mapping[str, str] | None = None, now: datetime | None = None) -> MonthSavings:
    """`GET /api/savings?month=YYYY-MM`: what was measured in the month, and its reports by their heads, summed."""
    estimate = savings_of(month_heads(REPORTS_CONTAINER.get(env), month, env))
    return with_measured(estimate, now or datetime.now(UTC), env)
