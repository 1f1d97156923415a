"""Properties of the route planner on small random multimodal networks, checked against brute force."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone

import networkx as nx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from routing.errors import InvalidError
from routing.network import Departure, LegInfo, Network, NodeInfo
from routing.planner import Planner, RoutePlan
from routing.vocab import Mode, NodeKind, Objective

TOLERANCE = 1e-6
MODES = list(Mode)


@st.composite
def networks(draw: st.DrawFn, detour: bool = False) -> Network:
    """3–7 nodes in two customs territories, 3–18 legs with random figures, some on a weekly timetable.

    With `detour`, N0 → N1 by rail, N1 → N3 by road, and a short loop N1 → N2 by rail, N2 → N1 by road come first:
    when N1's handling is long and N2's short, the cheapest way through the state graph changes mode at N2 and
    comes back to N1, which a route may not do.
    """
    n = draw(st.integers(4, 7) if detour else st.integers(3, 7))
    legs: list[LegInfo] = []
    gadget = [(0, 1, Mode.RAIL), (1, 2, Mode.RAIL), (2, 1, Mode.ROAD), (1, 3, Mode.ROAD)] if detour else []
    for i in range(len(gadget) + draw(st.integers(0, 8) if detour else st.integers(3, 18))):
        a, b = draw(st.lists(st.integers(0, n - 1), min_size=2, max_size=2, unique=True))
        mode = draw(st.sampled_from(MODES))
        if i < len(gadget):
            a, b, mode = gadget[i]
        departures = draw(st.lists(st.builds(Departure, st.integers(1, 7), st.integers(0, 1439)), max_size=3))
        legs.append(
            LegInfo(
                id=len(legs) + 1,
                origin=f"N{a}",
                destination=f"N{b}",
                mode=mode,
                distance_km=draw(st.floats(1, 500)),
                duration_h=draw(st.floats(0.1, 60)),
                cost_per_teu=draw(st.floats(1, 500)),
                co2_kg_per_teu=draw(st.floats(1, 500)),
                coords=((float(a), 22.0), (float(b), 23.0)),
                departures=tuple(sorted(set(departures))),
            )
        )
    nodes = {}
    for i in range(n):
        code = f"N{i}"
        nodes[code] = NodeInfo(
            code=code,
            name=code,
            kind=NodeKind.DRY_PORT,
            lon=float(i),
            lat=draw(st.floats(20, 25)),
            modes=frozenset(leg.mode for leg in legs if code in (leg.origin, leg.destination)),
            customs_office=draw(st.sampled_from(["CN-GUANGZHOU", "CN-SHENZHEN", "HK-CED"])),
            handling_h=draw(st.sampled_from([0.0, 0.5, 3.0, 12.0, 40.0, 200.0])),
            handling_cost_per_teu=draw(st.sampled_from([0.0, 25.0, 300.0, 5000.0])),
            seal_preserving_transfer=draw(st.booleans()),
            dwell_limit_h=48.0,
        )
    return Network(version=1, nodes=nodes, legs=tuple(legs))


@dataclass(frozen=True)
class Query:
    origin: str
    destination: str
    modes: frozenset[Mode] | None
    avoid: frozenset[str]
    depart_at: datetime | None


@st.composite
def queries(draw: st.DrawFn, network: Network, detour: bool = False) -> Query:
    """Any two nodes with constraints, or across the detour (N0 to N3, no constraints) of a `detour` network."""
    if detour:
        origin, destination = "N0", "N3"
    else:
        origin, destination = draw(
            st.lists(st.sampled_from(sorted(network.nodes)), min_size=2, max_size=2, unique=True)
        )
    others = sorted(set(network.nodes) - {origin, destination})
    avoid = frozenset(draw(st.lists(st.sampled_from(others), max_size=1))) if others and not detour else frozenset()
    modes = None if detour else draw(st.one_of(st.none(), st.frozensets(st.sampled_from(MODES), min_size=1)))
    depart_at = draw(
        st.one_of(
            st.none(),
            # Hypothesis takes naive bounds and attaches the drawn time zone itself.
            st.datetimes(
                min_value=datetime(2026, 1, 1),  # noqa: DTZ001
                max_value=datetime(2026, 12, 31),  # noqa: DTZ001
                timezones=st.sampled_from([UTC, timezone(timedelta(hours=8))]),
            ),
        )
    )
    return Query(origin, destination, modes, avoid, depart_at)


# ------------------------------------------------------------------ brute force, written independently


def _next_departure(ready: datetime, departures: tuple[Departure, ...]) -> datetime:
    monday = (ready - timedelta(days=ready.weekday())).replace(hour=0, minute=0, second=0, microsecond=0)
    times = [monday + timedelta(weeks=w, days=d.weekday - 1, minutes=d.minute) for w in (0, 1) for d in departures]
    return min(t for t in times if t >= ready)


@dataclass(frozen=True)
class Figures:
    """A route's totals as the brute force sees them."""

    time: float
    cost: float
    co2: float
    inspections: int

    def key(self, objective: Objective) -> tuple[float, ...]:
        if objective is Objective.INSPECTIONS:
            return (self.inspections, self.time)
        return ({"time": self.time, "cost": self.cost, "co2": self.co2}[objective.value],)


def evaluate(network: Network, legs: Sequence[LegInfo], depart_at: datetime | None) -> Figures:
    nodes = network.nodes
    duration = sum(leg.duration_h for leg in legs)
    cost = sum(leg.cost_per_teu for leg in legs)
    inspections = []
    for before, after in itertools.pairwise(legs):
        node = nodes[after.origin]
        if before.mode != after.mode:
            duration += node.handling_h
            cost += node.handling_cost_per_teu
        if nodes[before.origin].territory != node.territory or (
            before.mode != after.mode and not node.seal_preserving_transfer
        ):
            inspections.append(node.code)
    inspections.append(legs[-1].destination)
    if depart_at is not None:
        ready = depart_at.astimezone(UTC)
        for i, leg in enumerate(legs):
            if i and legs[i - 1].mode != leg.mode:
                ready += timedelta(hours=nodes[leg.origin].handling_h)
            if leg.departures:
                ready = _next_departure(ready, leg.departures)
            ready += timedelta(hours=leg.duration_h)
        duration = (ready - depart_at) / timedelta(hours=1)
    return Figures(duration, cost, sum(leg.co2_kg_per_teu for leg in legs), len(inspections))


def brute_force(
    network: Network, query: Query, objective: Objective
) -> list[tuple[tuple[float, ...], tuple[str, ...]]]:
    """Every node-simple route's best key, best first (one entry per node sequence)."""
    graph = nx.DiGraph()
    graph.add_nodes_from(set(network.nodes) - query.avoid)
    usable = [
        leg
        for leg in network.legs
        if (query.modes is None or leg.mode in query.modes)
        and leg.origin not in query.avoid
        and leg.destination not in query.avoid
    ]
    graph.add_edges_from((leg.origin, leg.destination) for leg in usable)
    timed = query.depart_at is not None and objective is Objective.TIME
    best = []
    for nodes in nx.all_simple_paths(graph, query.origin, query.destination):
        choices = [[leg for leg in usable if (leg.origin, leg.destination) == hop] for hop in itertools.pairwise(nodes)]
        keys = [
            evaluate(network, combo, query.depart_at if timed else None).key(objective)
            for combo in itertools.product(*choices)
        ]
        best.append((min(keys), tuple(nodes)))
    return sorted(best)


def plan_key(plan: RoutePlan, objective: Objective, network: Network, timed: bool) -> tuple[float, ...]:
    """The plan's value on the objective; untimed time and the inspections tie-break come from its legs."""
    if objective is Objective.INSPECTIONS or (objective is Objective.TIME and not timed):
        static = evaluate(network, _legs(network, plan), None)
        return (len(plan.inspections), static.time) if objective is Objective.INSPECTIONS else (static.time,)
    return ({"time": plan.duration_h, "cost": plan.cost_per_teu, "co2": plan.co2_kg_per_teu}[objective.value],)


def _legs(network: Network, plan: RoutePlan) -> list[LegInfo]:
    by_id = {leg.id: leg for leg in network.legs}
    return [by_id[leg.id] for leg in plan.legs]


def close(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
    return len(a) == len(b) and all(abs(x - y) <= TOLERANCE * max(1.0, abs(x)) for x, y in zip(a, b, strict=True))


def plan_or_none(planner: Planner, query: Query, objective: Objective, k: int = 1) -> list[RoutePlan] | None:
    try:
        return planner.plan(
            query.origin,
            query.destination,
            objective=objective,
            modes=query.modes,
            avoid=query.avoid,
            alternatives=k,
            depart_at=query.depart_at,
        )
    except InvalidError:
        return None


SETTINGS = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(data=st.data(), detour=st.booleans(), objective=st.sampled_from(list(Objective)), k=st.integers(1, 5))
def test_alternatives_match_brute_force(data: st.DataObject, detour: bool, objective: Objective, k: int) -> None:
    network = data.draw(networks(detour))
    query = data.draw(queries(network, detour))
    expected = brute_force(network, query, objective)
    plans = plan_or_none(Planner(network), query, objective, k)
    if not expected:
        assert plans is None
        return
    assert plans is not None
    timed = query.depart_at is not None and objective is Objective.TIME
    assert len(plans) == min(k, len(expected))
    keys = [plan_key(p, objective, network, timed) for p in plans]
    # Best first, each as good as the brute force's route of the same rank (ties may swap routes).
    for got, (want, _) in zip(keys, expected, strict=False):
        assert close(got, want), (got, want)
    assert len({tuple(p.nodes) for p in plans}) == len(plans)
    by_nodes = {nodes: value for value, nodes in expected}
    for plan, got in zip(plans, keys, strict=True):
        assert close(by_nodes[tuple(plan.nodes)], got)


@SETTINGS
@given(data=st.data(), network=networks())
def test_each_objective_wins_on_its_own_measure(data: st.DataObject, network: Network) -> None:
    query = data.draw(queries(network))
    planner = Planner(network)
    plans = {objective: plan_or_none(planner, query, objective) for objective in Objective}
    if plans[Objective.TIME] is None:
        assert all(p is None for p in plans.values())
        return
    best = {objective: found[0] for objective, found in plans.items() if found}
    assert len(best) == len(Objective)
    for other in best.values():
        assert best[Objective.TIME].duration_h <= other.duration_h + TOLERANCE
        assert best[Objective.COST].cost_per_teu <= other.cost_per_teu + TOLERANCE
        assert best[Objective.CO2].co2_kg_per_teu <= other.co2_kg_per_teu + TOLERANCE
    assert len(best[Objective.INSPECTIONS].inspections) <= len(best[Objective.TIME].inspections)


@SETTINGS
@given(data=st.data(), network=networks(), objective=st.sampled_from(list(Objective)), k=st.integers(1, 5))
def test_routes_respect_constraints_and_schedules(
    data: st.DataObject, network: Network, objective: Objective, k: int
) -> None:
    query = data.draw(queries(network))
    plans = plan_or_none(Planner(network), query, objective, k)
    if plans is None:
        return
    timed = query.depart_at is not None and objective is Objective.TIME
    keys = [plan_key(p, objective, network, timed) for p in plans]
    assert keys == sorted(keys) or all(close(a, b) or a < b for a, b in itertools.pairwise(keys))
    for plan in plans:
        legs = plan.legs
        assert plan.nodes[0] == query.origin
        assert plan.nodes[-1] == query.destination
        assert len(set(plan.nodes)) == len(plan.nodes)
        assert [leg.origin for leg in legs] == plan.nodes[:-1]
        assert [leg.destination for leg in legs] == plan.nodes[1:]
        assert not set(plan.nodes) & query.avoid
        assert query.modes is None or {leg.mode for leg in legs} <= query.modes
        assert plan.inspections[-1] == query.destination
        assert len(set(plan.inspections)) == len(plan.inspections)
        assert [t.node for t in plan.transfers] == [b.origin for a, b in itertools.pairwise(legs) if a.mode != b.mode]
        if query.depart_at is None:
            assert all(leg.depart_at is None and leg.arrive_at is None for leg in legs)
            continue
        ready = query.depart_at
        by_id = {leg.id: leg for leg in network.legs}
        for i, leg in enumerate(legs):
            assert leg.depart_at is not None
            assert leg.arrive_at is not None
            if i and legs[i - 1].mode != leg.mode:
                ready += timedelta(hours=network.nodes[leg.origin].handling_h)
            assert leg.depart_at >= ready - timedelta(microseconds=1)
            departures = by_id[leg.id].departures
            if departures:
                moment = leg.depart_at.astimezone(UTC)
                assert Departure(moment.isoweekday(), moment.hour * 60 + moment.minute) in departures
                assert moment.second == 0
                assert moment.microsecond == 0
            else:
                assert abs(leg.depart_at - ready) <= timedelta(microseconds=1)
            ready = leg.arrive_at
        assert plan.duration_h == pytest.approx((ready - query.depart_at) / timedelta(hours=1), abs=1e-6)
