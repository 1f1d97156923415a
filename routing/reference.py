"""Reads the reference network files (nodes CSV + legs TOML) into plain values; no database involved."""

from __future__ import annotations

import csv
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from routing.network import LegInfo, Network, NodeInfo, parse_departures, path_length_km
from routing.vocab import Mode, NodeKind

NODE_COLUMNS = [
    "code",
    "name",
    "name_zh",
    "kind",
    "lat",
    "lon",
    "modes",
    "customs_office",
    "handling_h",
    "handling_cost_per_teu",
    "seal_preserving_transfer",
    "dwell_limit_h",
    "source",
]


class ReferenceDataError(ValueError):
    """The reference files are inconsistent (a typo in a code, a missing figure)."""


def _bool(text: str) -> bool:
    if text.strip().lower() in {"true", "yes", "1"}:
        return True
    if text.strip().lower() in {"false", "no", "0"}:
        return False
    raise ValueError(f"not a boolean: {text!r}")


def read_nodes(path: Path) -> dict[str, NodeInfo]:
    nodes: dict[str, NodeInfo] = {}
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        missing = set(NODE_COLUMNS) - set(reader.fieldnames or ())
        if missing:
            raise ReferenceDataError(f"{path.name}: missing columns {sorted(missing)}")
        for line, row in enumerate(reader, start=2):
            try:
                node = NodeInfo(
                    code=row["code"].strip(),
                    name=row["name"].strip(),
                    kind=NodeKind(row["kind"].strip()),
                    lon=float(row["lon"]),
                    lat=float(row["lat"]),
                    modes=frozenset(Mode(m.strip()) for m in row["modes"].split(";") if m.strip()),
                    customs_office=row["customs_office"].strip(),
                    handling_h=float(row["handling_h"]),
                    handling_cost_per_teu=float(row["handling_cost_per_teu"]),
                    seal_preserving_transfer=_bool(row["seal_preserving_transfer"]),
                    dwell_limit_h=float(row["dwell_limit_h"]),
                )
            except (KeyError, ValueError) as exc:
                raise ReferenceDataError(f"{path.name}:{line}: {exc}") from exc
            if node.code in nodes:
                raise ReferenceDataError(f"{path.name}:{line}: duplicate code {node.code}")
            nodes[node.code] = node
    return nodes


def node_extras(path: Path) -> dict[str, dict[str, str]]:
    """The descriptive columns the planner does not need (Chinese name, coordinate source)."""
    with path.open(newline="", encoding="utf-8") as fh:
        return {
            row["code"].strip(): {"name_zh": row["name_zh"].strip(), "source": row["source"].strip()}
            for row in csv.DictReader(fh)
        }


def _leg(
    index: int, spec: Mapping[str, Any], modes: Mapping[str, Any], nodes: Mapping[str, NodeInfo], reverse: bool
) -> LegInfo:
    origin, destination = (spec["destination"], spec["origin"]) if reverse else (spec["origin"], spec["destination"])
    for code in (origin, destination):
        if code not in nodes:
            raise ReferenceDataError(f"leg {index}: unknown node {code}")
    mode = Mode(spec["mode"])
    for code in (origin, destination):
        if mode not in nodes[code].modes:
            raise ReferenceDataError(f"leg {index}: {code} does not handle {mode}")
    defaults = modes[mode.value]
    via = [tuple(map(float, p)) for p in spec.get("via", [])]
    if reverse:
        via.reverse()
    coords = (
        (nodes[origin].lon, nodes[origin].lat),
        *((p[0], p[1]) for p in via),
        (nodes[destination].lon, nodes[destination].lat),
    )
    distance_km = float(spec.get("distance_km") or round(path_length_km(coords), 1))
    duration_h = float(spec.get("duration_h") or round(distance_km / defaults["speed_kmh"], 1))
    cost = spec.get("cost_per_teu")
    if cost is None:
        cost = defaults["cost_per_teu_fixed"] + defaults["cost_per_teu_km"] * distance_km
    co2 = spec.get("co2_kg_per_teu")
    if co2 is None:
        co2 = defaults["co2_kg_per_teu_km"] * distance_km
    departures = spec.get("departures_back" if reverse else "departures", [])
    return LegInfo(
        id=0,
        origin=origin,
        destination=destination,
        mode=mode,
        distance_km=distance_km,
        duration_h=duration_h,
        cost_per_teu=round(float(cost), 2),
        co2_kg_per_teu=round(float(co2), 2),
        coords=coords,
        departures=parse_departures(departures),
    )


def read_legs(path: Path, nodes: Mapping[str, NodeInfo]) -> list[LegInfo]:
    return _read_legs(path, nodes)[0]


def _read_legs(path: Path, nodes: Mapping[str, NodeInfo]) -> tuple[list[LegInfo], dict[int, str]]:
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    modes = data["modes"]
    missing = {m.value for m in Mode} - set(modes)
    if missing:
        raise ReferenceDataError(f"{path.name}: no [modes.X] defaults for {sorted(missing)}")
    legs: list[LegInfo] = []
    sources: list[str] = []
    for index, spec in enumerate(data.get("leg", [])):
        try:
            legs.append(_leg(index, spec, modes, nodes, reverse=False))
            sources.append(spec.get("source", ""))
            if spec.get("both_ways", True):
                legs.append(_leg(index, spec, modes, nodes, reverse=True))
                sources.append(spec.get("source", ""))
        except (KeyError, ValueError) as exc:
            if isinstance(exc, ReferenceDataError):
                raise
            raise ReferenceDataError(
                f"{path.name}: leg {index} ({spec.get('origin')}→{spec.get('destination')}): {exc!r}"
            ) from exc
    numbered = [
        LegInfo(
            i,
            leg.origin,
            leg.destination,
            leg.mode,
            leg.distance_km,
            leg.duration_h,
            leg.cost_per_teu,
            leg.co2_kg_per_teu,
            leg.coords,
            leg.departures,
        )
        for i, leg in enumerate(legs, start=1)
    ]
    return numbered, dict(enumerate(sources, start=1))


@dataclass(frozen=True, slots=True)
class ReferenceData:
    """The network plus what only the database keeps: Chinese names and the source of every figure."""

    network: Network
    node_extras: dict[str, dict[str, str]]
    leg_sources: dict[int, str]


def read_reference(directory: Path) -> ReferenceData:
    nodes = read_nodes(directory / "nodes.csv")
    legs, sources = _read_legs(directory / "legs.toml", nodes)
    return ReferenceData(Network(1, nodes, tuple(legs)), node_extras(directory / "nodes.csv"), sources)


def read_reference_network(directory: Path, version: int = 1) -> Network:
    """The network described by `nodes.csv` and `legs.toml` in `directory`, legs numbered from 1."""
    nodes = read_nodes(directory / "nodes.csv")
    return Network(version=version, nodes=nodes, legs=tuple(read_legs(directory / "legs.toml", nodes)))
