"""The transfer rule of DESIGN.md §1 as a pure function: seals read at a node in, a customs decision out."""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass

from tracking.vocab import (
    Activity,
    AlertKind,
    ContainerStatus,
    Decision,
    Reason,
    SealCondition,
    Severity,
    by_severity,
)


def compact(text: str) -> str:
    """Upper case, without whitespace or hyphens: how seal and container numbers are compared.

    NFKC first, so full-width characters typed with a Chinese input method count as their ASCII forms; any
    dash (Unicode category Pd) is a hyphen, since numbers copied from documents often carry en dashes.
    """
    upper = unicodedata.normalize("NFKC", text).upper()
    return "".join(ch for ch in upper if not ch.isspace() and unicodedata.category(ch) != "Pd")


def normalise_seal(number: str) -> str:
    """The comparable form of a seal number (`compact`); ValueError when nothing is left to compare."""
    key = compact(number)
    if not key:
        raise ValueError(f"seal number {number!r} is blank once spaces and hyphens are removed")
    return key


# A seal number as stored, raw and normalised. Normalising can lengthen a number (NFKC writes `№` as `No`).
SEAL_NUMBER_MAX = 64


def storable_seal(number: str) -> str:
    """`normalise_seal`, for a seal about to become expected: ValueError also when its comparable form is longer
    than a seal number may be."""
    key = normalise_seal(number)
    if len(key) > SEAL_NUMBER_MAX:
        raise ValueError(f"seal number {number!r} is longer than {SEAL_NUMBER_MAX} characters once normalised")
    return key


@dataclass(frozen=True)
class ObservedSeal:
    """A seal as an operator read it at a transfer; `condition` accepts the enum or its value."""

    number: str
    condition: SealCondition

    def __post_init__(self) -> None:
        # Callers pass JSON strings; coerce here so a typo fails at construction, not deep in the rule.
        object.__setattr__(self, "condition", SealCondition(self.condition))


@dataclass(frozen=True)
class SealDiff:
    """The expected and observed seals compared, as sorted tuples of normalised numbers."""

    missing: tuple[str, ...]
    """Expected but not read, or read with condition `missing` (expected or not)."""
    broken: tuple[str, ...]
    """Read with condition `broken` (expected or not)."""
    unexpected: tuple[str, ...]
    """Read intact but not among the expected seals."""
    intact: tuple[str, ...]
    """Expected and read intact."""

    @property
    def in_order(self) -> bool:
        return not (self.missing or self.broken or self.unexpected)

    @property
    def reasons(self) -> tuple[Reason, ...]:
        """The seal reasons this difference gives, most severe first."""
        found = []
        if self.missing:
            found.append(Reason.SEAL_MISSING)
        if self.broken:
            found.append(Reason.SEAL_BROKEN)
        if self.unexpected:
            found.append(Reason.SEAL_MISMATCH)
        return by_severity(found)


def diff_seals(expected: Iterable[str], observed: Iterable[ObservedSeal]) -> SealDiff:
    """Compare observed seals with the expected set after normalising every number.

    A seal read more than once counts with its worst condition (missing, then broken, then intact): a
    handheld that retries must not turn a broken reading into an intact one. A condition is taken at face value
    even for a seal that was not expected, so an unexpected seal read broken gives `seal_broken`, not
    `seal_mismatch`.
    """
    wanted = {normalise_seal(number) for number in expected}
    readings: dict[str, SealCondition] = {}
    for seal in observed:
        key = normalise_seal(seal.number)
        previous = readings.get(key)
        if previous is None or seal.condition.rank < previous.rank:
            readings[key] = seal.condition
    by_condition: dict[SealCondition, set[str]] = {condition: set() for condition in SealCondition}
    for key, condition in readings.items():
        by_condition[condition].add(key)
    intact = by_condition[SealCondition.INTACT]
    return SealDiff(
        missing=tuple(sorted((wanted - readings.keys()) | by_condition[SealCondition.MISSING])),
        broken=tuple(sorted(by_condition[SealCondition.BROKEN])),
        unexpected=tuple(sorted(intact - wanted)),
        intact=tuple(sorted(intact & wanted)),
    )


@dataclass(frozen=True)
class TransferContext:
    """What the rule needs to know besides the seals; the service derives it from the database."""

    activity: Activity
    """What happened at the node; `strip` and `stuff` open the box."""
    on_itinerary: bool
    """The node is one of the declaration's itinerary nodes."""
    at_inspection_node: bool
    """The node is the declaration's inspection node (by default the destination; the origin for exports)."""
    held: bool
    """The container may not move: its status is in `vocab.HOLDING_STATUSES` (held, awaiting_inspection)."""
    port_quarantine: bool = False
    """The goods were declared as needing quarantine at the port (the exception of 2014 No. 68 §15)."""
    first_seaport_of_entry: bool = False
    """The node is the first seaport at which the goods enter the declaration's customs territory."""
    quarantine_cleared: bool = False
    """An inspection has already cleared the goods at or after the port of entry; mutual recognition
    (监管互认) means it is not asked again, e.g. when the container then departs the same port."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "activity", Activity(self.activity))


_STATUS_AFTER = {
    Decision.RELEASE: ContainerStatus.IN_TRANSIT,
    Decision.REINSPECT: ContainerStatus.HELD,
    Decision.HOLD: ContainerStatus.HELD,
    Decision.INSPECT: ContainerStatus.AWAITING_INSPECTION,
}


@dataclass(frozen=True)
class TransferDecision:
    """The outcome of one transfer check."""

    decision: Decision
    reasons: tuple[Reason, ...]
    """Every reason found, most severe first, each once; also listed when the container was already held."""
    alert_kind: AlertKind | None
    """The one alert to raise: the most severe reason's kind, `moved_while_held` when held, None otherwise."""
    seals: SealDiff
    """The seal comparison behind the seal reasons, for the alert's detail."""

    @property
    def status(self) -> ContainerStatus:
        """The container's status after this transfer (direct release keeps it in transit)."""
        return _STATUS_AFTER[self.decision]

    @property
    def severity(self) -> Severity | None:
        return self.alert_kind.severity if self.alert_kind else None


def decide_transfer(
    expected: Iterable[str], observed: Iterable[ObservedSeal], ctx: TransferContext
) -> TransferDecision:
    """Decide a transfer exactly as DESIGN.md §1 says, first matching rule wins.

    1. already held → `hold`, alert `moved_while_held` (the reasons are still computed and listed);
    2. any reason → `reinspect`, one alert of the most severe reason's kind;
    3. at the inspection node → `inspect` (the one inspection);
    4. port-quarantine goods at the first seaport of entry, not yet cleared → `inspect`;
    5. otherwise → `release`.
    """
    seals = diff_seals(expected, observed)
    found = list(seals.reasons)
    if not ctx.on_itinerary:
        found.append(Reason.ROUTE_DEVIATION)
    if ctx.activity.opens_box:
        found.append(Reason.UNSEALED_ACTIVITY)
    reasons = by_severity(found)

    if ctx.held:
        return TransferDecision(Decision.HOLD, reasons, AlertKind.MOVED_WHILE_HELD, seals)
    if reasons:
        return TransferDecision(Decision.REINSPECT, reasons, reasons[0].alert_kind, seals)
    if ctx.at_inspection_node:
        return TransferDecision(Decision.INSPECT, (), None, seals)
    if ctx.port_quarantine and ctx.first_seaport_of_entry and not ctx.quarantine_cleared:
        return TransferDecision(Decision.INSPECT, (), None, seals)
    return TransferDecision(Decision.RELEASE, (), None, seals)
