"""The reference network in fixtures/: complete, connected and plausible (pure: no database, no Flask)."""

from __future__ import annotations

import csv
import itertools
import tomllib
from collections.abc import Iterable
from functools import cache
from pathlib import Path

import networkx as nx
import pytest

from fixtures import REFERENCE_DIR
from routing.network import LegInfo, Network, haversine_km
from routing.reference import node_extras, read_reference_network
from routing.vocab import Mode, NodeKind

FIXTURES = REFERENCE_DIR
REPO_ROOT = Path(__file__).resolve().parents[2]
# shared/ sits beside the repository, in CI too (a fresh clone with shared/ next to it).
SHARED_NODES = REPO_ROOT.parent / "shared" / "reference" / "nodes.csv"

# Implied speed (distance / duration) per mode, from shared/reference/legs-guide.md: sea 16-20 knots (slower on
# long hauls with calls: 19,500 km in 28-35 days), barge 8-12 km/h effective (slower through locks), domestic
# rail 35-50 km/h, road 50-60 km/h (slower on short urban hauls).
SPEED_KMH = {Mode.SEA: (20, 40), Mode.BARGE: (6, 13), Mode.RAIL: (30, 55), Mode.ROAD: (30, 65)}
# A leg touching a border crossing may add its dwell (break of gauge, customs queues) to the running time.
BORDER_DWELL_H = {Mode.SEA: 0, Mode.BARGE: 0, Mode.RAIL: 120, Mode.ROAD: 3}
# Running speed of a leg that carries border dwell: China-Europe trains are slower than domestic ones in 1520 mm.
BORDER_SPEED_KMH = {Mode.RAIL: (15, 55), Mode.ROAD: (30, 65)}


@cache
def network() -> Network:
    return read_reference_network(FIXTURES)


def shared_rows() -> list[dict[str, str]]:
    with SHARED_NODES.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def graph(modes: Iterable[Mode] = tuple(Mode), *, without: frozenset[str] = frozenset()) -> nx.DiGraph:
    net = network()
    g = nx.DiGraph()
    g.add_nodes_from(code for code in net.nodes if code not in without)
    allowed = set(modes)
    g.add_edges_from(
        (leg.origin, leg.destination)
        for leg in net.legs
        if leg.mode in allowed and leg.origin not in without and leg.destination not in without
    )
    return g


def touches_border(leg: LegInfo) -> bool:
    nodes = network().nodes
    return NodeKind.BORDER_CROSSING in {nodes[leg.origin].kind, nodes[leg.destination].kind}


def fastest(origin: str, destination: str, mode: Mode) -> LegInfo:
    legs = [leg for leg in network().legs if (leg.origin, leg.destination, leg.mode) == (origin, destination, mode)]
    assert legs, f"no {mode} leg {origin} -> {destination}"
    return min(legs, key=lambda leg: leg.duration_h)


def test_shared_reference_file_is_beside_the_repository():
    assert SHARED_NODES.is_file(), f"{SHARED_NODES} is missing: shared/ must sit beside the repository"


def test_every_shared_reference_node_is_kept_with_its_kind_office_and_modes():
    nodes = network().nodes
    sources = node_extras(FIXTURES / "nodes.csv")
    problems = []
    for row in shared_rows():
        code = row["code"]
        if code not in nodes:
            problems.append(f"{code}: missing")
            continue
        node = nodes[code]
        if node.kind != NodeKind(row["kind"]):
            problems.append(f"{code}: kind {node.kind} instead of {row['kind']}")
        if node.customs_office != row["customs_office"]:
            problems.append(f"{code}: office {node.customs_office} instead of {row['customs_office']}")
        if not {Mode(m) for m in row["modes"].split(";")} <= node.modes:
            problems.append(f"{code}: lost modes of {row['modes']}")
        moved_km = haversine_km((node.lon, node.lat), (float(row["lon"]), float(row["lat"])))
        if moved_km > 1 and "corrected" not in sources[code]["source"]:
            problems.append(f"{code}: moved {moved_km:.1f} km without saying so in its source")
    assert not problems


def test_network_has_at_least_40_nodes_with_unique_codes():
    with (FIXTURES / "nodes.csv").open(newline="", encoding="utf-8") as fh:
        codes = [row["code"] for row in csv.DictReader(fh)]
    assert len(codes) == len(set(codes))
    assert len(network().nodes) >= 40


def test_every_mode_has_legs():
    assert {leg.mode for leg in network().legs} == set(Mode)


def test_no_duplicate_legs():
    keys = [(leg.origin, leg.destination, leg.mode) for leg in network().legs]
    assert len(keys) == len(set(keys))
    assert all(leg.origin != leg.destination for leg in network().legs)


def test_network_is_strongly_connected():
    g = graph()
    assert nx.is_strongly_connected(g), [sorted(c) for c in nx.strongly_connected_components(g) if len(c) < len(g)]


def test_rail_and_road_legs_change_customs_territory_only_at_a_border_crossing():
    nodes = network().nodes
    crossing = [
        f"{leg.origin}->{leg.destination}"
        for leg in network().legs
        if leg.mode in (Mode.RAIL, Mode.ROAD)
        and nodes[leg.origin].territory != nodes[leg.destination].territory
        and not touches_border(leg)
    ]
    assert not crossing


def test_china_europe_rail_routes_leave_china_at_a_border_crossing():
    # Without China's border crossings (Alashankou, Khorgos, Erenhot, Manzhouli) no train reaches Europe or the EAEU.
    nodes = network().nodes
    exits = frozenset(
        code for code, node in nodes.items() if node.kind == NodeKind.BORDER_CROSSING and node.territory == "CN"
    )
    assert exits
    g = graph([Mode.RAIL], without=exits)
    chinese = [code for code in g if nodes[code].territory == "CN"]
    european = [code for code in g if nodes[code].territory in ("EU", "EAEU")]
    assert chinese
    assert european
    assert not [(a, b) for a in chinese for b in european if nx.has_path(g, a, b) or nx.has_path(g, b, a)]


def test_china_europe_trains_are_timetabled_where_they_start():
    nodes = network().nodes
    starts = [
        leg
        for leg in network().legs
        if leg.mode == Mode.RAIL
        and nodes[leg.origin].territory == "CN"
        and nodes[leg.origin].kind != NodeKind.BORDER_CROSSING
        and nodes[leg.destination].kind == NodeKind.BORDER_CROSSING
    ]
    assert len(starts) >= 4
    assert all(1 <= len(leg.departures) <= 7 for leg in starts), [
        f"{leg.origin}->{leg.destination}" for leg in starts if not 1 <= len(leg.departures) <= 7
    ]


@pytest.mark.parametrize("mode", list(Mode), ids=str)
def test_durations_are_plausible(mode: Mode):
    implausible = []
    for leg in network().legs:
        if leg.mode != mode:
            continue
        low, high = SPEED_KMH[mode]
        dwell = 0.0
        if touches_border(leg) and BORDER_DWELL_H[mode]:
            low, high = BORDER_SPEED_KMH[mode]
            dwell = BORDER_DWELL_H[mode]
        if not leg.distance_km / high <= leg.duration_h <= leg.distance_km / low + dwell:
            implausible.append(f"{leg.origin}->{leg.destination}: {leg.distance_km} km in {leg.duration_h} h")
    assert not implausible


@pytest.mark.parametrize(
    ("route", "mode", "low_h", "high_h"),
    [
        (["CNSJQ", "CNNSA"], Mode.BARGE, 10, 12),
        (["CNYTN", "DEHAM"], Mode.SEA, 28 * 24, 35 * 24),
        (["CNGGZ-DLG", "CNAKL", "PLMAA"], Mode.RAIL, 14 * 24, 16 * 24),
        (["CNGGZ-DLG", "CNMLX", "RUVRS"], Mode.RAIL, 15 * 24, 17 * 24),
        (["CNGGZ-ZCX", "CNHRS", "PLMAA"], Mode.RAIL, 13 * 24, 15 * 24),
        (["CNGGZ-DLG", "CNERC", "PLMAA"], Mode.RAIL, 15 * 24, 16 * 24),
    ],
    ids=lambda value: "-".join(value) if isinstance(value, list) else None,
)
def test_guide_running_times_are_met(route: list[str], mode: Mode, low_h: float, high_h: float):
    hours = sum(fastest(a, b, mode).duration_h for a, b in itertools.pairwise(route))
    assert low_h <= hours <= high_h


@pytest.mark.parametrize(
    ("origin", "destination", "low_h", "high_h"),
    [("CNCSH", "CNNSA", 30, 36), ("CNGZH", "CNYTN", 20, 24)],
)
def test_guide_door_to_door_sea_rail_times_are_met(origin: str, destination: str, low_h: float, high_h: float):
    # The guide's domestic figures run terminal to terminal: the leg plus the handling at both ends.
    nodes = network().nodes
    hours = (
        fastest(origin, destination, Mode.RAIL).duration_h + nodes[origin].handling_h + nodes[destination].handling_h
    )
    assert low_h <= hours <= high_h


def test_erenhot_route_to_warsaw_is_about_11200_km():
    km = sum(fastest(a, b, Mode.RAIL).distance_km for a, b in [("CNGGZ-DLG", "CNERC"), ("CNERC", "PLMAA")])
    assert 10_500 <= km + 190 <= 11_500  # Malaszewicze -> Warsaw is about 190 km


def test_changsha_and_duisburg_are_connected_by_rail_only():
    g = graph([Mode.RAIL])
    assert nx.has_path(g, "CNCSH", "DEDUI")
    assert nx.has_path(g, "DEDUI", "CNCSH")


def test_sanshui_and_nansha_are_connected_by_barge_only():
    g = graph([Mode.BARGE])
    assert nx.has_path(g, "CNSJQ", "CNNSA")
    assert nx.has_path(g, "CNNSA", "CNSJQ")


def test_long_legs_follow_waypoints():
    straight = [
        f"{leg.origin}->{leg.destination}" for leg in network().legs if leg.distance_km > 500 and len(leg.coords) < 3
    ]
    assert not straight


def test_asia_europe_sea_legs_go_by_singapore_and_suez():
    nodes = network().nodes
    singapore, suez = (103.85, 1.2), (32.35, 30.3)
    long_sea = [
        leg
        for leg in network().legs
        if leg.mode == Mode.SEA and {nodes[leg.origin].territory, nodes[leg.destination].territory} & {"EU"}
    ]
    assert long_sea
    for leg in long_sea:
        assert min(haversine_km(p, singapore) for p in leg.coords) < 60
        assert min(haversine_km(p, suez) for p in leg.coords) < 60


def test_seals_stay_on_at_border_crossings_and_some_nodes_open_boxes():
    nodes = network().nodes.values()
    assert all(n.seal_preserving_transfer for n in nodes if n.kind == NodeKind.BORDER_CROSSING)
    assert any(not n.seal_preserving_transfer for n in nodes)


def test_every_leg_and_node_names_its_source():
    legs = tomllib.loads((FIXTURES / "legs.toml").read_text(encoding="utf-8"))["leg"]
    assert all(str(spec.get("source", "")).strip() for spec in legs)
    node_sources = node_extras(FIXTURES / "nodes.csv")
    assert all(extra["source"] for extra in node_sources.values())
    texts = [spec["source"] for spec in legs] + [extra["source"] for extra in node_sources.values()]
    assert not [text for text in texts if "http" in text or "www." in text]
