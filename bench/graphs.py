"""A deterministic synthetic multimodal network the size of a real one, for the routing benchmark."""

from __future__ import annotations

import math
import random
from collections import defaultdict
from dataclasses import dataclass

from routing.network import Departure, LegInfo, Network, NodeInfo, haversine_km
from routing.vocab import Mode, NodeKind


@dataclass(frozen=True, slots=True)
class ModeProfile:
    """How one mode's synthetic legs are drawn: who carries it, how many legs, and their figures."""

    share: float  # fraction of nodes that handle the mode
    pairs: int  # undirected node pairs served (each becomes two legs)
    detour: tuple[float, float]  # leg distance / great-circle distance
    speed_kmh: tuple[float, float]
    cost_fixed: float
    cost_per_km: float
    co2_per_km: float
    timetabled: float  # fraction of legs that run to a weekly timetable
    weekly: tuple[int, int]  # departures per week on a timetabled leg


# Figures from /work/shared/reference/legs-guide.md (PRD barge 8–12 km/h, sea-rail 35–50 km/h, sea 30–37 km/h,
# road 50–60 km/h; CO2 and cost per TEU-km of the same order); 30,000 pairs give 60,000 directed legs.
PROFILES: dict[Mode, ModeProfile] = {
    Mode.ROAD: ModeProfile(1.0, 16_000, (1.2, 1.4), (50, 60), 150, 7.0, 0.7, 0.0, (0, 0)),
    Mode.RAIL: ModeProfile(0.35, 7_000, (1.15, 1.3), (35, 50), 400, 3.0, 0.15, 0.5, (3, 7)),
    Mode.BARGE: ModeProfile(0.25, 4_500, (1.3, 1.6), (8, 12), 300, 1.5, 0.3, 0.4, (7, 14)),
    Mode.SEA: ModeProfile(0.08, 2_500, (1.1, 1.3), (30, 37), 600, 0.8, 0.09, 0.6, (1, 3)),
}

# South China, from the Yunnan–Guizhou plateau to the Fujian coast (the Pan-Pearl River Delta's hinterland).
REGION = (106.0, 21.5, 118.0, 28.5)
HONG_KONG = (113.83, 22.15, 114.43, 22.56)
MACAO = (113.52, 22.10, 113.60, 22.22)


def _office(lon: float, lat: float) -> str:
    """A customs office for a point: Hong Kong and Macao are their own territories, the rest is mainland China."""
    if HONG_KONG[0] <= lon <= HONG_KONG[2] and HONG_KONG[1] <= lat <= HONG_KONG[3]:
        return "HK-CED"
    if MACAO[0] <= lon <= MACAO[2] and MACAO[1] <= lat <= MACAO[3]:
        return "MO-CUSTOMS"
    return f"CN-D{int(lon - REGION[0]):02d}{int(lat - REGION[1]):02d}"


def _kind(modes: frozenset[Mode]) -> NodeKind:
    if Mode.SEA in modes:
        return NodeKind.SEAPORT
    if Mode.RAIL in modes:
        return NodeKind.RAIL_TERMINAL
    if Mode.BARGE in modes:
        return NodeKind.RIVER_PORT
    return NodeKind.INLAND_DEPOT


def _nearest_ranks(points: list[tuple[float, float]], ranks: int) -> list[list[int]]:
    """For each `(lon, lat)` point, its `ranks` nearest others among the grid cells around it, nearest first
    (equirectangular distances: plenty at this scale)."""
    squeeze = math.cos(math.radians((REGION[1] + REGION[3]) / 2))  # a degree of longitude is shorter
    cell = math.sqrt((REGION[2] - REGION[0]) * (REGION[3] - REGION[1]) * 4 / max(len(points), 1))
    grid: dict[tuple[int, int], list[int]] = defaultdict(list)
    for i, (lon, lat) in enumerate(points):
        grid[(int(lon / cell), int(lat / cell))].append(i)

    def around(i: int, radius: int) -> list[int]:
        cx, cy = int(points[i][0] / cell), int(points[i][1] / cell)
        return [
            j
            for gx in range(cx - radius, cx + radius + 1)
            for gy in range(cy - radius, cy + radius + 1)
            for j in grid.get((gx, gy), ())
            if j != i
        ]

    result = []
    for i, (lon, lat) in enumerate(points):
        radius = 1
        while len(around(i, radius)) < ranks and radius * cell < 30:
            radius += 1
        # One ring more: a point just outside the square can be nearer than one in its corner.
        found = around(i, radius + 1)
        found.sort(key=lambda j: ((points[j][0] - lon) * squeeze) ** 2 + (points[j][1] - lat) ** 2)
        result.append(found[:ranks])
    return result


def synthetic_network(nodes: int = 10_000, legs: int = 60_000, seed: int = 20261123) -> Network:
    """A reproducible network of `nodes` nodes and about `legs` legs (both directions of near-neighbour pairs)."""
    rng = random.Random(seed)
    scale = legs / 60_000
    coords = [
        (round(rng.uniform(REGION[0], REGION[2]), 5), round(rng.uniform(REGION[1], REGION[3]), 5)) for _ in range(nodes)
    ]
    node_modes: list[set[Mode]] = [{Mode.ROAD} for _ in range(nodes)]
    for mode, profile in PROFILES.items():
        if profile.share < 1.0:
            for i in rng.sample(range(nodes), int(nodes * profile.share)):
                node_modes[i].add(mode)

    infos: dict[str, NodeInfo] = {}
    codes = [f"XX{i:05d}" for i in range(nodes)]
    for i, (lon, lat) in enumerate(coords):
        modes = frozenset(node_modes[i])
        infos[codes[i]] = NodeInfo(
            code=codes[i],
            name=f"Synthetic {i}",
            kind=_kind(modes),
            lon=lon,
            lat=lat,
            modes=modes,
            customs_office=_office(lon, lat),
            handling_h=round(rng.uniform(1.0, 2.0) if len(modes) == 1 else rng.uniform(2.0, 8.0), 1),
            handling_cost_per_teu=round(rng.uniform(40, 160), 0),
            seal_preserving_transfer=rng.random() < 0.75,
            dwell_limit_h=72.0,
        )

    result: list[LegInfo] = []
    for mode, profile in PROFILES.items():
        members = [i for i in range(nodes) if mode in node_modes[i]]
        ranks = _nearest_ranks([coords[i] for i in members], 8)
        pairs: list[tuple[int, int]] = []
        seen: set[tuple[int, int]] = set()
        budget = int(profile.pairs * scale)
        # Nearest neighbours first, so the budget keeps the shortest (and most connected) links.
        for rank in range(8):
            for a, near in enumerate(ranks):
                if rank < len(near):
                    key = (min(a, near[rank]), max(a, near[rank]))
                    if key not in seen:
                        seen.add(key)
                        pairs.append((members[key[0]], members[key[1]]))
            if len(pairs) >= budget:
                break
        for a, b in pairs[:budget]:
            for origin, destination in ((a, b), (b, a)):
                distance = haversine_km(coords[origin], coords[destination]) * rng.uniform(*profile.detour)
                departures: tuple[Departure, ...] = ()
                if rng.random() < profile.timetabled:
                    count = rng.randint(*profile.weekly)
                    departures = tuple(
                        sorted({Departure(rng.randint(1, 7), rng.randrange(0, 1440, 15)) for _ in range(count)})
                    )
                result.append(
                    LegInfo(
                        id=len(result) + 1,
                        origin=codes[origin],
                        destination=codes[destination],
                        mode=mode,
                        distance_km=round(distance, 1),
                        duration_h=max(0.001, round(distance / rng.uniform(*profile.speed_kmh), 3)),
                        cost_per_teu=round(profile.cost_fixed + profile.cost_per_km * distance, 2),
                        co2_kg_per_teu=round(profile.co2_per_km * distance, 2),
                        coords=(coords[origin], coords[destination]),
                        departures=departures,
                    )
                )
    return Network(version=1, nodes=infos, legs=tuple(result))
