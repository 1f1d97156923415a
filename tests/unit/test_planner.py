"""The route planner on small hand-checked networks, and on the reference network."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from fixtures import REFERENCE_DIR
from routing.errors import InvalidError, NotFoundError
from routing.network import LegInfo, Network, NodeInfo, parse_departures
from routing.planner import Planner, RoutePlan, Transfer
from routing.reference import read_reference_network
from routing.vocab import Mode, NodeKind, Objective

ROAD, RAIL, BARGE, SEA = Mode.ROAD, Mode.RAIL, Mode.BARGE, Mode.SEA
SUNDAY_22H = datetime(2026, 11, 29, 22, 0, tzinfo=UTC)  # a Sunday


def node(
    code: str,
    lon: float = 113.0,
    lat: float = 23.0,
    *,
    office: str = "CN-GUANGZHOU",
    handling_h: float = 2.0,
    handling_cost: float = 50.0,
    seal_preserving: bool = True,
) -> NodeInfo:
    return NodeInfo(
        code=code,
        name=code,
        kind=NodeKind.DRY_PORT,
        lon=lon,
        lat=lat,
        modes=frozenset(Mode),
        customs_office=office,
        handling_h=handling_h,
        handling_cost_per_teu=handling_cost,
        seal_preserving_transfer=seal_preserving,
        dwell_limit_h=48.0,
    )


def network(nodes: list[NodeInfo], legs: list[tuple]) -> Network:
    """Legs as (origin, destination, mode, duration_h, cost, co2[, departures]); ids count from 1."""
    by_code = {n.code: n for n in nodes}
    built = []
    for i, (a, b, mode, duration, cost, co2, *departures) in enumerate(legs, start=1):
        built.append(
            LegInfo(
                id=i,
                origin=a,
                destination=b,
                mode=mode,
                distance_km=duration * 10,
                duration_h=duration,
                cost_per_teu=cost,
                co2_kg_per_teu=co2,
                coords=((by_code[a].lon, by_code[a].lat), (by_code[b].lon, by_code[b].lat)),
                departures=parse_departures(departures[0] if departures else ()),
            )
        )
    return Network(version=1, nodes=by_code, legs=tuple(built))


def modes_of(plan: RoutePlan) -> list[Mode]:
    return [leg.mode for leg in plan.legs]


@pytest.fixture
def three_ways() -> Planner:
    """A to D: fast road via B, cheap barge via C, clean rail via E."""
    return Planner(
        network(
            [
                node("A", 113.0),
                node("B", 113.5, 23.2),
                node("C", 113.5, 22.8),
                node("E", 113.5, 23.0),
                node("D", 114.0),
            ],
            [
                ("A", "B", ROAD, 5, 500, 300),
                ("B", "D", ROAD, 5, 500, 300),
                ("A", "C", BARGE, 20, 200, 100),
                ("C", "D", BARGE, 20, 200, 100),
                ("A", "E", RAIL, 15, 450, 50),
                ("E", "D", RAIL, 15, 450, 50),
            ],
        )
    )


@pytest.mark.parametrize(
    ("objective", "nodes", "totals"),
    [
        (Objective.TIME, ["A", "B", "D"], (10, 1000, 600)),
        (Objective.COST, ["A", "C", "D"], (40, 400, 200)),
        (Objective.CO2, ["A", "E", "D"], (30, 900, 100)),
        ("cost", ["A", "C", "D"], (40, 400, 200)),
    ],
)
def test_each_objective_picks_its_route(
    three_ways: Planner, objective: Objective | str, nodes: list[str], totals: tuple[float, float, float]
) -> None:
    [plan] = three_ways.plan("A", "D", objective=objective)
    assert plan.nodes == nodes
    assert (plan.duration_h, plan.cost_per_teu, plan.co2_kg_per_teu) == totals
    assert plan.distance_km == totals[0] * 10
    assert plan.transfers == []


def test_mode_limits_and_avoided_nodes(three_ways: Planner) -> None:
    assert three_ways.plan("A", "D", modes=[BARGE])[0].nodes == ["A", "C", "D"]
    assert three_ways.plan("A", "D", modes=["rail", "barge"])[0].nodes == ["A", "E", "D"]
    assert three_ways.plan("A", "D", avoid=["B"])[0].nodes == ["A", "E", "D"]
    assert three_ways.plan("A", "D", avoid=["B", "E"], modes=[ROAD, BARGE])[0].nodes == ["A", "C", "D"]


def test_alternatives_are_distinct_and_best_first(three_ways: Planner) -> None:
    plans = three_ways.plan("A", "D", alternatives=5)
    assert [p.nodes for p in plans] == [["A", "B", "D"], ["A", "E", "D"], ["A", "C", "D"]]
    assert [p.duration_h for p in plans] == [10, 30, 40]
    assert [p.cost_per_teu for p in three_ways.plan("A", "D", objective=Objective.COST, alternatives=2)] == [400, 900]


def test_legs_on_the_same_nodes_count_as_one_alternative() -> None:
    planner = Planner(
        network(
            [node("A"), node("B"), node("C")],
            [("A", "B", ROAD, 1, 10, 10), ("A", "B", RAIL, 2, 5, 5), ("A", "C", ROAD, 9, 90, 90)],
        )
    )
    plans = planner.plan("A", "B", alternatives=3)
    assert [p.nodes for p in plans] == [["A", "B"]]
    assert modes_of(plans[0]) == [ROAD]


@pytest.fixture
def change_at_b() -> Planner:
    """A to C: rail to B, then on by rail (slower) or by road (cheaper but a transfer at B: 4 h, 30 per TEU)."""
    return Planner(
        network(
            [node("A", 113.0), node("B", 113.5, handling_h=4, handling_cost=30), node("C", 114.0)],
            [("A", "B", RAIL, 10, 100, 20), ("B", "C", RAIL, 5, 200, 10), ("B", "C", ROAD, 2, 50, 40)],
        )
    )


def test_continuing_in_the_same_mode_adds_no_handling(change_at_b: Planner) -> None:
    [plan] = change_at_b.plan("A", "C")
    assert modes_of(plan) == [RAIL, RAIL]
    assert (plan.duration_h, plan.cost_per_teu) == (15, 300)
    assert plan.transfers == []


def test_a_change_of_mode_adds_the_nodes_handling(change_at_b: Planner) -> None:
    [plan] = change_at_b.plan("A", "C", objective=Objective.COST)
    assert modes_of(plan) == [RAIL, ROAD]
    assert (plan.duration_h, plan.cost_per_teu) == (10 + 4 + 2, 100 + 30 + 50)
    assert plan.transfers == [Transfer("B", RAIL, ROAD, True)]


def test_a_cheap_detour_does_not_bring_the_route_back_to_a_node() -> None:
    # Changing mode at B takes a day; changing at C takes an hour, but going B→C→B would visit B twice.
    planner = Planner(
        network(
            [node("A"), node("B", handling_h=24), node("C", handling_h=1), node("D")],
            [
                ("A", "B", RAIL, 5, 1, 1),
                ("B", "C", RAIL, 0.5, 1, 1),
                ("C", "B", ROAD, 0.5, 1, 1),
                ("B", "D", ROAD, 1, 1, 1),
                ("C", "D", ROAD, 30, 1, 1),
            ],
        )
    )
    plans = planner.plan("A", "D", alternatives=5)
    assert [p.nodes for p in plans] == [["A", "B", "D"], ["A", "B", "C", "D"]]
    assert [p.duration_h for p in plans] == [5 + 24 + 1, 5 + 0.5 + 1 + 30]


def test_timetabled_leg_waits_across_the_week_boundary() -> None:
    planner = Planner(
        network(
            [node("A"), node("B", handling_h=2), node("C")],
            [("A", "B", RAIL, 10, 1, 1, ["mon 02:00", "sat 09:00"]), ("B", "C", ROAD, 3, 1, 1)],
        )
    )
    [plan] = planner.plan("A", "C", depart_at=SUNDAY_22H)
    rail, road = plan.legs
    assert (rail.depart_at, rail.arrive_at) == (
        datetime(2026, 11, 30, 2, tzinfo=UTC),
        datetime(2026, 11, 30, 12, tzinfo=UTC),
    )
    # Two hours of handling to change from rail to road, then the road leg leaves at once.
    assert (road.depart_at, road.arrive_at) == (
        datetime(2026, 11, 30, 14, tzinfo=UTC),
        datetime(2026, 11, 30, 17, tzinfo=UTC),
    )
    assert plan.duration_h == 19
    data = plan.to_dict()
    assert data["legs"][0]["depart_at"] == "2026-11-30T02:00:00Z"
    assert data["legs"][1]["arrive_at"] == "2026-11-30T17:00:00Z"

    [undated] = planner.plan("A", "C")
    assert undated.duration_h == 10 + 2 + 3
    assert all(leg.depart_at is None and leg.arrive_at is None for leg in undated.legs)
    assert "depart_at" not in undated.to_dict()["legs"][0]


def test_departure_exactly_on_time_and_in_another_offset() -> None:
    planner = Planner(network([node("A"), node("B")], [("A", "B", RAIL, 10, 1, 1, ["mon 02:00"])]))
    china = timezone(timedelta(hours=8))
    [plan] = planner.plan("A", "B", depart_at=datetime(2026, 11, 30, 10, 0, tzinfo=china))  # Monday 02:00 UTC
    assert plan.legs[0].depart_at == datetime(2026, 11, 30, 2, tzinfo=UTC)
    assert plan.duration_h == 10
    [late] = planner.plan("A", "B", depart_at=datetime(2026, 11, 30, 2, 0, 1, tzinfo=UTC))
    assert late.legs[0].depart_at == datetime(2026, 12, 7, 2, tzinfo=UTC)


def test_with_a_departure_time_the_fastest_route_is_the_earliest_arrival() -> None:
    planner = Planner(
        network(
            [node("A"), node("B"), node("C")],
            [("A", "B", RAIL, 5, 1, 1, ["wed 00:00"]), ("A", "C", ROAD, 6, 9, 9), ("C", "B", ROAD, 4, 9, 9)],
        )
    )
    assert planner.plan("A", "B")[0].nodes == ["A", "B"]
    monday = datetime(2026, 11, 23, 0, 0, tzinfo=UTC)
    [plan] = planner.plan("A", "B", depart_at=monday)
    assert plan.nodes == ["A", "C", "B"]
    assert plan.legs[-1].arrive_at == monday + timedelta(hours=10)
    # Another objective keeps its route and is then scheduled: the rail leg waits for Wednesday.
    [cheap] = planner.plan("A", "B", objective=Objective.COST, depart_at=monday)
    assert cheap.nodes == ["A", "B"]
    assert cheap.duration_h == 48 + 5


@pytest.fixture
def border() -> Network:
    """Mainland nodes A, B (transfers break seals at B) and S; Hong Kong nodes H and K."""
    return network(
        [
            node("A"),
            node("B", seal_preserving=False),
            node("S", seal_preserving=True),
            node("H", office="HK-CED", seal_preserving=False),
            node("K", office="HK-CED"),
        ],
        [
            ("A", "B", RAIL, 5, 1, 1),
            ("B", "K", ROAD, 2, 1, 1),
            ("B", "S", ROAD, 1, 1, 1),
            ("A", "S", RAIL, 9, 1, 1),
            ("S", "K", ROAD, 3, 1, 1),
            ("A", "H", ROAD, 10, 1, 1),
            ("H", "K", SEA, 1, 1, 1),
        ],
    )


def test_inspections_at_seal_breaking_transfers_border_entries_and_destination(border: Network) -> None:
    planner = Planner(border)
    [via_b] = planner.plan("A", "K", modes=[RAIL, ROAD], avoid=["S"])
    assert via_b.nodes == ["A", "B", "K"]
    assert via_b.transfers == [Transfer("B", RAIL, ROAD, False)]
    assert via_b.inspections == ["B", "K"]
    # Entering Hong Kong at H, and changing mode there without seals kept, is still one inspection at H.
    [via_h] = planner.plan("A", "K", avoid=["B", "S"])
    assert via_h.nodes == ["A", "H", "K"]
    assert via_h.inspections == ["H", "K"]
    [same_mode] = planner.plan("A", "S", modes=[RAIL])
    assert same_mode.inspections == ["S"]
    [entry] = planner.plan("A", "H")
    assert entry.inspections == ["H"]


def test_fewest_inspections_keeps_the_seals_intact(border: Network) -> None:
    planner = Planner(border)
    assert planner.plan("A", "K", objective=Objective.TIME)[0].nodes == ["A", "B", "K"]
    [plan] = planner.plan("A", "K", objective=Objective.INSPECTIONS)
    assert plan.inspections == ["K"]
    assert plan.nodes == ["A", "S", "K"]  # rail to S, seal-preserving transfer to road
    plans = planner.plan("A", "K", objective=Objective.INSPECTIONS, alternatives=5)
    counts = [(len(p.inspections), p.duration_h) for p in plans]
    assert counts == sorted(counts)


@pytest.mark.parametrize(
    ("kwargs", "error", "text"),
    [
        ({"origin": "XX"}, NotFoundError, "XX"),
        ({"destination": "YY"}, NotFoundError, "YY"),
        ({"avoid": ["ZZ"]}, NotFoundError, "ZZ"),
        ({"destination": "A"}, InvalidError, "same"),
        ({"avoid": ["D"]}, InvalidError, "avoid"),
        ({"modes": [SEA]}, InvalidError, "no route from A to D by sea"),
        ({"modes": []}, InvalidError, "mode"),
        ({"modes": ["hovercraft"]}, InvalidError, "mode"),
        ({"objective": "speed"}, InvalidError, "objective"),
        ({"alternatives": 0}, InvalidError, "alternatives"),
        ({"alternatives": 6}, InvalidError, "alternatives"),
        ({"depart_at": datetime(2026, 11, 23, 8, 0)}, InvalidError, "depart_at"),  # noqa: DTZ001
    ],
)
def test_bad_requests(three_ways: Planner, kwargs: dict, error: type[Exception], text: str) -> None:
    args = {"origin": "A", "destination": "D"} | kwargs
    with pytest.raises(error, match=text):
        three_ways.plan(args.pop("origin"), args.pop("destination"), **args)


def test_no_route_when_avoiding_cuts_the_network(three_ways: Planner) -> None:
    with pytest.raises(InvalidError, match="avoiding B, C, E"):
        three_ways.plan("A", "D", avoid=["B", "C", "E"])


def test_api_shape_and_geometry(change_at_b: Planner) -> None:
    [plan] = change_at_b.plan("A", "C", objective="cost", depart_at=SUNDAY_22H)
    assert plan.geometry == [(113.0, 23.0), (113.5, 23.0), (114.0, 23.0)]
    data = plan.to_dict()
    assert set(data) == {
        "nodes",
        "legs",
        "duration_h",
        "cost_per_teu",
        "co2_kg_per_teu",
        "distance_km",
        "transfers",
        "inspections",
        "geometry",
    }
    assert set(data["legs"][0]) == {
        "origin",
        "destination",
        "mode",
        "distance_km",
        "duration_h",
        "cost_per_teu",
        "co2_kg_per_teu",
        "depart_at",
        "arrive_at",
    }
    assert data["legs"][0]["mode"] == "rail"
    assert data["legs"][0]["depart_at"] == "2026-11-29T22:00:00Z"
    assert data["transfers"] == [{"node": "B", "from_mode": "rail", "to_mode": "road", "seal_preserving": True}]
    assert data["geometry"] == {"type": "LineString", "coordinates": [[113.0, 23.0], [113.5, 23.0], [114.0, 23.0]]}
    assert data["duration_h"] == 16
    assert data["cost_per_teu"] == 180


# ------------------------------------------------------------------ the reference network (fixtures/)


@pytest.fixture(scope="module")
def reference() -> Planner:
    return Planner(read_reference_network(REFERENCE_DIR))


def test_rail_from_changsha_to_duisburg_crosses_a_border(reference: Planner) -> None:
    [plan] = reference.plan("CNCSH", "DEDUI", modes=[RAIL])
    assert {leg.mode for leg in plan.legs} == {RAIL}
    kinds = {reference.network.nodes[code].kind for code in plan.nodes}
    assert NodeKind.BORDER_CROSSING in kinds
    assert 5 * 24 <= plan.duration_h <= 40 * 24
    assert plan.inspections[-1] == "DEDUI"


def test_barge_from_sanshui_to_nansha(reference: Planner) -> None:
    [plan] = reference.plan("CNSJQ", "CNNSA", modes=[BARGE])
    assert plan.legs
    assert all(leg.mode is BARGE for leg in plan.legs)
    assert plan.nodes[0] == "CNSJQ"
    assert plan.nodes[-1] == "CNNSA"


def test_reference_alternatives_with_a_departure_time(reference: Planner) -> None:
    plans = reference.plan("CNCSH", "DEDUI", alternatives=5, depart_at=SUNDAY_22H)
    assert 1 < len(plans) <= 5
    arrivals = [p.arrive_at for p in plans]
    assert all(a is not None for a in arrivals)
    assert arrivals == sorted(arrivals)  # type: ignore[type-var]
    assert len({tuple(p.nodes) for p in plans}) == len(plans)
