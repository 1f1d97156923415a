"""Expected arrival at each remaining itinerary node: planned hops, timetables and the delay observed so far."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from routing.cache import planners
from routing.errors import DomainError
from routing.planner import Planner, RoutePlan
from routing.vocab import Mode
from tracking.clock import as_utc
from tracking.models import Container, Event
from tracking.vocab import Activity, ContainerStatus, EventType


@dataclass(frozen=True, slots=True)
class Observation:
    """An actual transfer of the container: where, when, what (and by which mode it came, when known)."""

    node: str
    time: datetime
    activity: str
    from_mode: str | None = None


@dataclass(frozen=True, slots=True)
class Stop:
    """An itinerary node still ahead: when the container is expected there, by which mode it arrives."""

    node: str
    eta: datetime | None
    mode: Mode | None = None
    # When the next hop is expected to leave this node (timetable waits and handling included).
    departs: datetime | None = None


@dataclass(frozen=True, slots=True)
class Estimate:
    """The plan from the declaration, the delay against it at the last itinerary node reached, and the stops
    still ahead with their expected arrival (`stops` is empty once customs released or refused the box)."""

    delay_h: float | None
    stops: tuple[Stop, ...]
    planned: tuple[Stop, ...]
    basis: datetime | None


def _hop(planner: Planner, origin: str, destination: str, depart_at: datetime | None) -> RoutePlan | None:
    try:
        return planner.plan(origin, destination, depart_at=depart_at)[0]
    except (DomainError, ValueError):
        return None


def _handling_h(planner: Planner, code: str) -> float:
    info = planner.network.nodes.get(code)
    return info.handling_h if info is not None else 0.0


def _chain(
    planner: Planner,
    start: str,
    at: datetime,
    ahead: Sequence[str],
    *,
    arrived_by: str | None,
    departed: bool,
) -> tuple[datetime | None, list[Stop]]:
    stops: list[Stop] = []
    first_leave: datetime | None = None
    here, moment = start, as_utc(at)
    mode_in = Mode(arrived_by) if arrived_by in set(Mode) else None
    for index, target in enumerate(ahead):
        if index == 0 and departed:
            plan = _hop(planner, here, target, None)
            arrive = moment + timedelta(hours=plan.duration_h) if plan is not None else None
            leave: datetime | None = moment
        else:
            plan = _hop(planner, here, target, moment)
            if plan is not None and plan.legs and plan.legs[0].mode != mode_in and (index > 0 or arrived_by):
                # A change of mode here: the box is handled before the next hop can take it.
                plan = _hop(planner, here, target, moment + timedelta(hours=_handling_h(planner, here)))
            arrive = plan.arrive_at if plan is not None else None
            leave = plan.depart_at if plan is not None else None
        if plan is None or arrive is None:
            stops.extend(Stop(node, None) for node in ahead[index:])
            break
        if stops:
            stops[-1] = Stop(stops[-1].node, stops[-1].eta, stops[-1].mode, leave)
        else:
            first_leave = leave
        mode_in = plan.legs[-1].mode if plan.legs else None
        stops.append(Stop(target, arrive, mode_in))
        here, moment = target, arrive
    return first_leave, stops


def schedule(
    planner: Planner,
    start: str,
    at: datetime,
    ahead: Sequence[str],
    *,
    arrived_by: str | None = None,
    departed: bool = False,
) -> list[Stop]:
    """Chain one timetable-aware plan per hop from `start` (reached at `at`) through the nodes `ahead`.

    Handling time is added at a node where the mode changes between hops (each hop's plan counts the
    changes inside it). With `departed`, the box already left `start` at `at`: the first hop runs from then
    without waiting for a timetable. A hop with no route leaves that stop and the later ones without an ETA.
    """
    return _chain(planner, start, at, ahead, arrived_by=arrived_by, departed=departed)[1]


def planned(planner: Planner, itinerary: Sequence[str], declared_at: datetime) -> list[Stop]:
    """The plan the declaration implies: from the origin at the declaration's time through every itinerary node
    (the origin first, with its planned departure)."""
    if not itinerary:
        return []
    leave, stops = _chain(planner, itinerary[0], declared_at, itinerary[1:], arrived_by=None, departed=False)
    return [Stop(itinerary[0], as_utc(declared_at), None, leave), *stops]


def estimate(
    planner: Planner,
    itinerary: Sequence[str],
    declared_at: datetime,
    observations: Sequence[Observation],
    *,
    closed: bool = False,
) -> Estimate:
    """ETA at each itinerary node after the last one reached, re-planned from the last actual transfer; the
    delay is that transfer's time minus the planned time at its node (arrival, or departure for a `depart`).

    A box seen off its itinerary is re-planned from where it was seen to the next itinerary node after the
    last one it reached. Without any transfer the plan from the declaration is the estimate.
    """
    plan = planned(planner, itinerary, declared_at)
    by_node = {stop.node: stop for stop in plan}
    ordered = sorted(observations, key=lambda o: as_utc(o.time))
    on_route = [o for o in ordered if o.node in by_node]
    delay_h = None
    if on_route:
        ref = on_route[-1]
        stop = by_node[ref.node]
        target = stop.departs if ref.activity == Activity.DEPART else stop.eta
        if target is not None:
            delay_h = round((as_utc(ref.time) - target).total_seconds() / 3600, 2)
    if closed:
        return Estimate(delay_h, (), tuple(plan), as_utc(ordered[-1].time) if ordered else None)
    if not ordered:
        return Estimate(None, tuple(plan[1:]), tuple(plan), None)
    last = ordered[-1]
    reached = itinerary.index(on_route[-1].node) if on_route else 0
    ahead = list(itinerary[reached + 1 :])
    stops = schedule(
        planner,
        last.node,
        last.time,
        ahead,
        arrived_by=last.from_mode,
        departed=last.activity == Activity.DEPART,
    )
    return Estimate(delay_h, tuple(stops), tuple(plan), as_utc(last.time))


def observations(session: Session, container: Container) -> list[Observation]:
    """The container's transfers in the order they happened."""
    rows = session.execute(
        select(Event.node, Event.event_time, Event.data)
        .where(Event.container_id == container.id, Event.type == str(EventType.TRANSFER))
        .order_by(Event.event_time, Event.seq)
    )
    return [
        Observation(node, as_utc(time), str((data or {}).get("activity")), (data or {}).get("from_mode"))
        for node, time, data in rows
        if node
    ]


def container_estimate(session: Session, container: Container) -> Estimate:
    """The estimate for one container from its stored transfers and the current network."""
    declaration = container.declaration
    return estimate(
        planners.get(session),
        declaration.itinerary,
        declaration.created_at,
        observations(session, container),
        closed=ContainerStatus(container.status).is_final,
    )
