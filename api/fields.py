"""Marshmallow fields and schemas shared by the resources (text, codes, GeoJSON)."""

from __future__ import annotations

import re
from typing import Any

import marshmallow as ma
from marshmallow import validate

# Control characters are never meaningful in RailSea's text and PostgreSQL refuses NUL outright.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
NODE_CODE = r"^[A-Z]{2}[A-Z0-9]{3}(-[A-Z0-9]{2,8})?$"
OFFICE_CODE = r"^[A-Z]{2}-[A-Z0-9]+(-[A-Z0-9]+)*$"


class Text(ma.fields.String):
    """A string without control characters, trimmed, with a maximum length."""

    def __init__(self, *, max_length: int = 200, min_length: int = 0, **kwargs: Any) -> None:
        validators = list(kwargs.pop("validate", None) or [])
        validators.append(validate.Length(min=min_length, max=max_length))
        super().__init__(validate=validators, **kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        text = super()._deserialize(value, attr, data, **kwargs).strip()
        if _CONTROL.search(text):
            raise ma.ValidationError("must not contain control characters")
        return text


def NodeCode(**kwargs: Any) -> Text:
    return Text(
        max_length=20, validate=[validate.Regexp(NODE_CODE, error="not a node code like CNNSA or CNGGZ-DLG")], **kwargs
    )


def OfficeCode(**kwargs: Any) -> Text:
    return Text(
        max_length=40, validate=[validate.Regexp(OFFICE_CODE, error="not an office code like CN-GUANGZHOU")], **kwargs
    )


class Number(ma.fields.Float):
    """A finite JSON number inside a range; strings and booleans are refused, not coerced."""

    def __init__(self, *, minimum: float = 0, maximum: float = 1e9, **kwargs: Any) -> None:
        super().__init__(validate=validate.Range(min=minimum, max=maximum), allow_nan=False, **kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ma.ValidationError("must be a number")
        return super()._deserialize(value, attr, data, **kwargs)


class Flag(ma.fields.Boolean):
    """A JSON boolean; 0, 1, "yes" and "true" are refused, not coerced."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> bool:
        if not isinstance(value, bool):
            raise ma.ValidationError("must be true or false")
        return value


class GeometrySchema(ma.Schema):
    type = ma.fields.String(required=True)
    coordinates = ma.fields.Raw(required=True)


class FeatureSchema(ma.Schema):
    type = ma.fields.Constant("Feature", required=True)
    id = ma.fields.Raw(required=True)
    geometry = ma.fields.Nested(GeometrySchema, required=True)
    properties = ma.fields.Dict(required=True)


class FeatureCollectionSchema(ma.Schema):
    type = ma.fields.Constant("FeatureCollection", required=True)
    features = ma.fields.List(ma.fields.Nested(FeatureSchema), required=True)
