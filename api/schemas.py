"""Marshmallow schemas of the tracking resources (declarations, containers, transfers, inspections, alerts)."""

from __future__ import annotations

import marshmallow as ma
from marshmallow import validate

from api.fields import Flag, NodeCode, Text
from routing.vocab import Mode
from tracking.pagination import DEFAULT_LIMIT, MAX_LIMIT
from tracking.vocab import (
    Activity,
    AlertKind,
    AlertStatus,
    ContainerStatus,
    Direction,
    InspectionResult,
    SealCondition,
    SealSource,
    SealType,
)

CONTAINER_NUMBER = {"description": "ISO 6346 container number", "example": "CSQU3054383"}


def one_of(values: type) -> validate.OneOf:
    return validate.OneOf([str(v) for v in values])  # type: ignore[attr-defined]


class Paging(ma.Schema):
    limit = ma.fields.Integer(load_default=DEFAULT_LIMIT, validate=validate.Range(min=1, max=MAX_LIMIT))
    cursor = Text(max_length=200, load_default=None)


# --- declarations -------------------------------------------------------------------------------------------------


class SealIn(ma.Schema):
    number = Text(required=True, min_length=1, max_length=64)
    type = ma.fields.String(load_default=None, allow_none=True, validate=one_of(SealType))
    source = ma.fields.String(load_default=None, allow_none=True, validate=one_of(SealSource))


class Goods(ma.Schema):
    hs_code = ma.fields.String(load_default=None, allow_none=True, validate=validate.Regexp(r"^\d{4,10}$"))
    description = Text(load_default=None, allow_none=True, max_length=500)


class ContainerIn(ma.Schema):
    number = Text(required=True, min_length=1, max_length=20, metadata=CONTAINER_NUMBER)
    seals = ma.fields.List(ma.fields.Nested(SealIn), required=True, validate=validate.Length(max=20))
    goods = ma.fields.Nested(Goods, load_default=None, allow_none=True)
    port_quarantine = Flag(load_default=False)


class DeclarationIn(ma.Schema):
    reference = Text(required=True, min_length=1, max_length=64)
    direction = ma.fields.String(required=True, validate=one_of(Direction))
    origin = NodeCode(required=True)
    destination = NodeCode(required=True)
    itinerary = ma.fields.List(NodeCode(), load_default=None, allow_none=True, validate=validate.Length(max=100))
    inspection_node = NodeCode(load_default=None, allow_none=True)
    deadline = ma.fields.AwareDateTime(required=True, format="iso")
    containers = ma.fields.List(ma.fields.Nested(ContainerIn), required=True, validate=validate.Length(max=500))
    party = Text(
        load_default=None,
        allow_none=True,
        min_length=1,
        max_length=64,
        metadata={"description": "admins only: the forwarder's party the declaration is made for"},
    )


class SealOut(ma.Schema):
    number = ma.fields.String(required=True)
    type = ma.fields.String(allow_none=True)
    source = ma.fields.String(allow_none=True)


class DeclaredContainer(ma.Schema):
    number = ma.fields.String(required=True)
    status = ma.fields.String(required=True)
    seals = ma.fields.List(ma.fields.Nested(SealOut), required=True)


class DeclarationOut(ma.Schema):
    id = ma.fields.Integer(required=True)
    reference = ma.fields.String(required=True)
    party = ma.fields.String(required=True)
    direction = ma.fields.String(required=True)
    status = ma.fields.String(required=True, metadata={"description": "open while any container is under control"})
    origin = ma.fields.String(required=True)
    destination = ma.fields.String(required=True)
    itinerary = ma.fields.List(ma.fields.String(), required=True)
    inspection_node = ma.fields.String(required=True)
    deadline = ma.fields.String(required=True)
    created_at = ma.fields.String(required=True)
    containers = ma.fields.List(ma.fields.Nested(DeclaredContainer), required=True)


class DeclarationPage(ma.Schema):
    items = ma.fields.List(ma.fields.Nested(DeclarationOut), required=True)
    next_cursor = ma.fields.String(required=True, allow_none=True)


# --- containers ---------------------------------------------------------------------------------------------------


class ContainerOut(ma.Schema):
    number = ma.fields.String(required=True)
    status = ma.fields.String(required=True)
    declaration_id = ma.fields.Integer(required=True)
    expected_seals = ma.fields.List(ma.fields.String(), required=True)
    location = ma.fields.String(required=True, allow_none=True)
    held = ma.fields.Boolean(required=True)
    open_alerts = ma.fields.Integer(required=True)


class ContainerQuery(Paging):
    status = ma.fields.String(load_default=None, validate=one_of(ContainerStatus))


class ContainerListItem(ContainerOut):
    position = ma.fields.Dict(allow_none=True, metadata={"description": "GeoJSON Point of the latest position"})


class ContainerPage(ma.Schema):
    items = ma.fields.List(ma.fields.Nested(ContainerListItem), required=True)
    next_cursor = ma.fields.String(required=True, allow_none=True)


class EventOut(ma.Schema):
    id = ma.fields.Integer(required=True)
    type = ma.fields.String(required=True)
    node = ma.fields.String(required=True, allow_none=True)
    event_time = ma.fields.String(required=True)
    recorded_at = ma.fields.String(required=True)
    decision = ma.fields.String(allow_none=True)
    reasons = ma.fields.List(ma.fields.String())
    seals = ma.fields.List(ma.fields.Dict())
    data = ma.fields.Dict()


class EventList(ma.Schema):
    items = ma.fields.List(ma.fields.Nested(EventOut), required=True)


class EvidenceEntry(ma.Schema):
    record = ma.fields.Dict(required=True)
    prev_hash = ma.fields.String(required=True)
    hash = ma.fields.String(required=True)


class EvidenceOut(ma.Schema):
    valid = ma.fields.Boolean(required=True)
    head = ma.fields.String(required=True)
    entries = ma.fields.List(ma.fields.Nested(EvidenceEntry), required=True)


# --- transfers and inspections ------------------------------------------------------------------------------------


class SealReading(ma.Schema):
    number = Text(required=True, min_length=1, max_length=64)
    condition = ma.fields.String(required=True, validate=one_of(SealCondition))


class TransferIn(ma.Schema):
    container = Text(required=True, min_length=1, max_length=20, metadata=CONTAINER_NUMBER)
    node = NodeCode(required=True)
    event_time = ma.fields.AwareDateTime(required=True, format="iso")
    activity = ma.fields.String(required=True, validate=one_of(Activity))
    from_mode = ma.fields.String(load_default=None, allow_none=True, validate=one_of(Mode))
    to_mode = ma.fields.String(load_default=None, allow_none=True, validate=one_of(Mode))
    vehicle = Text(load_default=None, allow_none=True, max_length=64)
    seals = ma.fields.List(ma.fields.Nested(SealReading), required=True, validate=validate.Length(max=50))


class TransferOut(ma.Schema):
    id = ma.fields.Integer(required=True)
    container = ma.fields.String(required=True)
    node = ma.fields.String(required=True)
    decision = ma.fields.String(required=True)
    reasons = ma.fields.List(ma.fields.String(), required=True)
    alert_id = ma.fields.Integer(required=True, allow_none=True)


class AppliedSeal(ma.Schema):
    number = Text(required=True, min_length=1, max_length=64)
    type = ma.fields.String(load_default=None, allow_none=True, validate=one_of(SealType))


class InspectionIn(ma.Schema):
    container = Text(required=True, min_length=1, max_length=20, metadata=CONTAINER_NUMBER)
    node = NodeCode(required=True)
    result = ma.fields.String(required=True, validate=one_of(InspectionResult))
    seals_applied = ma.fields.List(ma.fields.Nested(AppliedSeal), load_default=list, validate=validate.Length(max=20))
    agencies = ma.fields.List(Text(min_length=1, max_length=64), load_default=list, validate=validate.Length(max=10))
    remarks = Text(load_default=None, allow_none=True, max_length=2000)


class InspectionOut(ma.Schema):
    id = ma.fields.Integer(required=True)
    container = ma.fields.String(required=True)
    node = ma.fields.String(required=True)
    result = ma.fields.String(required=True)
    status = ma.fields.String(required=True)
    seals_applied = ma.fields.List(ma.fields.Dict(), required=True)
    agencies = ma.fields.List(ma.fields.String(), required=True)
    remarks = ma.fields.String(allow_none=True)
    created_at = ma.fields.String(required=True)


# --- alerts -------------------------------------------------------------------------------------------------------


class AlertQuery(Paging):
    status = ma.fields.String(validate=one_of(AlertStatus))
    kind = ma.fields.String(validate=one_of(AlertKind))
    container = Text(max_length=20)


class AlertOut(ma.Schema):
    id = ma.fields.Integer(required=True)
    kind = ma.fields.String(required=True)
    severity = ma.fields.String(required=True)
    container = ma.fields.String(required=True)
    node = ma.fields.String(required=True, allow_none=True)
    office = ma.fields.String(allow_none=True)
    reasons = ma.fields.List(ma.fields.String(), required=True)
    status = ma.fields.String(required=True)
    created_at = ma.fields.String(required=True)
    detail = ma.fields.Dict(required=True)
    acknowledged_at = ma.fields.String(allow_none=True)
    resolved_at = ma.fields.String(allow_none=True)
    resolution_note = ma.fields.String(allow_none=True)


class AlertPage(ma.Schema):
    items = ma.fields.List(ma.fields.Nested(AlertOut), required=True)
    next_cursor = ma.fields.String(required=True, allow_none=True)


class ResolveIn(ma.Schema):
    note = Text(required=True, min_length=1, max_length=2000)
