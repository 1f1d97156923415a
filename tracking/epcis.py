"""GS1 EPCIS 2.0 export of a container's custody chain: an EPCISDocument (JSON-LD) of ObjectEvents in time order.

Names checked against the stored standard, repository gs1/EPCIS:
- JSON-LD-Context/epcis-context-root.jsonld: the terms `EPCISDocument`, `schemaVersion`, `creationDate`, `epcisBody`,
  `eventList`, `ObjectEvent`, `eventID`, `eventTime`, `recordTime`, `eventTimeZoneOffset`, `epcList`, `action`,
  `bizStep`, `disposition`, `readPoint`, `bizLocation`, `bizTransactionList` (`type`, `bizTransaction`);
- JSON-LD-Context/cbv-context-bizstep.jsonld and cbv-context-disposition.jsonld: the CBV 2.0 short names;
- EPCIS-JSON-Schema.json: `action` OBSERVE/ADD/DELETE, the `eventTimeZoneOffset` pattern, `readPoint` = `{id}`;
- JSON-simple-context/Example_9.6.1-ObjectEvent.jsonld: the document's shape (`type`, `schemaVersion` "2.0").

Mapping decisions:
- the box is `urn:epc:id:bic:<ISO 6346 number>`, the EPC pure identity URI of the GS1 Tag Data Standard for BIC codes;
- declared: ADD (the box joins the declaration, its business transaction), `shipping`, `container_closed` (sealed);
- transfers: OBSERVE; `arriving`, `departing`, `unpacking` (strip), `packing` (stuff), and a transship as
  `unloading` then `loading`. A transfer customs did not release directly adds a `holding` event (segregated for
  review). Disposition: released → `in_transit`; a broken or missing seal or an opened box → `container_open`;
  another reason or a move while held → `non_conformant`; awaiting the one inspection → `container_closed`;
- inspections: `inspecting`, `conformant` when cleared, `non_conformant` when refused; an e-seal tamper reading:
  `holding`, `container_open`;
- read points (and business locations, where the box stays) are the node's URI in this API,
  `<base>/api/v1/nodes/<code>`: nodes have no GLN, and that URI names the node and dereferences to it (GeoJSON);
- the declaration is the business transaction `<base>/api/v1/declarations/<id>`, of type
  `railsea:customs_declaration` (CBV 2.0 has no customs declaration type; EPCIS allows any URI there);
- times are given in the node's local time with its offset (from the node's country; UTC when unknown); RailSea's
  decision, reasons and activity ride along as `railsea:` extension fields.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, tzinfo
from enum import StrEnum
from types import MappingProxyType
from typing import Any
from zoneinfo import ZoneInfo

from tracking.clock import as_utc
from tracking.models import Container, Event
from tracking.vocab import Activity, Decision, EventType, InspectionResult, Reason

CONTEXT = "https://ref.gs1.org/standards/epcis/epcis-context.jsonld"
SCHEMA_VERSION = "2.0"
VOCABULARY = "https://railsea.example/voc/"
CUSTOMS_DECLARATION = "railsea:customs_declaration"
_NAMESPACE = uuid.UUID("6c1f3a52-9d0e-5b47-8a21-4e7f0b9c2d58")


class Action(StrEnum):
    ADD = "ADD"
    OBSERVE = "OBSERVE"
    DELETE = "DELETE"


class BizStep(StrEnum):
    """The CBV 2.0 business steps this export uses."""

    SHIPPING = "shipping"
    ARRIVING = "arriving"
    DEPARTING = "departing"
    LOADING = "loading"
    UNLOADING = "unloading"
    PACKING = "packing"
    UNPACKING = "unpacking"
    HOLDING = "holding"
    INSPECTING = "inspecting"


class Disposition(StrEnum):
    """The CBV 2.0 dispositions this export uses."""

    IN_TRANSIT = "in_transit"
    CONTAINER_CLOSED = "container_closed"
    CONTAINER_OPEN = "container_open"
    NON_CONFORMANT = "non_conformant"
    CONFORMANT = "conformant"


_OPENING_REASONS = frozenset({Reason.SEAL_BROKEN, Reason.SEAL_MISSING, Reason.UNSEALED_ACTIVITY})

# Time zones by the country of a node's code (the places of the reference network).
ZONES: MappingProxyType[str, str] = MappingProxyType(
    {
        "CN": "Asia/Shanghai",
        "HK": "Asia/Hong_Kong",
        "MO": "Asia/Macau",
        "KZ": "Asia/Almaty",
        "MN": "Asia/Ulaanbaatar",
        "RU": "Europe/Moscow",
        "BY": "Europe/Minsk",
        "PL": "Europe/Warsaw",
        "DE": "Europe/Berlin",
        "HU": "Europe/Budapest",
        "CZ": "Europe/Prague",
        "NL": "Europe/Amsterdam",
    }
)

_ACTIVITY_STEPS: MappingProxyType[str, tuple[BizStep, ...]] = MappingProxyType(
    {
        Activity.ARRIVE: (BizStep.ARRIVING,),
        Activity.DEPART: (BizStep.DEPARTING,),
        Activity.TRANSSHIP: (BizStep.UNLOADING, BizStep.LOADING),
        Activity.STRIP: (BizStep.UNPACKING,),
        Activity.STUFF: (BizStep.PACKING,),
    }
)
# Where the box stays after the step, so the step has a business location.
_STAYS = frozenset(
    {BizStep.ARRIVING, BizStep.UNLOADING, BizStep.PACKING, BizStep.UNPACKING, BizStep.HOLDING, BizStep.INSPECTING}
)


def epc(number: str) -> str:
    """The EPC pure identity URI of a container's ISO 6346 (BIC) number."""
    return f"urn:epc:id:bic:{number}"


def zone_of(node: str | None) -> tzinfo:
    name = ZONES.get((node or "")[:2])
    return ZoneInfo(name) if name else UTC


def local_time(moment: datetime, node: str | None) -> tuple[str, str]:
    """The event time in the node's local time, and that offset as `±hh:mm`."""
    text = as_utc(moment).astimezone(zone_of(node)).isoformat(timespec="milliseconds")
    return text, text[-6:]


def transfer_disposition(decision: str | None, reasons: Sequence[str]) -> Disposition:
    if decision == Decision.RELEASE:
        return Disposition.IN_TRANSIT
    if any(r in _OPENING_REASONS for r in reasons):
        return Disposition.CONTAINER_OPEN
    if decision == Decision.INSPECT:
        return Disposition.CONTAINER_CLOSED
    return Disposition.NON_CONFORMANT


def _steps(event: Event) -> list[tuple[Action, BizStep, Disposition]]:
    """The ObjectEvents one RailSea event becomes."""
    data = event.data or {}
    if event.type == EventType.DECLARED:
        return [(Action.ADD, BizStep.SHIPPING, Disposition.CONTAINER_CLOSED)]
    if event.type == EventType.TRANSFER:
        disposition = transfer_disposition(event.decision, event.reasons or ())
        steps = [(Action.OBSERVE, s, disposition) for s in _ACTIVITY_STEPS.get(str(data.get("activity")), ())]
        if event.decision in (Decision.INSPECT, Decision.REINSPECT, Decision.HOLD):
            steps.append((Action.OBSERVE, BizStep.HOLDING, disposition))
        return steps
    if event.type == EventType.INSPECTION:
        cleared = event.decision == InspectionResult.CLEARED
        return [(Action.OBSERVE, BizStep.INSPECTING, Disposition.CONFORMANT if cleared else Disposition.NON_CONFORMANT)]
    if event.type == EventType.ESEAL_TAMPER:
        return [(Action.OBSERVE, BizStep.HOLDING, Disposition.CONTAINER_OPEN)]
    return []


def _extensions(event: Event) -> dict[str, Any]:
    data = event.data or {}
    out: dict[str, Any] = {"railsea:eventType": event.type}
    if data.get("activity"):
        out["railsea:activity"] = data["activity"]
    if event.decision is not None:
        out["railsea:decision"] = event.decision
        out["railsea:reasons"] = list(event.reasons or [])
    if data.get("status"):
        out["railsea:status"] = data["status"]
    return out


def document(container: Container, events: Sequence[Event], *, base_url: str, now: datetime) -> dict[str, Any]:
    """The container's EPCISDocument; `base_url` is where this API is served (for read point and transaction URIs)."""
    base = base_url.rstrip("/")
    declaration = container.declaration
    transaction = {"type": CUSTOMS_DECLARATION, "bizTransaction": f"{base}/api/v1/declarations/{declaration.id}"}
    event_list: list[dict[str, Any]] = []
    for event in events:
        when, offset = local_time(event.event_time, event.node)
        for index, (action, step, disposition) in enumerate(_steps(event)):
            item: dict[str, Any] = {
                "type": "ObjectEvent",
                "eventID": f"urn:uuid:{uuid.uuid5(_NAMESPACE, f'{event.hash}/{index}')}",
                "eventTime": when,
                "eventTimeZoneOffset": offset,
                "recordTime": as_utc(event.recorded_at).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
                "epcList": [epc(container.number)],
                "action": str(action),
                "bizStep": str(step),
                "disposition": str(disposition),
            }
            if event.node:
                item["readPoint"] = {"id": f"{base}/api/v1/nodes/{event.node}"}
                if step in _STAYS:
                    item["bizLocation"] = {"id": f"{base}/api/v1/nodes/{event.node}"}
            item["bizTransactionList"] = [dict(transaction)]
            item.update(_extensions(event))
            event_list.append(item)
    return {
        "@context": [CONTEXT, {"railsea": VOCABULARY}],
        "type": "EPCISDocument",
        "schemaVersion": SCHEMA_VERSION,
        "creationDate": as_utc(now).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "epcisBody": {"eventList": event_list},
    }
