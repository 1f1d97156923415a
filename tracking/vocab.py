"""Closed vocabularies of customs tracking (declarations, seals, transfers, alerts, roles), in one place."""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum
from types import MappingProxyType


class Role(StrEnum):
    ADMIN = "admin"
    SUPERVISOR = "supervisor"  # scope: customs offices
    OPERATOR = "operator"  # scope: nodes
    FORWARDER = "forwarder"  # scope: its party


class Direction(StrEnum):
    IMPORT = "import"
    EXPORT = "export"
    TRANSIT = "transit"


class Activity(StrEnum):
    ARRIVE = "arrive"
    DEPART = "depart"
    TRANSSHIP = "transship"
    STRIP = "strip"
    STUFF = "stuff"

    @property
    def opens_box(self) -> bool:
        """Stripping or stuffing opens the container, so its seals can no longer vouch for the goods."""
        return self in _OPENING_ACTIVITIES


_OPENING_ACTIVITIES = frozenset({Activity.STRIP, Activity.STUFF})


class SealCondition(StrEnum):
    """What an operator reads on a seal; declared from the worst case so `rank` 0 is the worst."""

    MISSING = "missing"
    BROKEN = "broken"
    INTACT = "intact"

    @property
    def rank(self) -> int:
        """0 for the worst condition; when one seal is read twice the lower rank wins."""
        return _CONDITION_ORDER.index(self)


_CONDITION_ORDER: tuple[SealCondition, ...] = tuple(SealCondition)


class SealType(StrEnum):
    BOLT = "bolt"
    CABLE = "cable"
    PADLOCK = "padlock"
    E_LOCK = "e_lock"  # reports its state by telemetry

    @property
    def dcsa_code(self) -> str | None:
        """The DCSA seal type code, or None: DCSA has no code for electronic locks."""
        return DCSA_SEAL_TYPE[self]


# DCSA Information Model `Seal.type`: KLP keyless padlock, BLT bolt, WIR wire (a cable seal).
DCSA_SEAL_TYPE: MappingProxyType[SealType, str | None] = MappingProxyType(
    {
        SealType.BOLT: "BLT",
        SealType.CABLE: "WIR",
        SealType.PADLOCK: "KLP",
        SealType.E_LOCK: None,
    }
)


class SealSource(StrEnum):
    """Who affixed the seal."""

    CUSTOMS = "customs"
    SHIPPER = "shipper"
    CARRIER = "carrier"
    QUARANTINE = "quarantine"

    @property
    def dcsa_code(self) -> str:
        return DCSA_SEAL_SOURCE[self]


# DCSA `Seal.source`: CAR, SHI, PHY, VET, CUS. Quarantine maps to VET, which every DCSA version has (PHY is in
# only some); UN/EDIFACT 9303 maps both to AC, quarantine agency.
DCSA_SEAL_SOURCE: MappingProxyType[SealSource, str] = MappingProxyType(
    {
        SealSource.CUSTOMS: "CUS",
        SealSource.SHIPPER: "SHI",
        SealSource.CARRIER: "CAR",
        SealSource.QUARANTINE: "VET",
    }
)


class Reason(StrEnum):
    """Why a transfer was not released directly; declared most severe first (DESIGN.md §1)."""

    SEAL_MISSING = "seal_missing"
    SEAL_BROKEN = "seal_broken"
    SEAL_MISMATCH = "seal_mismatch"
    ROUTE_DEVIATION = "route_deviation"
    UNSEALED_ACTIVITY = "unsealed_activity"

    @property
    def rank(self) -> int:
        """Position in `REASON_ORDER`: 0 is the most severe."""
        return REASON_ORDER.index(self)

    @property
    def alert_kind(self) -> AlertKind:
        """The kind of the alert raised when this is the most severe reason."""
        return AlertKind(self.value)


REASON_ORDER: tuple[Reason, ...] = tuple(Reason)


def by_severity(reasons: Iterable[Reason | str]) -> tuple[Reason, ...]:
    """The distinct reasons among `reasons` (members or their values), most severe first."""
    found = {Reason(r) for r in reasons}
    return tuple(r for r in REASON_ORDER if r in found)


class Decision(StrEnum):
    RELEASE = "release"  # direct release at the transfer point: the container carries on
    REINSPECT = "reinspect"  # something changed: hold and call a supervisor
    HOLD = "hold"  # already held and moved anyway
    INSPECT = "inspect"  # the one inspection (inspection node, or port quarantine)


class Severity(StrEnum):
    """How urgently a supervisor should look; declared most urgent first."""

    CRITICAL = "critical"
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"

    @property
    def rank(self) -> int:
        return tuple(Severity).index(self)


class AlertKind(StrEnum):
    SEAL_BROKEN = "seal_broken"
    SEAL_MISSING = "seal_missing"
    SEAL_MISMATCH = "seal_mismatch"
    ROUTE_DEVIATION = "route_deviation"
    UNSEALED_ACTIVITY = "unsealed_activity"
    MOVED_WHILE_HELD = "moved_while_held"
    ESEAL_TAMPER = "eseal_tamper"
    CORRIDOR_DEVIATION = "corridor_deviation"
    OVERDUE = "overdue"
    TELEMETRY_SILENT = "telemetry_silent"
    DWELL_EXCEEDED = "dwell_exceeded"

    @property
    def severity(self) -> Severity:
        return ALERT_SEVERITY[self]


# Critical: the goods may have been tampered with or moved against a hold; high: the container is somewhere or
# in a state nobody declared; medium/low: timing, which is usually delay rather than fraud.
ALERT_SEVERITY: MappingProxyType[AlertKind, Severity] = MappingProxyType(
    {
        AlertKind.SEAL_MISSING: Severity.CRITICAL,
        AlertKind.SEAL_BROKEN: Severity.CRITICAL,
        AlertKind.MOVED_WHILE_HELD: Severity.CRITICAL,
        AlertKind.ESEAL_TAMPER: Severity.CRITICAL,
        AlertKind.SEAL_MISMATCH: Severity.HIGH,
        AlertKind.ROUTE_DEVIATION: Severity.HIGH,
        AlertKind.UNSEALED_ACTIVITY: Severity.HIGH,
        AlertKind.CORRIDOR_DEVIATION: Severity.HIGH,
        AlertKind.OVERDUE: Severity.MEDIUM,
        AlertKind.TELEMETRY_SILENT: Severity.MEDIUM,
        AlertKind.DWELL_EXCEEDED: Severity.LOW,
    }
)


class AlertStatus(StrEnum):
    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"


# An acknowledged alert is still being worked on, so it keeps counting as open (e.g. `open_alerts`).
UNRESOLVED_ALERT_STATUSES = frozenset({AlertStatus.OPEN, AlertStatus.ACKNOWLEDGED})


class ContainerStatus(StrEnum):
    """declared → in_transit ⇄ held → awaiting_inspection → released | refused."""

    DECLARED = "declared"
    IN_TRANSIT = "in_transit"
    HELD = "held"
    AWAITING_INSPECTION = "awaiting_inspection"
    RELEASED = "released"
    REFUSED = "refused"

    @property
    def is_open(self) -> bool:
        """True while customs still follows the container (its declaration is open)."""
        return self in OPEN_STATUSES

    @property
    def is_final(self) -> bool:
        return self in FINAL_STATUSES


FINAL_STATUSES = frozenset({ContainerStatus.RELEASED, ContainerStatus.REFUSED})
OPEN_STATUSES = frozenset(ContainerStatus) - FINAL_STATUSES
# Under customs control until a supervisor's inspection: any movement is a `moved_while_held`.
HOLDING_STATUSES = frozenset({ContainerStatus.HELD, ContainerStatus.AWAITING_INSPECTION})


class InspectionResult(StrEnum):
    CLEARED = "cleared"
    REFUSED = "refused"


class EventType(StrEnum):
    """State-changing events of a container: each one is appended to its evidence chain.

    Telemetry positions and alerts that change nothing (corridor, overdue, silence, dwell) live in their own
    tables; an e-seal reporting `sealed=false` holds the container, so it is an event. Resolving an alert
    lifts no hold (only an inspection does), so it is not one.
    """

    DECLARED = "declared"
    TRANSFER = "transfer"
    INSPECTION = "inspection"
    ESEAL_TAMPER = "eseal_tamper"
