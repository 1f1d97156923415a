"""Clearance-time analytics (通关时效) per node and day: dwell, time to release, direct releases, re-inspections.

`clearance_report` is a pure function over event rows, so its figures can be recomputed by hand; `clearance`
is the thin query that feeds it the events of the nodes a caller may see.

Definitions (days are UTC calendar days of the event that starts what is measured):
- transfers: transfer events at the node that day; `released_directly` those decided `release`, and their share;
- reinspections: transfer events decided `reinspect`, in total and per reason (an event counts once per reason);
- dwell: from a container's `arrive` at the node to its next `depart` there (transships neither open nor close a
  visit; a visit not yet closed is not counted), by the day of arrival;
- clearance: from a container's first transfer at its declaration's inspection node to the inspection there that
  cleared it (its release), by the day of that arrival.
Departures and releases up to `LOOKAHEAD` after the period still close visits that started inside it.
Percentiles interpolate linearly between the closest ranks (p = x[⌊h⌋] + (h − ⌊h⌋)(x[⌊h⌋+1] − x[⌊h⌋]),
h = (n − 1)q), as numpy's default does.
"""

from __future__ import annotations

import csv
import io
import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, NamedTuple

from sqlalchemy import case, select
from sqlalchemy.orm import Session

from routing.db import for_reading_through
from routing.errors import ForbiddenError, InvalidError, NotFoundError
from routing.models import Node
from tracking.access import Principal
from tracking.clock import as_utc
from tracking.models import Container, Declaration, Event
from tracking.vocab import REASON_ORDER, Activity, Decision, EventType, InspectionResult, Role

LOOKAHEAD = timedelta(days=30)
MAX_DAYS = 366
DEFAULT_DAYS = 30
STREAM_ROWS = 20000  # events fetched at a time


class EventRow(NamedTuple):
    """What the analytics need of one event (a transfer or an inspection) and its container's declaration (a tuple:
    a month at a busy node is a few hundred thousand of them)."""

    container_id: int
    node: str
    time: datetime
    type: str
    activity: str | None = None
    decision: str | None = None
    reasons: tuple[str, ...] = ()
    inspection_node: str | None = None


@dataclass(frozen=True, slots=True)
class Spread:
    """How many durations, and their median and 90th percentile in hours."""

    count: int
    p50_h: float | None
    p90_h: float | None

    def as_dict(self) -> dict[str, Any]:
        return {"count": self.count, "p50": self.p50_h, "p90": self.p90_h}


@dataclass(frozen=True, slots=True)
class Figures:
    """The figures of one node over one day (`day` set) or over the whole period (`day` None)."""

    node: str
    day: date | None
    transfers: int
    released_directly: int
    reinspected: int
    reinspections: dict[str, int]
    dwell: Spread
    clearance: Spread

    @property
    def direct_release_share(self) -> float | None:
        return round(self.released_directly / self.transfers, 4) if self.transfers else None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"node": self.node}
        if self.day is not None:
            out["day"] = self.day.isoformat()
        out.update(
            transfers=self.transfers,
            released_directly=self.released_directly,
            direct_release_share=self.direct_release_share,
            reinspections=self.reinspected,
            reinspections_by_reason=dict(self.reinspections),
            dwell_h=self.dwell.as_dict(),
            clearance_h=self.clearance.as_dict(),
        )
        return out


@dataclass(frozen=True, slots=True)
class Report:
    start: date
    end: date
    days: list[Figures]
    totals: list[Figures]

    def as_dict(self) -> dict[str, Any]:
        return {
            "from": self.start.isoformat(),
            "to": self.end.isoformat(),
            "items": [f.as_dict() for f in self.days],
            "totals": [f.as_dict() for f in self.totals],
        }


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-quantile (0..1) with linear interpolation between closest ranks; None without values."""
    if not values:
        return None
    ordered = sorted(values)
    h = (len(ordered) - 1) * q
    low = math.floor(h)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (h - low) * (ordered[high] - ordered[low])


def spread(hours: Sequence[float]) -> Spread:
    def rounded(value: float | None) -> float | None:
        return None if value is None else round(value, 2)

    return Spread(len(hours), rounded(percentile(hours, 0.5)), rounded(percentile(hours, 0.9)))


@dataclass
class _Tally:
    transfers: int = 0
    released_directly: int = 0
    reinspected: int = 0
    reinspections: dict[str, int] = field(default_factory=lambda: {str(r): 0 for r in REASON_ORDER})
    dwell: list[float] = field(default_factory=list)
    clearance: list[float] = field(default_factory=list)

    def figures(self, node: str, day: date | None) -> Figures:
        return Figures(
            node,
            day,
            self.transfers,
            self.released_directly,
            self.reinspected,
            dict(self.reinspections),
            spread(self.dwell),
            spread(self.clearance),
        )


def _hours(start: datetime, end: datetime) -> float:
    return (as_utc(end) - as_utc(start)).total_seconds() / 3600


def clearance_report(rows: Iterable[EventRow], start: date, end: date, *, ordered: bool = False) -> Report:
    """Figures per node and day for the days `start`..`end` (inclusive), and per node over the whole period.

    `ordered`: the rows come by box, node and time already (as `clearance` reads them) and are taken one at a time,
    so that a month of every node needs no more memory than the figures and one box's open visits; otherwise they
    are sorted first."""
    # Each box's events at each node in time order: every figure below pairs events of one box at one node (an
    # arrival with the next departure; the first transfer at the inspection node with the inspection there), so
    # what is open is forgotten when the next box begins.
    events = rows if ordered else sorted(rows, key=lambda r: (r.container_id, r.node, as_utc(r.time)))
    daily: dict[tuple[str, date], _Tally] = defaultdict(_Tally)
    whole: dict[str, _Tally] = defaultdict(_Tally)
    # The vocabulary as plain strings, looked up once: this loop runs for every event of the period.
    transfer, inspection, cleared_result = (
        str(EventType.TRANSFER),
        str(EventType.INSPECTION),
        str(InspectionResult.CLEARED),
    )
    release, reinspect = str(Decision.RELEASE), str(Decision.REINSPECT)
    arrive, depart = str(Activity.ARRIVE), str(Activity.DEPART)

    def inside(moment: datetime) -> date | None:
        day = as_utc(moment).date()
        return day if start <= day <= end else None

    def tallies(node: str, day: date) -> tuple[_Tally, _Tally]:
        return daily[(node, day)], whole[node]

    box: int | None = None
    open_visits: dict[str, datetime] = {}  # the box's arrivals by node, until its next departure there
    at_inspection: datetime | None = None  # the box's first transfer at its inspection node
    cleared = False  # the box's release by an inspection there is counted
    for row in events:
        if row.container_id != box:
            box, at_inspection, cleared = row.container_id, None, False
            open_visits.clear()
        if row.type == transfer:
            day = inside(row.time)
            if day is not None:
                for tally in tallies(row.node, day):
                    tally.transfers += 1
                    if row.decision == release:
                        tally.released_directly += 1
                    elif row.decision == reinspect:
                        tally.reinspected += 1
                        for reason in set(row.reasons):
                            tally.reinspections[reason] = tally.reinspections.get(reason, 0) + 1
            if row.activity == arrive:
                open_visits.setdefault(row.node, row.time)
            elif row.activity == depart and row.node in open_visits:
                arrived = open_visits.pop(row.node)
                arrival_day = inside(arrived)
                if arrival_day is not None:
                    for tally in tallies(row.node, arrival_day):
                        tally.dwell.append(_hours(arrived, row.time))
            if row.node == row.inspection_node and at_inspection is None:
                at_inspection = row.time
        elif (
            row.type == inspection
            and row.decision == cleared_result
            and row.node == row.inspection_node
            and at_inspection is not None
            and not cleared
        ):
            cleared = True
            arrival_day = inside(at_inspection)
            if arrival_day is not None:
                for tally in tallies(row.node, arrival_day):
                    tally.clearance.append(_hours(at_inspection, row.time))
    return Report(
        start,
        end,
        [daily[key].figures(*key) for key in sorted(daily)],
        [whole[node].figures(node, None) for node in sorted(whole)],
    )


CSV_COLUMNS = (
    "node",
    "day",
    "transfers",
    "released_directly",
    "direct_release_share",
    "reinspections",
    *(f"reinspections_{r}" for r in REASON_ORDER),
    "dwell_count",
    "dwell_p50_h",
    "dwell_p90_h",
    "clearance_count",
    "clearance_p50_h",
    "clearance_p90_h",
)


def to_csv(report: Report) -> str:
    """One line per node and day, then one per node for the whole period (day `all`)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)

    def blank(value: float | None) -> Any:
        return "" if value is None else value

    for figures in (*report.days, *report.totals):
        writer.writerow(
            [
                figures.node,
                figures.day.isoformat() if figures.day else "all",
                figures.transfers,
                figures.released_directly,
                blank(figures.direct_release_share),
                figures.reinspected,
                *(figures.reinspections.get(str(r), 0) for r in REASON_ORDER),
                figures.dwell.count,
                blank(figures.dwell.p50_h),
                blank(figures.dwell.p90_h),
                figures.clearance.count,
                blank(figures.clearance.p50_h),
                blank(figures.clearance.p90_h),
            ]
        )
    return out.getvalue()


def period(start: date | None, end: date | None, today: date) -> tuple[date, date]:
    """The days asked for: `to` defaults to today and `from` to 30 days before it; at most 366 days."""
    end = end or today
    start = start or end - timedelta(days=DEFAULT_DAYS - 1)
    if start > end:
        raise InvalidError("The period is empty.", {"from": ["must not be after to"]})
    if (end - start).days + 1 > MAX_DAYS:
        raise InvalidError(f"The period is longer than {MAX_DAYS} days.", {"from": [f"at most {MAX_DAYS} days"]})
    return start, end


def nodes_in_scope(session: Session, principal: Principal, node: str | None) -> list[str] | None:
    """The nodes the figures may cover (None: every node); supervisors see their offices' nodes only."""
    if node is not None:
        office = session.scalar(select(Node.customs_office).where(Node.code == node))
        if office is None:
            raise NotFoundError(f"No node has the code {node!r}.")
        if principal.role is Role.SUPERVISOR and office not in principal.offices:
            raise ForbiddenError(f"The node {node} belongs to {office}, outside this supervisor's offices.")
        return [node]
    if principal.role is Role.ADMIN:
        return None
    if principal.role is Role.SUPERVISOR:
        return list(session.scalars(select(Node.code).where(Node.customs_office.in_(sorted(principal.offices)))))
    raise ForbiddenError(f"The {principal.role} role may not see clearance analytics.")


def clearance(
    session: Session, principal: Principal, *, node: str | None, start: date | None, end: date | None, today: date
) -> Report:
    """The report for the caller's nodes (or `node`) over `start`..`end`."""
    first, last = period(start, end, today)
    nodes = nodes_in_scope(session, principal, node)
    since = datetime.combine(first, time.min, tzinfo=UTC)
    until = datetime.combine(last + timedelta(days=1), time.min, tzinfo=UTC) + LOOKAHEAD
    query = (
        select(
            Event.container_id,
            Event.node,
            Event.event_time,
            Event.type,
            # Only what the figures use of the JSON columns: the activity, and the reasons of re-inspections.
            Event.data["activity"].as_string(),
            Event.decision,
            case((Event.decision == str(Decision.REINSPECT), Event.reasons)),
            Declaration.inspection_node,
        )
        .join(Container, Container.id == Event.container_id)
        .join(Declaration, Declaration.id == Container.declaration_id)
        .where(
            Event.type.in_([str(EventType.TRANSFER), str(EventType.INSPECTION)]),
            Event.event_time >= since,
            Event.event_time < until,
            Event.node.is_not(None),
        )
    )
    if nodes is None:
        # Every node, named: the period's events are then read through the (node, event_time) index, not by walking
        # the whole table (6.3 s against 2.7 s for a month of every node on the growth database).
        nodes = list(session.scalars(select(Node.code)))
    # In the order the report pairs them (sorting here costs the database less than Python).
    query = query.where(Event.node.in_(nodes)).order_by(Event.container_id, Event.node, Event.event_time)
    for_reading_through(session)
    # Plain rows (no ORM entities to load), streamed in batches (a server-side cursor on PostgreSQL): a month of
    # every node on the growth database is over a million events, 975 MB when they were all held at once.
    result = session.connection().execution_options(yield_per=STREAM_ROWS).execute(query)
    rows = (
        EventRow(cid, code, as_utc(moment), kind, activity, decision, tuple(reasons) if reasons else (), inspection)
        for cid, code, moment, kind, activity, decision, reasons, inspection in result
    )
    return clearance_report(rows, first, last, ordered=True)
