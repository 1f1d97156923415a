"""Closed vocabularies of the transport network, in one place."""

from enum import StrEnum

WGS84 = 4326


class NodeKind(StrEnum):
    SEAPORT = "seaport"
    RIVER_PORT = "river_port"
    DRY_PORT = "dry_port"
    RAIL_TERMINAL = "rail_terminal"
    BORDER_CROSSING = "border_crossing"
    INLAND_DEPOT = "inland_depot"


class Mode(StrEnum):
    SEA = "sea"
    BARGE = "barge"
    RAIL = "rail"
    ROAD = "road"


class Objective(StrEnum):
    TIME = "time"
    COST = "cost"
    CO2 = "co2"
    INSPECTIONS = "inspections"


WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
