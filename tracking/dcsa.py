"""DCSA Track & Trace v3 events (EQUIPMENT and TRANSPORT; ACT, PLN, EST) from RailSea's container events.

Field names and codes follow the stored DCSA OpenAPI, repository dcsaorg/DCSA-OpenAPI:
- tnt/v3/tnt_v3.0.0-Beta-1.yaml: `GET /v3/events` returns an array ordered by `eventCreatedDateTime`; filters
  `eventTypes`, `equipmentEventTypeCodes`, `transportEventTypeCodes`, `equipmentReference`, `UNLocationCode`,
  `eventCreatedDateTime` and `eventDateTime` with `:gte :gt :lte :lt :eq`, `limit`; headers `API-Version`, `Next-Page`;
- domain/event/event_domain_v3.1.0.yaml: an event is `{metadata: {eventID, eventCreatedDateTime, eventType,
  publisher, publisherRole}, payload}`; the equipment payload (`eventClassifierCode` ACT/PLN/EST, `eventDateTime`,
  `equipmentEventTypeCode`, `equipmentReference`, `emptyIndicatorCode`, `isTransshipmentMove`, `eventLocation` or
  `transportCall`, `facilityTypeCode`, `relatedDocumentReferences`, `references`, `seals`); the transport payload
  (`transportEventTypeCode` ARRI/DEPA, `transportCall`); `transportCall` (`transportCallReference`, `location`,
  `facilityTypeCode`, `modeOfTransport` VESSEL/BARGE/RAIL/TRUCK with that mode's fields);
- domain/documentation/documentation_domain_v2.1.0.yaml: `seal` = `{number, source, type}`;
- domain/location/dcsa_location_v3.0.0.yaml: `unLocationLocation` = `{locationType: UNLO, locationName,
  UNLocationCode}`;
- domain/dcsa/dcsa_domain_v3.0.0.yaml: `emptyIndicatorCode`, `sealSource` (CAR SHI PHY VET CUS), `sealType`
  (KLP BLT WIR), the `UNLocationCode` pattern, `limit` (default 100), `Next-Page`.

Mapping decisions (RailSea → DCSA):
- transfer `arrive` by sea/barge/rail: TRANSPORT ARRI + EQUIPMENT DISC; by road (or mode unknown): GTIN.
  `depart` by sea/barge/rail: EQUIPMENT LOAD + TRANSPORT DEPA; by road (or unknown): GTOT. `transship`: DISC (GTIN by
  road) from the arriving mode and LOAD (GTOT by road) onto the leaving one, `isTransshipmentMove` true. `strip`:
  STRP, `stuff`: STUF, located by `eventLocation` as the spec says for stuffing and stripping.
- customs: a transfer decided `inspect` or `reinspect` adds CUSI (selected for inspection); an inspection gives INSP,
  RSEA when it applied seals, and CUSR when it cleared the box. All three are `equipmentEventTypeCode`s in v3
  (event domain 3.1.0). A direct release at a transfer point is not a customs event (nothing was selected), a refusal
  has no DCSA code, and an e-seal tamper reading has no T&T v3 event type (IoT `DRO` is outside T&T v3): none is sent.
- ACT for what happened; the declaration's plan gives PLN arrivals (TRANSPORT ARRI) at every itinerary node after the
  origin, created with the declaration; the latest event of a box under customs control gives EST arrivals at the
  nodes still ahead (tracking/eta.py), created with that event, so a poller sees a new estimate after every event.
- locations: UN/LOCODE of the node (its code's first five characters: `CNGGZ-DLG` → `CNGGZ`), the node's name as
  `locationName`; the full node code is in `transportCallReference`. Facility type by node kind (seaport and river
  port POTE, dry port INTE, rail terminal RAMP, depot DEPO); border crossings carry none, because the stored
  transportCall enum lists `BOCR` while its description and the DCSA domain say `BORD`.
- seals: those read intact at the transfer (broken or missing seals are no longer on the box), with type and source
  from the declaration or inspection that applied them; e-locks have no DCSA type and carry none.
- `relatedDocumentReferences`: the declaration as CUC (customs clearance); transport events name the box in
  `references` as EQ, since a transport payload has no `equipmentReference`. `emptyIndicatorCode` is LADEN.
- `publisherRole` is VSP (visibility service provider); `publisher` comes from the configuration.
"""

from __future__ import annotations

import base64
import binascii
import operator
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from types import MappingProxyType
from typing import Any

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

from routing.cache import planners
from routing.errors import InvalidError
from routing.network import NodeInfo
from routing.planner import Planner
from routing.vocab import Mode, NodeKind
from tracking import eta
from tracking.access import Principal
from tracking.clock import as_utc, rfc3339
from tracking.models import Container, Event, Seal
from tracking.scope import containers_visible
from tracking.vocab import Activity, ContainerStatus, Decision, EventType, InspectionResult, SealSource, SealType

API_VERSION = "3.0.0-Beta-1"
DEFAULT_LIMIT = 100
MAX_LIMIT = 200
_BATCH = 200
# eventIDs are UUIDv5 of the evidence hash and the mapped event, so every poll names an event the same way.
_NAMESPACE = uuid.UUID("0d5f6a8e-4b1c-5e36-9a70-2f0c8a6e7b31")


class DcsaEventType(StrEnum):
    SHIPMENT = "SHIPMENT"
    TRANSPORT = "TRANSPORT"
    EQUIPMENT = "EQUIPMENT"


class Classifier(StrEnum):
    ACTUAL = "ACT"
    PLANNED = "PLN"
    ESTIMATED = "EST"


class EquipmentCode(StrEnum):
    LOAD = "LOAD"
    DISC = "DISC"
    GTIN = "GTIN"
    GTOT = "GTOT"
    STUF = "STUF"
    STRP = "STRP"
    AVPU = "AVPU"
    PICK = "PICK"
    AVDO = "AVDO"
    DROP = "DROP"
    INSP = "INSP"
    RSEA = "RSEA"
    RMVD = "RMVD"
    CUSS = "CUSS"
    CUSI = "CUSI"
    CUSR = "CUSR"
    CROS = "CROS"


class TransportCode(StrEnum):
    ARRI = "ARRI"
    DEPA = "DEPA"


# `isTransshipmentMove` may be set with these codes only (event domain 3.1.0).
TRANSSHIPMENT_CODES = frozenset(
    {
        EquipmentCode.LOAD,
        EquipmentCode.DISC,
        EquipmentCode.GTIN,
        EquipmentCode.GTOT,
        EquipmentCode.PICK,
        EquipmentCode.DROP,
    }
)

MODE_OF_TRANSPORT: MappingProxyType[Mode, str] = MappingProxyType(
    {Mode.SEA: "VESSEL", Mode.BARGE: "BARGE", Mode.RAIL: "RAIL", Mode.ROAD: "TRUCK"}
)

FACILITY_TYPE: MappingProxyType[NodeKind, str | None] = MappingProxyType(
    {
        NodeKind.SEAPORT: "POTE",
        NodeKind.RIVER_PORT: "POTE",
        NodeKind.DRY_PORT: "INTE",
        NodeKind.RAIL_TERMINAL: "RAMP",
        NodeKind.INLAND_DEPOT: "DEPO",
        NodeKind.BORDER_CROSSING: None,
    }
)

CUSTOMS_DOCUMENT = "CUC"
EQUIPMENT_REFERENCE = "EQ"
PUBLISHER_ROLE = "VSP"


@dataclass(frozen=True, slots=True)
class Publisher:
    """Who publishes the feed (`metadata.publisher`): DCSA asks for a carrier code and its code list."""

    party_name: str = "RailSea"
    carrier_code: str = "RLSA"
    code_list_provider: str = "NMFTA"

    def as_dict(self) -> dict[str, str]:
        return {
            "partyName": self.party_name,
            "carrierCode": self.carrier_code,
            "carrierCodeListProvider": self.code_list_provider,
        }


Comparison = tuple[str, datetime]
OPERATORS: MappingProxyType[str, Callable[[Any, Any], bool]] = MappingProxyType(
    {"eq": operator.eq, "gt": operator.gt, "gte": operator.ge, "lt": operator.lt, "lte": operator.le}
)


@dataclass(frozen=True, slots=True)
class Filters:
    """The query of `GET /v3/events`; an empty set means no filter on that field."""

    equipment_reference: str | None = None
    event_types: frozenset[str] = frozenset()
    equipment_codes: frozenset[str] = frozenset()
    transport_codes: frozenset[str] = frozenset()
    un_location: str | None = None
    created: tuple[Comparison, ...] = ()
    happened: tuple[Comparison, ...] = ()

    def accepts(self, item: Mapping[str, Any]) -> bool:
        """The filters that apply to a mapped event (the others narrow the SQL query)."""
        kind = item["metadata"]["eventType"]
        payload = item["payload"]
        if self.event_types and kind not in self.event_types:
            return False
        if self.equipment_codes and payload.get("equipmentEventTypeCode") not in self.equipment_codes:
            return False
        if self.transport_codes and payload.get("transportEventTypeCode") not in self.transport_codes:
            return False
        if self.un_location and _un_location(payload) != self.un_location:
            return False
        happened = _parse_time(payload["eventDateTime"])
        return all(OPERATORS[op](happened, as_utc(value)) for op, value in self.happened)


@dataclass(frozen=True, slots=True)
class Page:
    items: list[dict[str, Any]]
    next_cursor: str | None


@dataclass
class _Context:
    """What mapping needs beyond the event itself, built once per request."""

    planner: Planner
    publisher: dict[str, str]
    estimates: dict[int, eta.Estimate] = field(default_factory=dict)
    plans: dict[int, list[eta.Stop]] = field(default_factory=dict)

    @property
    def nodes(self) -> Mapping[str, NodeInfo]:
        return self.planner.network.nodes


def _parse_time(text: str) -> datetime:
    return as_utc(datetime.fromisoformat(text.replace("Z", "+00:00")))


def _un_location(payload: Mapping[str, Any]) -> str | None:
    location = (payload.get("transportCall") or {}).get("location") or payload.get("eventLocation") or {}
    code: str | None = location.get("UNLocationCode")
    return code


def un_location_code(node: str) -> str:
    """The UN/LOCODE of a node: its code, or the city's LOCODE before a facility suffix (`CNGGZ-DLG` → `CNGGZ`)."""
    return node.split("-", 1)[0][:5]


def _event_id(*parts: object) -> str:
    return str(uuid.uuid5(_NAMESPACE, "/".join(str(p) for p in parts)))


def _location(ctx: _Context, node: str) -> dict[str, Any]:
    info = ctx.nodes.get(node)
    location: dict[str, Any] = {"locationType": "UNLO"}
    if info is not None:
        location["locationName"] = info.name[:100]
    location["UNLocationCode"] = un_location_code(node)
    return location


def _facility_type(ctx: _Context, node: str) -> str | None:
    info = ctx.nodes.get(node)
    return FACILITY_TYPE.get(info.kind) if info is not None else None


def _transport_call(ctx: _Context, node: str, mode: Mode, vehicle: str | None) -> dict[str, Any]:
    """A transportCall at `node` by `mode`; the vehicle fills the mode's own field where the spec has one."""
    dcsa_mode = MODE_OF_TRANSPORT[mode]
    call: dict[str, Any] = {
        "transportCallReference": (f"{node}:{dcsa_mode}" + (f":{vehicle}" if vehicle else ""))[:100],
        "location": _location(ctx, node),
    }
    facility = _facility_type(ctx, node)
    if facility:
        call["facilityTypeCode"] = facility
    call["modeOfTransport"] = dcsa_mode
    if vehicle:
        if mode is Mode.RAIL:
            call["railService"] = vehicle[:50]
        elif mode is Mode.ROAD and len(vehicle) <= 15:
            call["licencePlate"] = vehicle
        elif mode is Mode.BARGE:
            call["barge"] = {"name": vehicle[:35]}
        elif mode is Mode.SEA and vehicle.isdigit() and len(vehicle) == 7:
            call["vessel"] = {"vesselIMONumber": vehicle}
    return call


def _mode(value: Any) -> Mode | None:
    return Mode(value) if value in set(Mode) else None


def _seal(seal: Seal | None, number: str) -> dict[str, Any]:
    out: dict[str, Any] = {"number": seal.number if seal is not None else number}
    if seal is not None and seal.source in set(SealSource):
        out["source"] = SealSource(seal.source).dcsa_code
    if seal is not None and seal.type in set(SealType):
        code = SealType(seal.type).dcsa_code
        if code is not None:
            out["type"] = code
    return out


class _Mapper:
    """Maps one RailSea event of one container to its DCSA events."""

    def __init__(self, ctx: _Context, event: Event, container: Container) -> None:
        self.ctx, self.event, self.container = ctx, event, container
        self.declaration = container.declaration
        self.created = rfc3339(event.recorded_at)
        self.seals = {s.normalised: s for s in container.seals}

    def _metadata(self, kind: DcsaEventType, *key: object) -> dict[str, Any]:
        return {
            "eventID": _event_id(self.event.hash, kind, *key),
            "eventCreatedDateTime": self.created,
            "eventType": str(kind),
            "publisher": self.ctx.publisher,
            "publisherRole": PUBLISHER_ROLE,
        }

    def _documents(self) -> list[dict[str, str]]:
        return [{"type": CUSTOMS_DOCUMENT, "value": self.declaration.reference[:100]}]

    def equipment(
        self,
        code: EquipmentCode,
        *,
        mode: Mode | None = None,
        vehicle: str | None = None,
        transshipment: bool | None = None,
        seals: Sequence[dict[str, Any]] = (),
        node: str | None = None,
    ) -> dict[str, Any]:
        node = node or self.event.node or ""
        payload: dict[str, Any] = {
            "eventClassifierCode": str(Classifier.ACTUAL),
            "eventDateTime": rfc3339(self.event.event_time),
            "equipmentEventTypeCode": str(code),
            "equipmentReference": self.container.number,
            "emptyIndicatorCode": "LADEN",
        }
        if code in TRANSSHIPMENT_CODES:
            payload["isTransshipmentMove"] = bool(transshipment)
        if mode is not None:
            payload["transportCall"] = _transport_call(self.ctx, node, mode, vehicle)
        else:
            payload["eventLocation"] = _location(self.ctx, node)
            facility = _facility_type(self.ctx, node)
            if facility:
                payload["facilityTypeCode"] = facility
        payload["relatedDocumentReferences"] = self._documents()
        if seals:
            payload["seals"] = list(seals)
        return {"metadata": self._metadata(DcsaEventType.EQUIPMENT, code, node), "payload": payload}

    def transport(
        self,
        code: TransportCode,
        node: str,
        mode: Mode,
        *,
        vehicle: str | None = None,
        classifier: Classifier = Classifier.ACTUAL,
        when: datetime | None = None,
    ) -> dict[str, Any]:
        payload = {
            "eventClassifierCode": str(classifier),
            "eventDateTime": rfc3339(when or self.event.event_time),
            "transportEventTypeCode": str(code),
            "transportCall": _transport_call(self.ctx, node, mode, vehicle),
            "relatedDocumentReferences": self._documents(),
            "references": [{"type": EQUIPMENT_REFERENCE, "value": self.container.number}],
        }
        return {"metadata": self._metadata(DcsaEventType.TRANSPORT, classifier, code, node), "payload": payload}

    def _intact_seals(self) -> list[dict[str, Any]]:
        return [
            _seal(self.seals.get(s.get("number", "")), s.get("number", ""))
            for s in (self.event.data or {}).get("seals", [])
            if s.get("condition") == "intact"
        ]

    def _arrival(self, mode: Mode | None, vehicle: str | None, transshipment: bool, seals: Any) -> list[dict[str, Any]]:
        if mode is None or mode is Mode.ROAD:
            return [
                self.equipment(EquipmentCode.GTIN, mode=mode, vehicle=vehicle, transshipment=transshipment, seals=seals)
            ]
        node = self.event.node or ""
        out = [] if transshipment else [self.transport(TransportCode.ARRI, node, mode, vehicle=vehicle)]
        out.append(
            self.equipment(EquipmentCode.DISC, mode=mode, vehicle=vehicle, transshipment=transshipment, seals=seals)
        )
        return out

    def _departure(
        self, mode: Mode | None, vehicle: str | None, transshipment: bool, seals: Any
    ) -> list[dict[str, Any]]:
        if mode is None or mode is Mode.ROAD:
            return [
                self.equipment(EquipmentCode.GTOT, mode=mode, vehicle=vehicle, transshipment=transshipment, seals=seals)
            ]
        node = self.event.node or ""
        out = [self.equipment(EquipmentCode.LOAD, mode=mode, vehicle=vehicle, transshipment=transshipment, seals=seals)]
        if not transshipment:
            out.append(self.transport(TransportCode.DEPA, node, mode, vehicle=vehicle))
        return out

    def transfer(self) -> list[dict[str, Any]]:
        data = self.event.data or {}
        activity = data.get("activity")
        vehicle = data.get("vehicle") or None
        from_mode, to_mode = _mode(data.get("from_mode")), _mode(data.get("to_mode"))
        seals = self._intact_seals()
        out: list[dict[str, Any]] = []
        if activity == Activity.ARRIVE:
            out += self._arrival(from_mode, vehicle, False, seals)
        elif activity == Activity.DEPART:
            out += self._departure(to_mode, vehicle, False, seals)
        elif activity == Activity.TRANSSHIP:
            out += self._arrival(from_mode, None, True, seals)
            out += self._departure(to_mode, vehicle, True, seals)
        elif activity == Activity.STRIP:
            out.append(self.equipment(EquipmentCode.STRP, seals=seals))
        elif activity == Activity.STUFF:
            out.append(self.equipment(EquipmentCode.STUF, seals=seals))
        if self.event.decision in (Decision.INSPECT, Decision.REINSPECT):
            out.append(self.equipment(EquipmentCode.CUSI))
        return out

    def inspection(self) -> list[dict[str, Any]]:
        data = self.event.data or {}
        out = [self.equipment(EquipmentCode.INSP)]
        applied = [str(n) for n in data.get("seals_applied", [])]
        if applied:
            by_inspection = {
                s.normalised: s
                for s in self.container.seals
                if s.applied_by == f"inspection:{data.get('inspection_id')}"
            }
            seals = [_seal(by_inspection.get(n) or self.seals.get(n), n) for n in applied]
            out.append(self.equipment(EquipmentCode.RSEA, seals=seals))
        if self.event.decision == InspectionResult.CLEARED:
            out.append(self.equipment(EquipmentCode.CUSR))
        return out

    def predicted(self, classifier: Classifier, stops: Sequence[eta.Stop]) -> list[dict[str, Any]]:
        return [
            self.transport(TransportCode.ARRI, stop.node, stop.mode, classifier=classifier, when=stop.eta)
            for stop in stops
            if stop.eta is not None and stop.mode is not None
        ]

    def events(self) -> list[dict[str, Any]]:
        kind = self.event.type
        out: list[dict[str, Any]] = []
        if kind == EventType.TRANSFER:
            out += self.transfer()
        elif kind == EventType.INSPECTION:
            out += self.inspection()
        elif kind == EventType.DECLARED:
            out += self.predicted(Classifier.PLANNED, self.ctx.plans.get(self.declaration.id, [])[1:])
        estimate = self.ctx.estimates.get(self.event.id)
        if estimate is not None:
            out += self.predicted(Classifier.ESTIMATED, estimate.stops)
        return out


def map_events(
    session: Session, events: Sequence[tuple[Event, Container]], ctx: _Context
) -> Iterator[tuple[Event, list[dict[str, Any]]]]:
    """Each event with its DCSA events; the latest event of a box under customs control carries its estimates."""
    ids = {c.id for _, c in events}
    latest = dict(
        session.execute(
            select(Event.container_id, func.max(Event.seq))
            .where(Event.container_id.in_(ids))
            .group_by(Event.container_id)
        ).all()
    )
    for event, container in events:
        declaration = container.declaration
        if event.type == EventType.DECLARED and declaration.id not in ctx.plans:
            ctx.plans[declaration.id] = eta.planned(ctx.planner, declaration.itinerary, declaration.created_at)
        if latest.get(container.id) == event.seq and not ContainerStatus(container.status).is_final:
            ctx.estimates[event.id] = eta.estimate(
                ctx.planner,
                declaration.itinerary,
                declaration.created_at,
                eta.observations(session, container),
            )
        yield event, _Mapper(ctx, event, container).events()


def _created(op: str, value: datetime) -> ColumnElement[bool]:
    # Compared in UTC: SQLite keeps the stored UTC wall time and would ignore another offset.
    column, value = Event.recorded_at, as_utc(value)
    conditions = {
        "eq": column == value,
        "gt": column > value,
        "gte": column >= value,
        "lt": column < value,
        "lte": column <= value,
    }
    return conditions[op]


def encode_cursor(event_id: int, index: int) -> str:
    return base64.urlsafe_b64encode(f"dcsa:{event_id}:{index}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[int, int]:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        prefix, event_id, index = text.split(":")
        if prefix != "dcsa":
            raise ValueError(cursor)
        return int(event_id), int(index)
    except (ValueError, UnicodeDecodeError, binascii.Error):
        raise InvalidError("The cursor is not one this API gave out.", {"cursor": ["invalid cursor"]}) from None


def feed(
    session: Session,
    principal: Principal,
    filters: Filters,
    *,
    limit: int = DEFAULT_LIMIT,
    cursor: str | None = None,
    publisher: Publisher | None = None,
) -> Page:
    """The caller's DCSA events in the order they were created (RailSea event order), `limit` at a time."""
    start_id, skip = decode_cursor(cursor) if cursor else (0, 0)
    ctx = _Context(planners.get(session), (publisher or Publisher()).as_dict())
    query = (
        select(Event, Container)
        .join(Container, Container.id == Event.container_id)
        .where(containers_visible(principal))
        .order_by(Event.id)
        .limit(_BATCH)
    )
    if filters.equipment_reference:
        query = query.where(Container.number == filters.equipment_reference.strip().upper())
    for op, value in filters.created:
        query = query.where(_created(op, value))
    items: list[dict[str, Any]] = []
    after = start_id - 1
    while True:
        batch = [(e, c) for e, c in session.execute(query.where(Event.id > after))]
        if not batch:
            return Page(items, None)
        for event, mapped in map_events(session, batch, ctx):
            for index, item in enumerate(mapped):
                if (event.id == start_id and index < skip) or not filters.accepts(item):
                    continue
                if len(items) == limit:
                    return Page(items, encode_cursor(event.id, index))
                items.append(item)
        after = batch[-1][0].id
