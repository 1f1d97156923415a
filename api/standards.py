"""The industry's formats and the clearance figures: DCSA T&T v3 events, EPCIS 2.0 documents, ETAs, analytics."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import marshmallow as ma
from flask import Response, current_app, request
from flask_smorest import Blueprint
from marshmallow import validate

from api.auth import principal, roles
from api.extensions import db
from api.fields import NodeCode, Text
from tracking import analytics, dcsa, epcis, eta
from tracking import containers as boxes
from tracking.access import Principal
from tracking.clock import rfc3339, utcnow
from tracking.vocab import Role

blp = Blueprint("standards", __name__, url_prefix="/api/v1", description="DCSA, EPCIS, ETA and clearance analytics")

_OPS = ("gte", "gt", "lte", "lt", "eq")


def caller() -> Principal:
    who = principal()
    assert who is not None
    return who


class CodeList(ma.fields.String):
    """A comma-separated list of codes (`eventTypes=EQUIPMENT,TRANSPORT`), each one of `choices`."""

    def __init__(self, choices: type, **kwargs: Any) -> None:
        self.choices = [str(c) for c in choices]  # type: ignore[attr-defined]
        kwargs.setdefault("metadata", {})["description"] = "comma-separated: " + ", ".join(self.choices)
        super().__init__(load_default=None, **kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> frozenset[str]:  # type: ignore[override]
        text = super()._deserialize(value, attr, data, **kwargs)
        codes = frozenset(part.strip() for part in text.split(",") if part.strip())
        unknown = sorted(codes - set(self.choices))
        if unknown:
            raise ma.ValidationError(f"unknown codes {', '.join(unknown)}; one of {', '.join(self.choices)}")
        return codes


# Times and days outside these cannot be shifted to UTC or a day on without overflowing.
_EARLIEST, _LATEST = datetime(1970, 1, 1, tzinfo=UTC), datetime(9000, 1, 1, tzinfo=UTC)
_DAYS = validate.Range(min=_EARLIEST.date(), max=_LATEST.date())


def _times(name: str) -> dict[str, ma.fields.Field]:
    def field(key: str) -> ma.fields.Field:
        return ma.fields.AwareDateTime(
            format="iso", data_key=key, load_default=None, validate=validate.Range(min=_EARLIEST, max=_LATEST)
        )

    fields = {f"{name}_eq_plain": field(name)}
    fields.update({f"{name}_{op}": field(f"{name}:{op}") for op in _OPS})
    return fields


DcsaQuery = ma.Schema.from_dict(
    {
        "equipmentReference": Text(max_length=20, load_default=None),
        "eventTypes": CodeList(dcsa.DcsaEventType),
        # T&T v2's name of the filter, still accepted.
        "eventType": CodeList(dcsa.DcsaEventType),
        "equipmentEventTypeCodes": CodeList(dcsa.EquipmentCode),
        "transportEventTypeCodes": CodeList(dcsa.TransportCode),
        "UNLocationCode": ma.fields.String(load_default=None, validate=validate.Regexp(r"^[A-Z]{2}[A-Z2-9]{3}$")),
        **_times("eventCreatedDateTime"),
        **_times("eventDateTime"),
        "limit": ma.fields.Integer(load_default=dcsa.DEFAULT_LIMIT, validate=validate.Range(min=1, max=dcsa.MAX_LIMIT)),
        "cursor": Text(max_length=200, load_default=None),
    },
    name="DcsaQuery",
)


class DcsaEvent(ma.Schema):
    metadata = ma.fields.Dict(required=True, metadata={"description": "eventID, eventCreatedDateTime, eventType, ..."})
    payload = ma.fields.Dict(required=True, metadata={"description": "the EQUIPMENT or TRANSPORT payload"})


def _comparisons(args: dict[str, Any], name: str) -> tuple[dcsa.Comparison, ...]:
    found: list[dcsa.Comparison] = []
    if args.get(f"{name}_eq_plain") is not None:
        found.append(("eq", args[f"{name}_eq_plain"]))
    found.extend((op, args[f"{name}_{op}"]) for op in _OPS if args.get(f"{name}_{op}") is not None)
    return tuple(found)


def _publisher() -> dcsa.Publisher:
    config = current_app.config
    default = dcsa.Publisher()
    return dcsa.Publisher(
        party_name=str(config.get("DCSA_PUBLISHER_NAME") or default.party_name),
        carrier_code=str(config.get("DCSA_CARRIER_CODE") or default.carrier_code),
        code_list_provider=str(config.get("DCSA_CARRIER_CODE_LIST_PROVIDER") or default.code_list_provider),
    )


@blp.route("/dcsa/v3/events", methods=["GET"])
@roles()
@blp.arguments(DcsaQuery, location="query")
@blp.response(200, DcsaEvent(many=True))
def dcsa_events(args: dict[str, Any]) -> Any:
    """DCSA Track & Trace v3 events of the containers in the caller's scope, in the order they were created"""
    filters = dcsa.Filters(
        equipment_reference=args["equipmentReference"],
        event_types=(args["eventTypes"] or frozenset()) | (args["eventType"] or frozenset()),
        equipment_codes=args["equipmentEventTypeCodes"] or frozenset(),
        transport_codes=args["transportEventTypeCodes"] or frozenset(),
        un_location=args["UNLocationCode"],
        created=_comparisons(args, "eventCreatedDateTime"),
        happened=_comparisons(args, "eventDateTime"),
    )
    page = dcsa.feed(db.session, caller(), filters, limit=args["limit"], cursor=args["cursor"], publisher=_publisher())
    headers = {"API-Version": dcsa.API_VERSION}
    if page.next_cursor:
        query = [(k, v) for k, v in request.args.items(multi=True) if k != "cursor"] + [("cursor", page.next_cursor)]
        headers["Next-Page"] = f"{request.base_url}?{urlencode(query, safe=':,')}"
    return page.items, headers


class EpcisDocument(ma.Schema):
    context = ma.fields.Raw(required=True, data_key="@context", attribute="@context")
    type = ma.fields.Constant("EPCISDocument", required=True)
    schemaVersion = ma.fields.String(required=True)
    creationDate = ma.fields.String(required=True)
    epcisBody = ma.fields.Dict(required=True, metadata={"description": "{eventList: [ObjectEvent]}"})


@blp.route("/containers/<number>/epcis", methods=["GET"])
@roles()
@blp.response(200, EpcisDocument)
@blp.alt_response(404, response="NOT_FOUND")
def container_epcis(number: str) -> Any:
    """The container's custody chain as a GS1 EPCIS 2.0 document (JSON-LD) of ObjectEvents in time order"""
    session = db.session
    box = boxes.get_container(session, caller(), number)
    body = epcis.document(box, boxes.timeline(session, box), base_url=request.url_root, now=utcnow())
    return body, {"GS1-EPCIS-Version": "2.0.0", "GS1-CBV-Version": "2.0.0"}


class EtaStop(ma.Schema):
    node = ma.fields.String(required=True)
    eta = ma.fields.String(required=True, allow_none=True)
    planned = ma.fields.String(required=True, allow_none=True)
    mode = ma.fields.String(required=True, allow_none=True)


class EtaOut(ma.Schema):
    container = ma.fields.String(required=True)
    status = ma.fields.String(required=True)
    delay_h = ma.fields.Float(
        required=True, allow_none=True, metadata={"description": "late (positive) or early at the last node reached"}
    )
    based_on = ma.fields.String(required=True, allow_none=True, metadata={"description": "time of the last transfer"})
    stops = ma.fields.List(ma.fields.Nested(EtaStop), required=True)


def _iso(moment: datetime | None) -> str | None:
    return rfc3339(moment) if moment is not None else None


@blp.route("/containers/<number>/eta", methods=["GET"])
@roles()
@blp.response(200, EtaOut)
@blp.alt_response(404, response="NOT_FOUND")
def container_eta(number: str) -> dict[str, Any]:
    """Expected arrival at each itinerary node still ahead, and the delay observed so far"""
    session = db.session
    box = boxes.get_container(session, caller(), number)
    estimate = eta.container_estimate(session, box)
    planned = {stop.node: stop.eta for stop in estimate.planned}
    return {
        "container": box.number,
        "status": box.status,
        "delay_h": estimate.delay_h,
        "based_on": _iso(estimate.basis),
        "stops": [
            {
                "node": stop.node,
                "eta": _iso(stop.eta),
                "planned": _iso(planned.get(stop.node)),
                "mode": str(stop.mode) if stop.mode else None,
            }
            for stop in estimate.stops
        ],
    }


class ClearanceQuery(ma.Schema):
    node = NodeCode(load_default=None)
    start = ma.fields.Date(data_key="from", load_default=None, validate=_DAYS)
    end = ma.fields.Date(data_key="to", load_default=None, validate=_DAYS)
    format = ma.fields.String(load_default=None, validate=validate.OneOf(["json", "csv"]))


class Spread(ma.Schema):
    count = ma.fields.Integer(required=True)
    p50 = ma.fields.Float(required=True, allow_none=True)
    p90 = ma.fields.Float(required=True, allow_none=True)


class ClearanceFigures(ma.Schema):
    node = ma.fields.String(required=True)
    day = ma.fields.String(metadata={"description": "UTC day; absent in totals"})
    transfers = ma.fields.Integer(required=True)
    released_directly = ma.fields.Integer(required=True)
    direct_release_share = ma.fields.Float(required=True, allow_none=True)
    reinspections = ma.fields.Integer(required=True)
    reinspections_by_reason = ma.fields.Dict(keys=ma.fields.String(), values=ma.fields.Integer(), required=True)
    dwell_h = ma.fields.Nested(Spread, required=True)
    clearance_h = ma.fields.Nested(Spread, required=True)


class ClearanceOut(ma.Schema):
    start = ma.fields.String(required=True, data_key="from", attribute="from")
    end = ma.fields.String(required=True, data_key="to", attribute="to")
    items = ma.fields.List(ma.fields.Nested(ClearanceFigures), required=True)
    totals = ma.fields.List(ma.fields.Nested(ClearanceFigures), required=True)


@blp.route("/analytics/clearance", methods=["GET"])
@roles(Role.SUPERVISOR, Role.ADMIN)
@blp.arguments(ClearanceQuery, location="query", as_kwargs=True)
@blp.response(200, ClearanceOut)
@blp.doc(
    responses={
        "200": {
            "description": "The figures; `format=csv` (or `Accept: text/csv`) downloads them as CSV",
            "content": {"application/json": {"schema": ClearanceOut}, "text/csv": {"schema": {"type": "string"}}},
        }
    }
)
@blp.alt_response(403, response="FORBIDDEN")
@blp.alt_response(404, response="NOT_FOUND")
def clearance(node: str | None, start: Any, end: Any, format: str | None) -> Any:
    """Clearance times per node and day: dwell, arrival to release, direct releases, re-inspections (JSON or CSV)"""
    report = analytics.clearance(db.session, caller(), node=node, start=start, end=end, today=utcnow().date())
    wants_csv = format == "csv" or (
        format is None and request.accept_mimetypes.best_match(["application/json", "text/csv"]) == "text/csv"
    )
    if wants_csv:
        name = f"clearance-{report.start.isoformat()}-{report.end.isoformat()}.csv"
        return Response(
            analytics.to_csv(report),
            mimetype="text/csv",
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )
    return report.as_dict()
