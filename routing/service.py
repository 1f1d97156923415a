"""Network services over a `Session`: query, create and load nodes and legs; snapshot for the planner."""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from geoalchemy2.shape import from_shape, to_shape
from shapely.geometry import LineString, Point
from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session, aliased

from routing.errors import ConflictError, InvalidError, NotFoundError
from routing.models import Leg, NetworkVersion, Node
from routing.network import Departure, LegInfo, Network, NodeInfo, parse_departures, path_length_km
from routing.spatial import in_bbox
from routing.vocab import WGS84, Mode, NodeKind

BBox = tuple[float, float, float, float]


# --- versions -----------------------------------------------------------------------------------------------------


def network_version(session: Session) -> int:
    return session.scalar(select(NetworkVersion.version).where(NetworkVersion.id == 1)) or 0


_local_changes = 0


def local_changes() -> int:
    """How many network changes this process has made: caches that confirm the version only now and then confirm
    it again when this moved."""
    return _local_changes


def bump_version(session: Session) -> int:
    """Mark the network as changed so every process rebuilds its route graph."""
    global _local_changes
    _local_changes += 1
    if session.get(NetworkVersion, 1) is None:
        session.add(NetworkVersion(id=1, version=1))
        session.flush()
        return 1
    session.execute(update(NetworkVersion).where(NetworkVersion.id == 1).values(version=NetworkVersion.version + 1))
    return network_version(session)


def point_of(node: Node) -> Point:
    point = to_shape(node.geom)
    assert isinstance(point, Point)
    return point


# --- queries ------------------------------------------------------------------------------------------------------


def list_nodes(
    session: Session, *, kind: str | None = None, mode: str | None = None, bbox: BBox | None = None
) -> list[Node]:
    query = select(Node).order_by(Node.code)
    if kind:
        query = query.where(Node.kind == kind)
    if bbox:
        query = query.where(in_bbox(Node.geom, *bbox))
    nodes = list(session.scalars(query))
    # Modes are a short JSON list whose containment test differs per dialect; filtering here keeps one code path.
    return [n for n in nodes if mode in n.modes] if mode else nodes


def get_node(session: Session, code: str) -> Node:
    node = session.scalar(select(Node).where(Node.code == code))
    if node is None:
        raise NotFoundError(f"No node has the code {code!r}.")
    return node


def list_legs(session: Session, *, mode: str | None = None, node: str | None = None) -> list[Leg]:
    query = select(Leg).order_by(Leg.id)
    if mode:
        query = query.where(Leg.mode == mode)
    if node:
        origin, destination = aliased(Node), aliased(Node)
        query = (
            query.join(origin, Leg.origin_id == origin.id)
            .join(destination, Leg.destination_id == destination.id)
            .where(or_(origin.code == node, destination.code == node))
        )
    return list(session.scalars(query).unique())


def offices(session: Session) -> set[str]:
    return set(session.scalars(select(Node.customs_office).distinct()))


# --- writes -------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NodeInput:
    """What an admin gives to create a node."""

    code: str
    name: str
    kind: str
    lon: float
    lat: float
    modes: Sequence[str]
    customs_office: str
    name_zh: str | None = None
    handling_h: float = 6.0
    handling_cost_per_teu: float = 60.0
    seal_preserving_transfer: bool = True
    dwell_limit_h: float = 168.0
    source: str | None = None


def _node_errors(data: NodeInput) -> dict[str, list[str]]:
    errors: dict[str, list[str]] = {}
    if data.kind not in set(NodeKind):
        errors["kind"] = [f"must be one of {', '.join(NodeKind)}"]
    bad = [m for m in data.modes if m not in set(Mode)]
    if bad or not data.modes:
        errors["modes"] = [f"must be a non-empty list of {', '.join(Mode)}"]
    if not -180 <= data.lon <= 180:
        errors["lon"] = ["must be between -180 and 180"]
    if not -90 <= data.lat <= 90:
        errors["lat"] = ["must be between -90 and 90"]
    for name in ("handling_h", "handling_cost_per_teu", "dwell_limit_h"):
        if getattr(data, name) < 0:
            errors[name] = ["must not be negative"]
    return errors


def create_node(session: Session, data: NodeInput) -> Node:
    errors = _node_errors(data)
    if errors:
        raise InvalidError("The node cannot be created with these values.", errors)
    if session.scalar(select(Node.id).where(Node.code == data.code)) is not None:
        raise ConflictError(f"A node with the code {data.code!r} exists already.")
    node = Node(
        code=data.code,
        name=data.name,
        name_zh=data.name_zh,
        kind=data.kind,
        geom=from_shape(Point(data.lon, data.lat), srid=WGS84),
        modes=sorted(set(data.modes)),
        customs_office=data.customs_office,
        handling_h=data.handling_h,
        handling_cost_per_teu=data.handling_cost_per_teu,
        seal_preserving_transfer=data.seal_preserving_transfer,
        dwell_limit_h=data.dwell_limit_h,
        source=data.source,
    )
    session.add(node)
    session.flush()
    bump_version(session)
    return node


@dataclass(frozen=True, slots=True)
class LegInput:
    """What an admin gives to create a leg; without `coordinates` the leg is drawn straight."""

    origin: str
    destination: str
    mode: str
    duration_h: float
    cost_per_teu: float
    co2_kg_per_teu: float
    distance_km: float | None = None
    coordinates: Sequence[tuple[float, float]] | None = None
    departures: Sequence[str] = ()
    source: str | None = None


def create_leg(session: Session, data: LegInput) -> Leg:
    errors: dict[str, list[str]] = {}
    ends: dict[str, Node] = {}
    for name in ("origin", "destination"):
        code = getattr(data, name)
        node = session.scalar(select(Node).where(Node.code == code))
        if node is None:
            errors[name] = [f"unknown node {code}"]
        elif data.mode in set(Mode) and data.mode not in node.modes:
            errors[name] = [f"{code} does not handle {data.mode}"]
        else:
            ends[name] = node
    if data.origin == data.destination:
        errors["destination"] = ["must differ from the origin"]
    if data.mode not in set(Mode):
        errors["mode"] = [f"must be one of {', '.join(Mode)}"]
    for name in ("duration_h", "cost_per_teu", "co2_kg_per_teu"):
        if getattr(data, name) < 0:
            errors[name] = ["must not be negative"]
    if data.duration_h <= 0:
        errors["duration_h"] = ["must be positive"]
    try:
        departures = parse_departures(data.departures)
    except ValueError as exc:
        errors["departures"] = [str(exc)]
    if errors:
        raise InvalidError("The leg cannot be created with these values.", errors)
    origin, destination = ends["origin"], ends["destination"]
    start, end = point_of(origin), point_of(destination)
    coords = [(start.x, start.y), *(data.coordinates or ()), (end.x, end.y)]
    # Given coordinates may or may not repeat the end nodes; drop repeats so the line has no zero-length segment.
    coords = [c for i, c in enumerate(coords) if i == 0 or tuple(c) != tuple(coords[i - 1])]
    leg = Leg(
        origin=origin,
        destination=destination,
        mode=data.mode,
        geom=from_shape(LineString(coords), srid=WGS84),
        distance_km=data.distance_km if data.distance_km is not None else round(path_length_km(coords), 1),
        duration_h=data.duration_h,
        cost_per_teu=data.cost_per_teu,
        co2_kg_per_teu=data.co2_kg_per_teu,
        departures=[str(d) for d in departures],
        source=data.source,
    )
    session.add(leg)
    session.flush()
    bump_version(session)
    return leg


# --- the reference network ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LoadResult:
    created: int
    updated: int
    unchanged: int

    @property
    def changed(self) -> bool:
        return bool(self.created or self.updated)


def _assign(row: Any, values: Mapping[str, Any]) -> bool:
    """Set the values that differ; True when anything changed."""
    changed = False
    for name, value in values.items():
        current = getattr(row, name)
        if name == "geom":
            same = current is not None and to_shape(current).equals_exact(to_shape(value), 1e-9)
        else:
            same = current == value
        if not same:
            setattr(row, name, value)
            changed = True
    return changed


def load_network(
    session: Session,
    network: Network,
    extras: Mapping[str, Mapping[str, str]] | None = None,
    leg_sources: Mapping[int, str] | None = None,
) -> LoadResult:
    """Create or update nodes (by code) and legs (by origin, destination, mode); idempotent."""
    extras = extras or {}
    leg_sources = leg_sources or {}
    created = updated = unchanged = 0
    existing = {n.code: n for n in session.scalars(select(Node))}
    for node_info in network.nodes.values():
        values = {
            "name": node_info.name,
            "kind": str(node_info.kind),
            "modes": sorted(str(m) for m in node_info.modes),
            "geom": from_shape(Point(node_info.lon, node_info.lat), srid=WGS84),
            "customs_office": node_info.customs_office,
            "handling_h": node_info.handling_h,
            "handling_cost_per_teu": node_info.handling_cost_per_teu,
            "seal_preserving_transfer": node_info.seal_preserving_transfer,
            "dwell_limit_h": node_info.dwell_limit_h,
            "name_zh": extras.get(node_info.code, {}).get("name_zh") or None,
            "source": extras.get(node_info.code, {}).get("source") or None,
        }
        node = existing.get(node_info.code)
        if node is None:
            node = Node(code=node_info.code)
            _assign(node, values)
            session.add(node)
            existing[node_info.code] = node
            created += 1
        elif _assign(node, values):
            updated += 1
        else:
            unchanged += 1
    session.flush()
    legs = {(leg.origin.code, leg.destination.code, leg.mode): leg for leg in session.scalars(select(Leg)).unique()}
    for leg_info in network.legs:
        values = {
            "geom": from_shape(LineString(leg_info.coords), srid=WGS84),
            "distance_km": leg_info.distance_km,
            "duration_h": leg_info.duration_h,
            "cost_per_teu": leg_info.cost_per_teu,
            "co2_kg_per_teu": leg_info.co2_kg_per_teu,
            "departures": [str(d) for d in leg_info.departures],
            "source": leg_sources.get(leg_info.id),
        }
        key = (leg_info.origin, leg_info.destination, str(leg_info.mode))
        leg = legs.get(key)
        if leg is None:
            leg = Leg(
                origin=existing[leg_info.origin], destination=existing[leg_info.destination], mode=str(leg_info.mode)
            )
            _assign(leg, values)
            session.add(leg)
            legs[key] = leg
            created += 1
        elif _assign(leg, values):
            updated += 1
        else:
            unchanged += 1
    session.flush()
    result = LoadResult(created, updated, unchanged)
    if result.changed:
        bump_version(session)
    return result


# Rows read per round trip by `snapshot`.
_SNAPSHOT_BATCH = 2000


def snapshot(session: Session) -> Network:
    """The whole network as plain values, for building the planner.

    Read as plain columns a batch of rows at a time, never as ORM objects (those of 60,000 legs would hold some
    200 MB at once), and with equal values shared between legs: node codes, the points of leg lines, departures.
    """
    nodes: dict[str, NodeInfo] = {}
    codes: dict[int, str] = {}
    mode_sets: dict[tuple[str, ...], frozenset[Mode]] = {}
    node_rows = select(
        Node.id,
        Node.code,
        Node.name,
        Node.kind,
        Node.geom,
        Node.modes,
        Node.customs_office,
        Node.handling_h,
        Node.handling_cost_per_teu,
        Node.seal_preserving_transfer,
        Node.dwell_limit_h,
    ).execution_options(yield_per=_SNAPSHOT_BATCH)
    for node_id, code, name, kind, geom, modes, office, handling_h, handling_cost, seal, dwell in session.execute(
        node_rows
    ):
        point = to_shape(geom)
        assert isinstance(point, Point)
        key = tuple(modes)
        mode_set = mode_sets.get(key)
        if mode_set is None:
            mode_set = mode_sets[key] = frozenset(Mode(m) for m in modes)
        codes[node_id] = code
        nodes[code] = NodeInfo(
            code=code,
            name=name,
            kind=NodeKind(kind),
            lon=point.x,
            lat=point.y,
            modes=mode_set,
            customs_office=office,
            handling_h=handling_h,
            handling_cost_per_teu=handling_cost,
            seal_preserving_transfer=seal,
            dwell_limit_h=dwell,
        )
    points: dict[tuple[float, float], tuple[float, float]] = {}
    texts_seen: dict[str, str] = {}
    departures: dict[str, Departure] = {}
    timetables: dict[tuple[str, ...], tuple[Departure, ...]] = {}
    legs: list[LegInfo] = []
    leg_rows = (
        select(
            Leg.id,
            Leg.origin_id,
            Leg.destination_id,
            Leg.mode,
            Leg.geom,
            Leg.distance_km,
            Leg.duration_h,
            Leg.cost_per_teu,
            Leg.co2_kg_per_teu,
            Leg.departures,
        )
        .order_by(Leg.id)
        .execution_options(yield_per=_SNAPSHOT_BATCH)
    )
    for leg_id, origin_id, destination_id, mode, geom, distance, duration, cost, co2, texts in session.execute(
        leg_rows
    ):
        origin, destination = codes.get(origin_id), codes.get(destination_id)
        if origin is None or destination is None:
            continue  # a leg reaches the planner only with both its nodes
        # `parse_departures(texts)`, with equal timetables and equal departures shared between legs (and each
        # text kept once while reading).
        key = tuple(texts_seen.setdefault(text, text) for text in texts or ())
        timetable = timetables.get(key)
        if timetable is None:
            for text in key:
                if text not in departures:
                    departures[text] = Departure.parse(text)
            timetable = timetables[key] = tuple(sorted({departures[text] for text in key}))
        legs.append(
            LegInfo(
                id=leg_id,
                origin=origin,
                destination=destination,
                mode=Mode(mode),
                distance_km=distance,
                duration_h=duration,
                cost_per_teu=cost,
                co2_kg_per_teu=co2,
                coords=tuple(points.setdefault(c, c) for c in to_shape(geom).coords),  # type: ignore[arg-type]
                departures=timetable,
            )
        )
    return Network(version=network_version(session), nodes=nodes, legs=tuple(legs))


def codes_exist(session: Session, codes: Iterable[str]) -> set[str]:
    wanted = set(codes)
    return set(session.scalars(select(Node.code).where(Node.code.in_(wanted)))) if wanted else set()


def itinerary_path(session: Session, itinerary: Sequence[str]) -> list[tuple[float, float]]:
    """The line a declared itinerary follows: each hop along its shortest leg, straight where none exists."""
    origin, destination = aliased(Node), aliased(Node)
    hops = set(itertools.pairwise(itinerary))
    legs: dict[tuple[str, str], Leg] = {}
    rows = session.execute(
        select(Leg, origin.code, destination.code)
        .join(origin, Leg.origin_id == origin.id)
        .join(destination, Leg.destination_id == destination.id)
        .where(origin.code.in_(list(itinerary)), destination.code.in_(list(itinerary)))
        .order_by(Leg.distance_km)
    ).unique()
    for row_leg, a, b in rows:
        if (a, b) in hops and (a, b) not in legs:
            legs[(a, b)] = row_leg
    points = {n.code: point_of(n) for n in session.scalars(select(Node).where(Node.code.in_(list(itinerary))))}
    path: list[tuple[float, float]] = []
    for a, b in itertools.pairwise(itinerary):
        hop = legs.get((a, b))
        if hop is not None:
            coords = [(float(x), float(y)) for x, y, *_ in to_shape(hop.geom).coords]
        else:
            coords = [(points[a].x, points[a].y), (points[b].x, points[b].y)]
        path.extend(coords[1:] if path else coords)
    if not path and itinerary:
        only = points[itinerary[0]]
        path = [(only.x, only.y)]
    return path
