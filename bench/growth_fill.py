"""Fill a migrated PostGIS database with about two years of customs history, streamed with COPY.

What is written, consistent with the schema and the rules of DESIGN.md §1:
- parties (Zipf-sized forwarders; `BENCH`, the party the growth benchmark measures as, is one of the big ones) and
  their keys (a forwarder key per party, an operator key per node, a supervisor key per customs office);
- declarations over real itineraries planned on the reference network (import, transit, some export), with their
  stops; containers (box numbers reused across declarations, never twice on open declarations), their seals
  (bolt, cable, e-lock) and devices;
- events: `declared`, transfers (depart, arrive, transship) decided as the rules would (release; inspect at the
  inspection node; reinspect with an alert when a seal is broken, missing or replaced), inspections (cleared or
  refused) and their `inspection` events; each container's evidence chain is real (RFC 8785 records, SHA-256 links);
- alerts for the re-inspections (resolved by the inspection, or open when it is still to come), inspections;
- e-seal readings along the legs' geometry while the box travels; recent idempotency records (last 48 hours).

Rows come out in time order (ids grow with the time they were recorded, as in production), timestamps spread over
`YEARS` before now; containers whose trip has not ended by now are left open in the state their last event gave.
The tables' keys, foreign keys and indexes are dropped for the load and rebuilt afterwards from the same definitions,
then the database is vacuumed and analysed.
"""

from __future__ import annotations

import hashlib
import heapq
import itertools
import math
import random
import time
from bisect import bisect_right
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg import sql
from sqlalchemy import create_engine, make_url, select
from sqlalchemy.orm import Session

from routing.cache import planners
from routing.errors import DomainError
from routing.models import Node
from routing.network import customs_territory
from routing.vocab import NodeKind
from tracking.access import hash_token
from tracking.iso6346 import check_digit
from tracking.vocab import (
    ALERT_SEVERITY,
    AlertKind,
    ContainerStatus,
    Decision,
    Direction,
    EventType,
    InspectionResult,
    Reason,
    Role,
)

YEARS = 2.0
DAY = 86_400.0
HOUR = 3_600.0
BENCH_PARTY = "BENCH"
# Tables the fill streams into: their indexes and constraints are rebuilt after the load.
BIG_TABLES = (
    "declarations",
    "declaration_stops",
    "containers",
    "seals",
    "events",
    "inspections",
    "alerts",
    "devices",
    "readings",
    "idempotency_records",
)
# Owner codes of the filler's boxes (the benchmark's own boxes use another one).
OWNERS = ("MSKU", "CSQU", "OOLU", "CMAU", "TGHU", "HLXU", "EGHU", "TCNU", "BMOU", "SEGU", "CAIU", "FCIU")
GOODS = (
    ("8471", "laptop computers"),
    ("8517", "mobile phones"),
    ("8528", "monitors"),
    ("6110", "knitted sweaters"),
    ("9403", "furniture"),
    ("8450", "washing machines"),
    ("3926", "plastic household articles"),
    ("8703", "auto parts"),
    ("0803", "bananas"),
    ("4011", "tyres"),
    ("7308", "steel structures"),
    ("9503", "toys"),
)
DIRECTION_SHARE = ((Direction.IMPORT, 0.55), (Direction.TRANSIT, 0.35), (Direction.EXPORT, 0.10))
INCIDENT_RATE = 0.03  # boxes whose seals are found changed at an intermediate node
REFUSED_RATE = 0.003
ESEAL_SHARE = 0.2  # boxes carrying an e-lock that reports by telemetry
CHUNK = 1 << 20  # bytes buffered per COPY stream before a write
VEHICLES: dict[str, Callable[[int], str]] = {
    "rail": lambda n: f'"X{8000 + n % 1000}"',
    "road": lambda n: f'"YUE-B{n:05d}"',
    "barge": lambda n: f'"ZHUJIANG-{n % 1000:03d}"',
    "sea": lambda n: f'"VOY-{n % 1000:03d}E"',
}


_DAYS: dict[int, str] = {}


def rfc(ts: float) -> str:
    """RFC 3339 in UTC, whole seconds: what `tracking.clock.rfc3339` writes, and what COPY reads."""
    day, second = divmod(int(ts), 86_400)
    date = _DAYS.get(day)
    if date is None:
        date = _DAYS[day] = datetime.fromtimestamp(day * 86_400, UTC).strftime("%Y-%m-%dT")
    hour, second = divmod(second, 3600)
    minute, second = divmod(second, 60)
    return f"{date}{hour:02d}:{minute:02d}:{second:02d}Z"


def jstr(text: str) -> str:
    """A JSON string of the filler's own text (codes, names, numbers: nothing to escape)."""
    return f'"{text}"'


_ORDER: dict[str, list[str]] = {}  # an event type's record keys, sorted: every record of a type has the same keys


def jlist(items: list[str]) -> str:
    return "[" + ",".join(jstr(i) for i in items) + "]"


@dataclass(frozen=True)
class Route:
    nodes: tuple[str, ...]
    modes: tuple[str, ...]  # one per leg
    hours: tuple[float, ...]  # running time per leg
    legs: tuple[tuple[tuple[float, float], ...], ...]  # each leg's line, (lon, lat)
    direction: Direction
    inspection_node: str
    itinerary_json: str


@dataclass(frozen=True)
class NodeInfo:
    kind: str
    office: str
    handling_h: float
    lon: float
    lat: float


@dataclass(frozen=True)
class Sizes:
    containers: int
    events: int
    readings: int


@dataclass
class Counters:
    declaration: int = 0
    container: int = 0
    seal: int = 0
    event: int = 0
    inspection: int = 0
    alert: int = 0
    reading: int = 0
    idempotency: int = 0
    seal_serial: int = 0
    readings_planned: int = 0


class Stream:
    """One COPY ... FROM STDIN on its own connection, fed with text-format lines in large chunks."""

    def __init__(self, stack: ExitStack, url: str, table: str, columns: tuple[str, ...]) -> None:
        self.conn = stack.enter_context(psycopg.connect(url))
        self.conn.execute("SET synchronous_commit = off")
        self.cursor = stack.enter_context(self.conn.cursor())
        statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
            sql.Identifier(table), sql.SQL(", ").join(map(sql.Identifier, columns))
        )
        self.copy = stack.enter_context(self.cursor.copy(statement))
        self.buffer: list[str] = []
        self.size = 0
        self.rows = 0

    def row(self, line: str) -> None:
        self.buffer.append(line)
        self.size += len(line)
        self.rows += 1
        if self.size >= CHUNK:
            self.flush()

    def flush(self) -> None:
        if self.buffer:
            self.copy.write("".join(self.buffer))
            self.buffer, self.size = [], 0


def _null(value: str | None) -> str:
    return "\\N" if value is None else value


def _bool(value: bool) -> str:
    return "t" if value else "f"


# --- the network ------------------------------------------------------------------------------------------------


def _network(url: str) -> tuple[dict[str, NodeInfo], list[Route]]:
    """The reference nodes, and a pool of itineraries planned between the places boxes start and end."""
    engine = create_engine(make_url(url).set(drivername="postgresql+psycopg"))
    from geoalchemy2.shape import to_shape

    with Session(engine) as session:
        nodes = {}
        for node in session.scalars(select(Node)):
            point = to_shape(node.geom)
            nodes[node.code] = NodeInfo(node.kind, node.customs_office, node.handling_h, point.x, point.y)  # type: ignore[attr-defined]
        planner = planners.get(session)
        ends = sorted(code for code, n in nodes.items() if n.kind != NodeKind.BORDER_CROSSING)
        routes = []
        for origin in ends:
            for destination in ends:
                if origin == destination:
                    continue
                try:
                    plans = planner.plan(origin, destination, alternatives=2)
                except (DomainError, ValueError):
                    continue
                for plan in plans:
                    if not 2 <= len(plan.nodes) <= 10 or plan.duration_h > 30 * 24:
                        continue
                    home = customs_territory(nodes[origin].office), customs_territory(nodes[destination].office)
                    # Into China: import; out of it: export (inspected at the origin); within a territory or
                    # through China between two others: transit.
                    direction = (
                        Direction.IMPORT
                        if home[0] != "CN" and home[1] == "CN"
                        else Direction.EXPORT
                        if home[0] == "CN" and home[1] != "CN"
                        else Direction.TRANSIT
                    )
                    routes.append(
                        Route(
                            nodes=tuple(plan.nodes),
                            modes=tuple(str(leg.mode) for leg in plan.legs),
                            hours=tuple(leg.duration_h for leg in plan.legs),
                            legs=tuple(tuple(leg.coords) for leg in plan.legs),
                            direction=direction,
                            inspection_node=origin if direction is Direction.EXPORT else destination,
                            itinerary_json=jlist(list(plan.nodes)),
                        )
                    )
    engine.dispose()
    return nodes, routes


# --- the simulation of one container ----------------------------------------------------------------------------


@dataclass
class Step:
    """One event of a container's life before it is chained: what happened, where, when, and what it decided."""

    type: str
    node: str
    at: float
    delay: float = 0.0  # from the event to its upload (recorded_at)
    activity: str | None = None
    decision: str | None = None
    reasons: tuple[str, ...] = ()
    data: dict[str, str] = field(default_factory=dict)  # key → JSON value, merged into the record
    status: str = ""  # the box's status after this event
    alert: str | None = None  # the alert's kind and detail (without the event id) for a re-inspection
    inspection: tuple[int, str, str | None] | None = None  # (id, inspected_by, seal applied) of an inspection


@dataclass
class Life:
    steps: list[Step]
    status: str
    location: str | None
    located_since: float | None
    last_event_time: float | None
    seals_replaced: list[tuple[str, int, float]]  # (seal, inspection id, when)


def _position(route: Route, k: int, fraction: float) -> tuple[float, float]:
    """A point `fraction` of the way along leg `k` (by vertex count, a fair proxy for length)."""
    line = route.legs[k]
    if len(line) == 1:
        return line[0]
    x = min(max(fraction, 0.0), 1.0) * (len(line) - 1)
    i = min(int(x), len(line) - 2)
    f = x - i
    (lon1, lat1), (lon2, lat2) = line[i], line[i + 1]
    return lon1 + (lon2 - lon1) * f, lat1 + (lat2 - lat1) * f


def _seals_json(read: list[tuple[str, str]]) -> str:
    return "[" + ",".join(f'{{"condition":"{c}","number":"{s}"}}' for s, c in read) + "]"


class Filler:
    def __init__(self, url: str, sizes: Sizes, now: float, seed: int, progress: Callable[[str], None]) -> None:
        self.url = url
        self.sizes = sizes
        self.now = now
        self.rng = random.Random(seed)
        self.progress = progress
        self.n = Counters()
        self.nodes, routes = _network(url)
        self.routes = {d: [r for r in routes if r.direction is d] for d in Direction}
        # (recorded time, tiebreak, row without its id, alert columns or None); readings alike without alerts
        self.event_heap: list[tuple[float, int, str, tuple[str, ...] | None]] = []
        self.reading_heap: list[tuple[float, int, str]] = []
        self.tiebreak = 0
        self.pool = max(1000, sizes.containers // 4)  # distinct boxes: each is declared about four times
        self.parties: list[tuple[int, str]] = []
        self.party_cumulative: list[float] = []
        self.operator_keys: dict[str, tuple[int, str]] = {}
        self.supervisor_keys: dict[str, str] = {}
        self.forwarder_keys: dict[int, str] = {}

    # -- reference rows --

    def references(self, conn: psycopg.Connection[Any]) -> None:
        """Parties and keys (plain inserts: small tables whose constraints stay)."""
        count = max(20, self.sizes.containers // 2500)
        codes = [f"FWD{i:04d}" for i in range(1, count + 1)]
        codes[4] = BENCH_PARTY  # the fifth biggest forwarder: about 3 % of all declarations
        since = rfc(self.now - YEARS * 365 * DAY - DAY)
        total = 0.0
        with conn.cursor() as cur:
            for rank, code in enumerate(codes):
                cur.execute("INSERT INTO parties (code, created_at) VALUES (%s, %s) RETURNING id", (code, since))
                self.parties.append((int(cur.fetchone()[0]), code))  # type: ignore[index]
                total += 1 / (rank + 1)
                self.party_cumulative.append(total)
            keys: list[tuple[str, Role, int | None, list[str], list[str]]] = []
            keys += [(f"{code} forwarding desk", Role.FORWARDER, pid, [], []) for pid, code in self.parties]
            keys += [(f"{code} terminal operations", Role.OPERATOR, None, [code], []) for code in sorted(self.nodes)]
            offices = sorted({n.office for n in self.nodes.values()})
            keys += [(f"{office} customs supervisors", Role.SUPERVISOR, None, [], [office]) for office in offices]
            for name, role, pid, nodes, offices_ in keys:
                cur.execute(
                    "INSERT INTO api_keys (name, role, token_hash, prefix, party_id, nodes, offices, created_at) "
                    "VALUES (%s, %s, %s, %s, %s, %s::json, %s::json, %s) RETURNING id",
                    (
                        name,
                        str(role),
                        hash_token(f"filler {name}"),
                        "rs_filler",
                        pid,
                        jlist(nodes),
                        jlist(offices_),
                        since,
                    ),
                )
                key_id = int(cur.fetchone()[0])  # type: ignore[index]
                if role is Role.FORWARDER:
                    assert pid is not None
                    self.forwarder_keys[pid] = name
                elif role is Role.OPERATOR:
                    self.operator_keys[nodes[0]] = (key_id, name)
                else:
                    self.supervisor_keys[offices_[0]] = name
        conn.commit()

    # -- per declaration --

    def box_number(self, k: int) -> str:
        serial = k % self.pool
        body = f"{OWNERS[serial % len(OWNERS)]}{serial // len(OWNERS) + 100000:06d}"
        return f"{body}{check_digit(body)}"

    def seal_number(self, prefix: str) -> str:
        self.n.seal_serial += 1
        return f"{prefix}{self.n.seal_serial:08d}"

    def declaration(self, created: float, streams: dict[str, Stream]) -> None:
        rng = self.rng
        u = rng.random()
        direction = Direction.IMPORT if u < 0.55 else Direction.TRANSIT if u < 0.9 else Direction.EXPORT
        route = rng.choice(self.routes[direction] or self.routes[Direction.IMPORT])
        party_id, party = rng.choices(self.parties, cum_weights=self.party_cumulative)[0]
        size = 1 if rng.random() < 0.4 else rng.randint(2, 5) if rng.random() < 0.67 else rng.randint(6, 30)
        size = min(size, self.sizes.containers - self.n.container)
        self.n.declaration += 1
        declaration_id = self.n.declaration
        reference = f"{party}-{datetime.fromtimestamp(created, UTC):%Y}-{declaration_id:07d}"
        planned_h = sum(route.hours) + sum(self.nodes[c].handling_h for c in route.nodes[1:-1])
        deadline = rfc((created + planned_h * HOUR * 1.5 + 3 * DAY) // HOUR * HOUR)
        streams["declarations"].row(
            f"{declaration_id}\t{party_id}\t{reference}\t{route.direction}\t{route.nodes[0]}\t{route.nodes[-1]}\t"
            f"{route.itinerary_json}\t{route.inspection_node}\t{deadline}\t{rfc(created)}\t"
            f"{self.forwarder_keys[party_id]}\n"
        )
        for position, code in enumerate(route.nodes):
            streams["declaration_stops"].row(f"{declaration_id}\t{position}\t{code}\n")
        start = created + rng.uniform(2, 48) * HOUR  # the first move
        declared = {
            "deadline": jstr(deadline),
            "direction": jstr(str(route.direction)),
            "inspection_node": jstr(route.inspection_node),
            "itinerary": route.itinerary_json,
            "party": jstr(party),
            "port_quarantine": "false",
            "reference": jstr(reference),
        }
        for i in range(size):
            self.container(declaration_id, party_id, declared, route, created, start + i * 90, streams)

    # -- per container --

    def container(
        self,
        declaration_id: int,
        party_id: int,
        declared: dict[str, str],
        route: Route,
        created: float,
        start: float,
        streams: dict[str, Stream],
    ) -> None:
        rng, n = self.rng, self.n
        n.container += 1
        cid = n.container
        number = self.box_number(cid)
        # Seals put on at origin: a customs bolt, often a shipper's cable seal, on some boxes an e-lock.
        seals = [(self.seal_number("CN"), "bolt", "customs")]
        if rng.random() < 0.5:
            seals.append((self.seal_number("SH"), "cable", "shipper"))
        device = None
        if rng.random() < ESEAL_SHARE:
            device = f"EL{cid:09d}"
            seals.append((device, "e_lock", "carrier"))
        expected = sorted(s[0] for s in seals)

        remaining = self.sizes.containers - cid + 1
        wanted = (self.sizes.events - n.event - len(self.event_heap)) / remaining
        life = self.life(route, created, start, expected, wanted)

        created_s = rfc(created)
        still_expected = _bool(not life.seals_replaced)
        for number_, kind, source in seals:
            n.seal += 1
            streams["seals"].row(
                f"{n.seal}\t{cid}\t{number_}\t{number_}\t{kind}\t{source}\t{still_expected}\t{created_s}\tdeclaration\n"
            )
        for seal, inspection_id, at in life.seals_replaced:
            n.seal += 1
            streams["seals"].row(
                f"{n.seal}\t{cid}\t{seal}\t{seal}\tbolt\tcustoms\tt\t{rfc(at)}\tinspection:{inspection_id}\n"
            )

        # The chain: records in sequence, each hashed after the previous hash.
        declared = {**declared, "seals": "[" + ",".join(f'{{"number":"{s}"}}' for s in expected) + "]"}
        base = {"container": f'"container":"{number}"', "declaration_id": f'"declaration_id":{declaration_id}'}
        prev = ""
        for seq, step in enumerate(life.steps, start=1):
            data = declared if step.type == EventType.DECLARED else step.data
            parts = {
                **base,
                "event_time": f'"event_time":"{rfc(step.at)}"',
                "node": f'"node":"{step.node}"',
                "recorded_at": f'"recorded_at":"{rfc(step.at + step.delay)}"',
                "seq": f'"seq":{seq}',
                "type": f'"type":"{step.type}"',
            }
            if step.decision is not None:
                parts["decision"] = f'"decision":"{step.decision}"'
                parts["reasons"] = f'"reasons":{jlist(list(step.reasons))}'
            for key, value in data.items():
                parts[key] = f'"{key}":{value}'
            order = _ORDER.get(step.type)
            if order is None:
                order = _ORDER[step.type] = sorted(parts)
            record = "{" + ",".join([parts[k] for k in order]) + "}"
            digest = hashlib.sha256((prev + record).encode()).hexdigest()
            data_json = "{" + ",".join(f'"{k}":{v}' for k, v in data.items()) + "}"
            line = (
                f"{cid}\t{seq}\t{step.type}\t{step.node}\t{rfc(step.at)}\t{rfc(step.at + step.delay)}\t"
                f"{_null(step.decision)}\t{jlist(list(step.reasons))}\t{data_json}\t{record}\t{prev}\t{digest}\n"
            )
            alert = None
            if step.alert is not None:
                alert = (
                    step.alert,
                    str(cid),
                    str(party_id),
                    step.node,
                    rfc(step.at + step.delay),
                    *self.settled(life, seq),
                )
            self.tiebreak += 1
            heapq.heappush(self.event_heap, (step.at + step.delay, self.tiebreak, line, alert))
            prev = digest
            if step.inspection is not None:
                inspection_id, by, applied_seal = step.inspection
                applied = f'[{{"number":"{applied_seal}","type":"bolt"}}]' if applied_seal else "[]"
                streams["inspections"].row(
                    f"{inspection_id}\t{cid}\t{step.node}\t{step.decision}\t{applied}\t[]\t\\N\t{by}\t{rfc(step.at)}\n"
                )

        goods = rng.choice(GOODS)
        is_open = not ContainerStatus(life.status).is_final
        last = rfc(life.last_event_time) if life.last_event_time is not None else None
        since = rfc(life.located_since) if life.located_since is not None else None
        streams["containers"].row(
            f"{cid}\t{declaration_id}\t{number}\t{life.status}\t{_bool(is_open)}\tf\tf\t"
            f'{{"description":"{goods[1]}","hs_code":"{goods[0]}"}}\t{_null(life.location)}\t{_null(last)}\t'
            f"{_null(since)}\t{prev}\t{len(life.steps)}\n"
        )
        if device is not None:
            self.telemetry(cid, device, route, life.steps, created, streams)

    @staticmethod
    def settled(life: Life, seq: int) -> tuple[str, ...]:
        """How the alert raised by event `seq` stands: resolved by the next inspection, or still open."""
        for step in life.steps[seq:]:
            if step.inspection is not None:
                inspection_id, by, _ = step.inspection
                return ("resolved", rfc(step.at), by, f"settled by inspection {inspection_id} ({step.decision})")
        return ("open",)

    def life(self, route: Route, created: float, start: float, expected: list[str], wanted: float) -> Life:
        """The box's events until now and the state they leave it in. `wanted` is how many events per box the
        fill still needs on average: boxes on multi-stop itineraries are handled more often to meet it."""
        rng, nodes = self.rng, route.nodes
        seals = list(expected)
        intact = [(s, "intact") for s in seals]
        plan = [Step(str(EventType.DECLARED), nodes[0], created, status=str(ContainerStatus.DECLARED))]

        def transfer(code: str, at: float, activity: str, from_mode: str | None, to_mode: str | None) -> Step:
            mode = to_mode or from_mode
            vehicle = VEHICLES[mode](rng.randint(100, 99999)) if mode else "null"
            step = Step(
                str(EventType.TRANSFER),
                code,
                at,
                delay=self.delay(),
                activity=activity,
                decision=str(Decision.RELEASE),
                data={
                    "activity": jstr(activity),
                    "from_mode": jstr(from_mode) if from_mode else "null",
                    "recorded_by": jstr(self.operator_keys[code][1]),
                    "seals": _seals_json(intact),
                    "status": "",  # set below, once the status it leaves is known
                    "to_mode": jstr(to_mode) if to_mode else "null",
                    "vehicle": vehicle,
                },
                status=str(ContainerStatus.IN_TRANSIT),
            )
            plan.append(step)
            return step

        def inspection(code: str, at: float, seal: str | None, final: bool) -> None:
            refused = final and rng.random() < REFUSED_RATE
            result = InspectionResult.REFUSED if refused else InspectionResult.CLEARED
            status = (
                ContainerStatus.REFUSED
                if refused
                else ContainerStatus.RELEASED
                if final
                else ContainerStatus.IN_TRANSIT
            )
            self.n.inspection += 1
            by = self.supervisor_keys[self.nodes[code].office]
            plan.append(
                Step(
                    str(EventType.INSPECTION),
                    code,
                    at,
                    decision=str(result),
                    data={
                        "agencies": "[]",
                        "inspected_by": jstr(by),
                        "inspection_id": str(self.n.inspection),
                        "result": jstr(str(result)),
                        "seals_applied": jlist([seal] if seal else []),
                        "status": "",
                    },
                    status=str(status),
                    inspection=(self.n.inspection, by, seal),
                )
            )

        if route.direction is Direction.EXPORT:
            # Inspected at the origin, the exit office: checked in, inspected, released.
            gate = transfer(nodes[0], start, "arrive", None, None)
            gate.decision, gate.status = str(Decision.INSPECT), str(ContainerStatus.AWAITING_INSPECTION)
            inspection(nodes[0], start + rng.uniform(2, 36) * HOUR, None, final=True)
        else:
            middle = len(nodes) - 2
            incident_at = rng.randint(1, middle) if middle > 0 and rng.random() < INCIDENT_RATE else 0
            natural = 4 + 3 * middle + (1 if incident_at else 0)
            extras = [0] * len(nodes)
            if middle > 0:
                for _ in range(max(0, round(wanted + rng.uniform(-4, 4)) - natural)):
                    extras[rng.randint(1, middle)] += 1
            t = start
            transfer(nodes[0], t, "depart", None, route.modes[0])
            for k in range(1, len(nodes)):
                t += route.hours[k - 1] * HOUR * rng.uniform(0.9, 1.25)
                code, arriving = nodes[k], route.modes[k - 1]
                arrival = transfer(code, t, "arrive", arriving, None)
                if k == len(nodes) - 1:
                    arrival.decision = str(Decision.INSPECT)
                    arrival.status = str(ContainerStatus.AWAITING_INSPECTION)
                    inspection(code, t + rng.uniform(2, 72) * HOUR, None, final=True)
                    break
                if k == incident_at:
                    self.incident(arrival, seals)
                    t += rng.uniform(2, 24) * HOUR
                    seal = self.seal_number("CN")
                    inspection(code, t, seal, final=False)
                    seals, intact = [seal], [(seal, "intact")]
                leaving = route.modes[k]
                handling = self.nodes[code].handling_h * HOUR / (extras[k] + 2)
                for _ in range(extras[k] + 1):
                    t += handling * rng.uniform(0.5, 1.5)
                    transfer(code, t, "transship", arriving, leaving)
                t += handling + rng.uniform(0, 12) * HOUR
                transfer(code, t, "depart", None, leaving)

        # Uploads keep their order: a late one is still in before the next event happens.
        for step, after in itertools.pairwise(plan):
            step.delay = max(0.0, min(step.delay, after.at - step.at - 1))
        life = Life([], str(ContainerStatus.DECLARED), None, None, None, [])
        for step in plan:
            if step.at + step.delay > self.now:
                break
            life.status = step.status
            if "status" in step.data:
                step.data["status"] = jstr(step.status)
            if step.type == EventType.TRANSFER:
                if step.node != life.location:
                    life.located_since = step.at
                life.location, life.last_event_time = step.node, step.at
            if step.inspection is not None and step.inspection[2] is not None:
                life.seals_replaced.append((step.inspection[2], step.inspection[0], step.at))
            life.steps.append(step)
        return life

    def incident(self, arrival: Step, seals: list[str]) -> None:
        """The seals read at this arrival are not the expected ones: reinspect, hold, alert (DESIGN.md §1)."""
        u = self.rng.random()
        if u < 0.5:
            reason = Reason.SEAL_BROKEN
            read = [(s, "broken" if i == 0 else "intact") for i, s in enumerate(seals)]
            broken, missing, unexpected = [seals[0]], [], []  # type: list[str], list[str], list[str]
        elif u < 0.8:
            reason = Reason.SEAL_MISSING
            read = [(s, "intact") for s in seals[1:]]
            broken, missing, unexpected = [], [seals[0]], []
        else:
            reason = Reason.SEAL_MISMATCH
            stranger = self.seal_number("XX")
            read = [*((s, "intact") for s in seals), (stranger, "intact")]
            broken, missing, unexpected = [], [], [stranger]
        arrival.decision = str(Decision.REINSPECT)
        arrival.reasons = (str(reason),)
        arrival.status = str(ContainerStatus.HELD)
        arrival.data["seals"] = _seals_json(read)
        arrival.alert = (
            f'{reason}\t"activity":"arrive","broken":{jlist(broken)},"missing":{jlist(missing)},'
            f'"unexpected":{jlist(unexpected)}'
        )

    def delay(self) -> float:
        """Seconds from an event to its upload: usually moments, sometimes a scanner that was offline a while."""
        rng = self.rng
        return rng.uniform(1, 90) if rng.random() < 0.97 else rng.uniform(600, 2 * HOUR)

    def telemetry(
        self, cid: int, device: str, route: Route, steps: list[Step], created: float, streams: dict[str, Stream]
    ) -> None:
        """E-lock readings while the box moves: positions along the legs, spaced evenly over the trip."""
        rng, n = self.rng, self.n
        legs: list[tuple[float, float, int]] = []  # (departed, arrived, leg index) of each leg travelled
        departed: float | None = None
        for step in steps:
            if step.activity == "depart":
                departed = step.at
            elif step.activity == "arrive" and departed is not None:
                legs.append((departed, step.at, len(legs)))
                departed = None
        if departed is not None and len(legs) < len(route.legs):
            k = len(legs)
            legs.append((departed, min(self.now, departed + route.hours[k] * HOUR * 1.25), k))
        last_seen = created
        if legs:
            boxes_left = max(1.0, (self.sizes.containers - cid + 1) * ESEAL_SHARE)
            count = max(2, round((self.sizes.readings - n.readings_planned) / boxes_left * rng.uniform(0.7, 1.3)))
            first, span = legs[0][0], max(legs[-1][1] - legs[0][0], 60.0)
            starts = [leg[0] for leg in legs]
            battery, drain = rng.uniform(92, 100), rng.uniform(5, 30) / count
            for i in range(count):
                at = first + span * (i + 0.5) / count
                received = at + rng.uniform(1, 20)
                if received > self.now:
                    break
                departed, arrived, k = legs[max(0, bisect_right(starts, at) - 1)]
                if at > arrived:  # waiting at the node the leg ended at
                    lon, lat = route.legs[k][-1]
                else:
                    lon, lat = _position(route, k, (at - departed) / max(arrived - departed, 1.0))
                self.tiebreak += 1
                line = (
                    f"{cid}\t{device}\t{rfc(at)}\t{lat + rng.uniform(-2e-3, 2e-3):.5f}\t"
                    f"{lon + rng.uniform(-2e-3, 2e-3):.5f}\tt\t{battery - drain * i:.1f}\t{rfc(received)}\n"
                )
                heapq.heappush(self.reading_heap, (at, self.tiebreak, line))
                n.readings_planned += 1
                last_seen = received
        streams["devices"].row(f"{device}\t{cid}\t{rfc(last_seen)}\t1800\n")

    # -- time-ordered output --

    def drain(self, until: float, streams: dict[str, Stream]) -> None:
        """Write the events and readings recorded by `until`, numbering them in that order."""
        n, heap = self.n, self.event_heap
        events, alerts = streams["events"], streams["alerts"]
        recent = self.now - 2 * DAY
        while heap and heap[0][0] <= until:
            recorded, _, line, alert = heapq.heappop(heap)
            n.event += 1
            events.row(f"{n.event}\t{line}")
            if alert is not None:
                head, cid, party_id, node, created, state, *resolution = alert
                kind, detail = head.split("\t")
                n.alert += 1
                if state == "resolved":
                    resolved_at, by, note = resolution
                    tail = f"\\N\t\\N\t{resolved_at}\t{by}\t{note}"
                else:
                    tail = "\\N\t\\N\t\\N\t\\N\t\\N"
                alerts.row(
                    f"{n.alert}\t{kind}\t{ALERT_SEVERITY[AlertKind(kind)]}\t{cid}\t{party_id}\t{node}\t"
                    f'{self.nodes[node].office}\t{jlist([kind])}\t{{"event_id":{n.event},{detail}}}\t{state}\t'
                    f"event:{n.event}\t{created}\t{tail}\n"
                )
            if recorded > recent:
                fields = line.split("\t", 7)
                if fields[2] == EventType.TRANSFER:
                    self.idempotency(fields, recorded, streams)
        readings, heap_r = streams["readings"], self.reading_heap
        while heap_r and heap_r[0][0] <= until:
            _, _, line = heapq.heappop(heap_r)
            n.reading += 1
            readings.row(f"{n.reading}\t{line}")

    def idempotency(self, fields: list[str], recorded: float, streams: dict[str, Stream]) -> None:
        """The stored first response to a transfer sent with an Idempotency-Key (kept 48 hours)."""
        key_id, _ = self.operator_keys[fields[3]]
        self.n.idempotency += 1
        body = f'{{"id":{self.n.event},"node":"{fields[3]}","decision":"{fields[6]}"}}'
        digest = hashlib.sha256("\t".join(fields).encode()).hexdigest()
        streams["idempotency_records"].row(
            f"{self.n.idempotency}\tkey:{key_id}\tscan-{fields[0]}-{fields[1]}\t{digest}\t201\t{body}\t{rfc(recorded)}\n"
        )

    # -- the whole run --

    def run(self) -> dict[str, int]:
        with psycopg.connect(self.url) as conn:
            self.references(conn)
        begin, span = self.now - YEARS * 365 * DAY, YEARS * 365 * DAY - 2 * HOUR
        # Declarations come evenly over the years, at random moments: about 5 boxes each.
        gap = span * 5 / self.sizes.containers
        started = time.monotonic()
        every = max(10_000, self.sizes.containers // 20)
        next_report = every
        with ExitStack() as stack:
            streams = {table: Stream(stack, self.url, table, columns) for table, columns in COLUMNS.items()}
            created = begin
            while self.n.container < self.sizes.containers:
                due = begin + span * self.n.container / self.sizes.containers
                created = max(created + 1, due + self.rng.uniform(0, gap))
                self.declaration(created, streams)
                self.drain(created, streams)
                if self.n.container >= next_report:
                    next_report += every
                    elapsed = time.monotonic() - started
                    share = self.n.container / self.sizes.containers
                    self.progress(
                        f"  {self.n.container:>10,} containers {self.n.event:>12,} events "
                        f"{self.n.reading:>12,} readings  {elapsed:6.0f} s  (about {elapsed / share - elapsed:.0f} s "
                        "to go)"
                    )
            self.drain(math.inf, streams)
            for stream in streams.values():
                stream.flush()
            # leaving the stack ends each COPY and commits its connection
            return {table: stream.rows for table, stream in streams.items()}


COLUMNS: dict[str, tuple[str, ...]] = {
    "declarations": (
        "id", "party_id", "reference", "direction", "origin", "destination", "itinerary", "inspection_node",
        "deadline", "created_at", "created_by",
    ),
    "declaration_stops": ("declaration_id", "position", "node"),
    "containers": (
        "id", "declaration_id", "number", "status", "is_open", "port_quarantine", "quarantine_cleared", "goods",
        "location", "last_event_time", "located_since", "evidence_head", "evidence_length",
    ),
    "seals": ("id", "container_id", "number", "normalised", "type", "source", "expected", "applied_at", "applied_by"),
    "events": (
        "id", "container_id", "seq", "type", "node", "event_time", "recorded_at", "decision", "reasons", "data",
        "record", "prev_hash", "hash",
    ),
    "inspections": (
        "id", "container_id", "node", "result", "seals_applied", "agencies", "remarks", "inspected_by", "created_at",
    ),
    "alerts": (
        "id", "kind", "severity", "container_id", "party_id", "node", "office", "reasons", "detail", "status",
        "dedupe_key", "created_at", "acknowledged_at", "acknowledged_by", "resolved_at", "resolved_by",
        "resolution_note",
    ),
    "devices": ("id", "container_id", "last_seen_at", "silent_after_s"),
    "readings": ("id", "container_id", "device", "time", "lat", "lon", "sealed", "battery_pct", "received_at"),
    "idempotency_records": ("id", "caller", "key", "request_hash", "status", "body", "created_at"),
}  # fmt: skip


# --- indexes and constraints ------------------------------------------------------------------------------------


@dataclass
class Schema:
    """The definitions of what the load drops: rebuilt after it, in dependency order."""

    keys: list[tuple[str, str, str]] = field(default_factory=list)  # primary and unique: table, name, definition
    indexes: list[str] = field(default_factory=list)
    foreign: list[tuple[str, str, str]] = field(default_factory=list)


def drop_schema_extras(conn: psycopg.Connection[Any]) -> Schema:
    schema = Schema()
    tables = list(BIG_TABLES)
    with conn.cursor() as cur:
        cur.execute(
            "SELECT c.conrelid::regclass::text, c.conname, pg_get_constraintdef(c.oid), c.contype "
            "FROM pg_constraint c WHERE c.contype IN ('p', 'u', 'f') "
            "AND (c.conrelid::regclass::text = ANY(%s) OR c.confrelid::regclass::text = ANY(%s)) "
            "ORDER BY c.contype, c.conname",
            (tables, tables),
        )
        constraints = cur.fetchall()
        cur.execute(
            "SELECT i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid) FROM pg_index i "
            "WHERE i.indrelid::regclass::text = ANY(%s) "
            "AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)",
            (tables,),
        )
        indexes = cur.fetchall()
        for table, name, definition, kind in constraints:  # foreign keys first ('f' < 'p' < 'u')
            (schema.foreign if kind == "f" else schema.keys).append((table, name, definition))
            cur.execute(
                sql.SQL("ALTER TABLE {} DROP CONSTRAINT {}").format(sql.Identifier(table), sql.Identifier(name))
            )
        for name, definition in indexes:
            schema.indexes.append(definition)
            cur.execute(sql.SQL("DROP INDEX {}").format(sql.Identifier(name)))
    conn.commit()
    return schema


def restore_schema_extras(url: str, schema: Schema, progress: Callable[[str], None]) -> None:
    """Primary and unique keys, then the other indexes, then the foreign keys (validated against the rows)."""

    def constraint(table: str, name: str, definition: str) -> tuple[str, sql.Composed]:
        statement = sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} {}").format(
            sql.Identifier(table), sql.Identifier(name), sql.SQL(definition)
        )
        return name, statement

    steps: list[tuple[str, sql.SQL | sql.Composed]] = [constraint(*key) for key in schema.keys]
    steps += [(definition.split(" ON ")[0].split()[-1], sql.SQL(definition)) for definition in schema.indexes]
    steps += [constraint(*key) for key in schema.foreign]
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SET maintenance_work_mem = '1GB'")
        conn.execute("SET work_mem = '256MB'")
        for name, statement in steps:
            started = time.monotonic()
            conn.execute(statement)
            progress(f"  {name:<48} {time.monotonic() - started:6.1f} s")


def set_sequences(conn: psycopg.Connection[Any]) -> None:
    with conn.cursor() as cur:
        for table in (*BIG_TABLES, "parties", "api_keys"):
            if table in ("declaration_stops", "devices"):  # no serial id
                continue
            cur.execute(
                sql.SQL("SELECT pg_get_serial_sequence({}, 'id')").format(sql.Literal(table)),
            )
            row = cur.fetchone()
            if row is None or row[0] is None:
                continue
            cur.execute(
                sql.SQL("SELECT setval({}, coalesce((SELECT max(id) FROM {}), 0) + 1, false)").format(
                    sql.Literal(row[0]), sql.Identifier(table)
                )
            )
    conn.commit()


@contextmanager
def _timed(progress: Callable[[str], None], what: str, phases: dict[str, float]) -> Iterator[None]:
    started = time.monotonic()
    progress(f"{what} ...")
    yield
    phases[what] = time.monotonic() - started
    progress(f"{what}: {phases[what]:.0f} s")


def fill(
    url: str, sizes: Sizes, *, seed: int = 7, progress: Callable[[str], None] = print
) -> tuple[dict[str, int], dict[str, float]]:
    """Stream the history into the migrated database at `url` (a psycopg URL) and rebuild its indexes; returns the
    rows written per table and the seconds each phase took."""
    now = time.time()
    phases: dict[str, float] = {}
    with psycopg.connect(url) as conn:
        schema = drop_schema_extras(conn)
    with _timed(progress, "COPY of generated rows", phases):
        rows = Filler(url, sizes, now, seed, progress).run()
    with psycopg.connect(url) as conn:
        set_sequences(conn)
    with _timed(progress, "indexes and constraints", phases):
        restore_schema_extras(url, schema, progress)
    with _timed(progress, "VACUUM (ANALYZE), CHECKPOINT", phases), psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SET maintenance_work_mem = '1GB'")
        conn.execute("VACUUM (ANALYZE)")
        conn.execute("CHECKPOINT")  # so the measurements do not pay for writing the fill out
    return rows, phases
