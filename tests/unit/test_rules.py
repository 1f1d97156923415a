"""Every scenario of DESIGN.md §1's transfer check, on the pure rule."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from tracking.rules import (
    ObservedSeal,
    SealDiff,
    TransferContext,
    decide_transfer,
    diff_seals,
    normalise_seal,
)
from tracking.vocab import (
    ALERT_SEVERITY,
    DCSA_SEAL_SOURCE,
    DCSA_SEAL_TYPE,
    FINAL_STATUSES,
    HOLDING_STATUSES,
    OPEN_STATUSES,
    REASON_ORDER,
    Activity,
    AlertKind,
    ContainerStatus,
    Decision,
    Reason,
    SealCondition,
    SealSource,
    SealType,
    Severity,
    by_severity,
)

A = Activity
C = SealCondition
D = Decision
R = Reason
K = AlertKind

BASE = TransferContext(activity=A.TRANSSHIP, on_itinerary=True, at_inspection_node=False, held=False)
SEALS = ("CN1234567", "SH-778 21")


def ok(*numbers: str) -> tuple[ObservedSeal, ...]:
    return tuple(ObservedSeal(n, C.INTACT) for n in numbers)


def read(number: str, condition: str) -> ObservedSeal:
    return ObservedSeal(number, SealCondition(condition))


SCENARIOS = [
    # (id, expected, observed, context changes, decision, reasons, alert kind)
    ("unchanged-seals", SEALS, ok(*SEALS), {}, D.RELEASE, (), None),
    ("unchanged-normalised", SEALS, ok("cn 123-4567", "sh77821"), {}, D.RELEASE, (), None),
    ("unchanged-fullwidth", ("CN1234567",), ok("ｃｎ１２３４５６７"), {}, D.RELEASE, (), None),
    ("unchanged-on-arrival", SEALS, ok(*SEALS), {"activity": A.ARRIVE}, D.RELEASE, (), None),
    ("unchanged-on-departure", SEALS, ok(*SEALS), {"activity": A.DEPART}, D.RELEASE, (), None),
    ("nothing-expected-nothing-read", (), (), {}, D.RELEASE, (), None),
    ("expected-not-observed", SEALS, ok(SEALS[0]), {}, D.REINSPECT, (R.SEAL_MISSING,), K.SEAL_MISSING),
    ("nothing-read", SEALS, (), {}, D.REINSPECT, (R.SEAL_MISSING,), K.SEAL_MISSING),
    (
        "observed-missing",
        SEALS,
        (*ok(SEALS[0]), read(SEALS[1], "missing")),
        {},
        D.REINSPECT,
        (R.SEAL_MISSING,),
        K.SEAL_MISSING,
    ),
    (
        "observed-broken",
        SEALS,
        (*ok(SEALS[0]), read(SEALS[1], "broken")),
        {},
        D.REINSPECT,
        (R.SEAL_BROKEN,),
        K.SEAL_BROKEN,
    ),
    ("unexpected-intact", SEALS, ok(*SEALS, "XX999"), {}, D.REINSPECT, (R.SEAL_MISMATCH,), K.SEAL_MISMATCH),
    (
        "seal-replaced",
        SEALS,
        ok(SEALS[0], "XX999"),
        {},
        D.REINSPECT,
        (R.SEAL_MISSING, R.SEAL_MISMATCH),
        K.SEAL_MISSING,
    ),
    (
        "unexpected-seal-read-broken-is-broken-not-mismatch",
        SEALS,
        (*ok(*SEALS), read("XX999", "broken")),
        {},
        D.REINSPECT,
        (R.SEAL_BROKEN,),
        K.SEAL_BROKEN,
    ),
    (
        "unexpected-seal-read-missing",
        SEALS,
        (*ok(*SEALS), read("XX999", "missing")),
        {},
        D.REINSPECT,
        (R.SEAL_MISSING,),
        K.SEAL_MISSING,
    ),
    (
        "off-itinerary",
        SEALS,
        ok(*SEALS),
        {"on_itinerary": False},
        D.REINSPECT,
        (R.ROUTE_DEVIATION,),
        K.ROUTE_DEVIATION,
    ),
    (
        "strip",
        SEALS,
        ok(*SEALS),
        {"activity": A.STRIP},
        D.REINSPECT,
        (R.UNSEALED_ACTIVITY,),
        K.UNSEALED_ACTIVITY,
    ),
    (
        "stuff",
        SEALS,
        ok(*SEALS),
        {"activity": A.STUFF},
        D.REINSPECT,
        (R.UNSEALED_ACTIVITY,),
        K.UNSEALED_ACTIVITY,
    ),
    (
        "broken-and-off-route",
        SEALS,
        (*ok(SEALS[0]), read(SEALS[1], "broken")),
        {"on_itinerary": False},
        D.REINSPECT,
        (R.SEAL_BROKEN, R.ROUTE_DEVIATION),
        K.SEAL_BROKEN,
    ),
    (
        "off-route-and-stripped",
        SEALS,
        ok(*SEALS),
        {"on_itinerary": False, "activity": A.STRIP},
        D.REINSPECT,
        (R.ROUTE_DEVIATION, R.UNSEALED_ACTIVITY),
        K.ROUTE_DEVIATION,
    ),
    (
        "every-reason-at-once",
        ("A1", "A2", "A3"),
        (read("A2", "broken"), read("A3", "missing"), *ok("B9")),
        {"on_itinerary": False, "activity": A.STUFF},
        D.REINSPECT,
        tuple(REASON_ORDER),
        K.SEAL_MISSING,
    ),
    (
        "reading-twice-broken-wins-over-intact",
        SEALS,
        (*ok(*SEALS), read(SEALS[1].lower(), "broken")),
        {},
        D.REINSPECT,
        (R.SEAL_BROKEN,),
        K.SEAL_BROKEN,
    ),
    (
        "reading-twice-missing-wins-over-broken",
        SEALS,
        (*ok(SEALS[0]), read(SEALS[1], "broken"), read(SEALS[1], "missing")),
        {},
        D.REINSPECT,
        (R.SEAL_MISSING,),
        K.SEAL_MISSING,
    ),
    ("reading-twice-intact", SEALS, ok(*SEALS, *SEALS), {}, D.RELEASE, (), None),
    ("held-unchanged", SEALS, ok(*SEALS), {"held": True}, D.HOLD, (), K.MOVED_WHILE_HELD),
    (
        "held-with-broken-seal-lists-reason",
        SEALS,
        (*ok(SEALS[0]), read(SEALS[1], "broken")),
        {"held": True, "on_itinerary": False},
        D.HOLD,
        (R.SEAL_BROKEN, R.ROUTE_DEVIATION),
        K.MOVED_WHILE_HELD,
    ),
    (
        "held-at-inspection-node",
        SEALS,
        ok(*SEALS),
        {"held": True, "at_inspection_node": True},
        D.HOLD,
        (),
        K.MOVED_WHILE_HELD,
    ),
    (
        "held-quarantine-port",
        SEALS,
        ok(*SEALS),
        {"held": True, "port_quarantine": True, "first_seaport_of_entry": True},
        D.HOLD,
        (),
        K.MOVED_WHILE_HELD,
    ),
    ("inspection-node-in-order", SEALS, ok(*SEALS), {"at_inspection_node": True}, D.INSPECT, (), None),
    (
        "inspection-node-on-arrival",
        SEALS,
        ok(*SEALS),
        {"at_inspection_node": True, "activity": A.ARRIVE},
        D.INSPECT,
        (),
        None,
    ),
    (
        "inspection-node-seal-broken",
        SEALS,
        (*ok(SEALS[0]), read(SEALS[1], "broken")),
        {"at_inspection_node": True},
        D.REINSPECT,
        (R.SEAL_BROKEN,),
        K.SEAL_BROKEN,
    ),
    (
        "inspection-node-stripped",
        SEALS,
        ok(*SEALS),
        {"at_inspection_node": True, "activity": A.STRIP},
        D.REINSPECT,
        (R.UNSEALED_ACTIVITY,),
        K.UNSEALED_ACTIVITY,
    ),
    (
        "port-quarantine-at-first-seaport",
        SEALS,
        ok(*SEALS),
        {"port_quarantine": True, "first_seaport_of_entry": True, "activity": A.ARRIVE},
        D.INSPECT,
        (),
        None,
    ),
    (
        "port-quarantine-at-first-seaport-transship",
        SEALS,
        ok(*SEALS),
        {"port_quarantine": True, "first_seaport_of_entry": True},
        D.INSPECT,
        (),
        None,
    ),
    (
        "port-quarantine-already-cleared-there",
        SEALS,
        ok(*SEALS),
        {"port_quarantine": True, "first_seaport_of_entry": True, "quarantine_cleared": True, "activity": A.DEPART},
        D.RELEASE,
        (),
        None,
    ),
    (
        "port-quarantine-elsewhere",
        SEALS,
        ok(*SEALS),
        {"port_quarantine": True},
        D.RELEASE,
        (),
        None,
    ),
    (
        "first-seaport-without-quarantine",
        SEALS,
        ok(*SEALS),
        {"first_seaport_of_entry": True},
        D.RELEASE,
        (),
        None,
    ),
    (
        "port-quarantine-seal-broken",
        SEALS,
        (*ok(SEALS[0]), read(SEALS[1], "broken")),
        {"port_quarantine": True, "first_seaport_of_entry": True},
        D.REINSPECT,
        (R.SEAL_BROKEN,),
        K.SEAL_BROKEN,
    ),
]


@pytest.mark.parametrize(
    ("expected", "observed", "changes", "decision", "reasons", "alert_kind"),
    [pytest.param(*row[1:], id=row[0]) for row in SCENARIOS],
)
def test_transfer_scenarios(expected, observed, changes, decision, reasons, alert_kind):
    result = decide_transfer(expected, observed, replace(BASE, **changes))
    assert (result.decision, result.reasons, result.alert_kind) == (decision, reasons, alert_kind)


@pytest.mark.parametrize(
    ("decision", "status"),
    [
        (D.RELEASE, ContainerStatus.IN_TRANSIT),
        (D.REINSPECT, ContainerStatus.HELD),
        (D.HOLD, ContainerStatus.HELD),
        (D.INSPECT, ContainerStatus.AWAITING_INSPECTION),
    ],
)
def test_status_after_each_decision(decision, status):
    changes: dict[str, Any] = {
        D.RELEASE: {},
        D.REINSPECT: {"on_itinerary": False},
        D.HOLD: {"held": True},
        D.INSPECT: {"at_inspection_node": True},
    }[decision]
    result = decide_transfer(SEALS, ok(*SEALS), replace(BASE, **changes))
    assert result.decision is decision
    assert result.status is status


def test_alert_severity_follows_the_alert():
    assert decide_transfer(SEALS, ok(*SEALS), BASE).severity is None
    assert decide_transfer(SEALS, (), BASE).severity is Severity.CRITICAL
    assert decide_transfer(SEALS, ok(*SEALS), replace(BASE, on_itinerary=False)).severity is Severity.HIGH


def test_alert_detail_names_the_seals():
    observed = (read("cn-1234567", "broken"), *ok("XX 999"))
    result = decide_transfer(["CN1234567", "SH77821"], observed, BASE)
    assert result.seals == SealDiff(missing=("SH77821",), broken=("CN1234567",), unexpected=("XX999",), intact=())


def test_diff_seals_sorted_and_normalised():
    diff = diff_seals(
        ["b-2", "a 1", "C3", "d4"],
        [ObservedSeal("A1", C.INTACT), ObservedSeal("z9", C.INTACT), ObservedSeal("c-3", C.BROKEN)],
    )
    assert diff == SealDiff(missing=("B2", "D4"), broken=("C3",), unexpected=("Z9",), intact=("A1",))
    assert not diff.in_order
    assert diff.reasons == (R.SEAL_MISSING, R.SEAL_BROKEN, R.SEAL_MISMATCH)
    assert diff_seals(["a1"], [ObservedSeal("A-1", C.INTACT)]).in_order


@pytest.mark.parametrize(
    ("raw", "normalised"),
    [
        pytest.param("cn123", "CN123", id="case"),
        pytest.param(" CN 12 3 ", "CN123", id="spaces"),
        pytest.param("CN-12-3", "CN123", id="hyphens"),
        pytest.param("CN\t12\n3", "CN123", id="other-whitespace"),
        pytest.param("CN–123", "CN123", id="en-dash"),
        pytest.param("ＣＮ１２３", "CN123", id="full-width"),
        pytest.param("CN\u3000123", "CN123", id="ideographic-space"),
        pytest.param("CN/123", "CN/123", id="slash-kept"),
    ],
)
def test_normalise_seal(raw, normalised):
    assert normalise_seal(raw) == normalised


@pytest.mark.parametrize("blank", [" ", "--", ""])
def test_blank_seal_number_is_refused(blank):
    with pytest.raises(ValueError, match="blank"):
        decide_transfer([blank], [], BASE)
    with pytest.raises(ValueError, match="blank"):
        decide_transfer(["CN1"], [ObservedSeal(blank, C.INTACT)], BASE)


def test_values_from_json_are_coerced():
    seal = ObservedSeal("CN1", "broken")  # type: ignore[arg-type]
    assert seal.condition is C.BROKEN
    ctx = TransferContext("strip", on_itinerary=True, at_inspection_node=False, held=False)  # type: ignore[arg-type]
    assert ctx.activity is A.STRIP
    with pytest.raises(ValueError, match="cracked"):
        ObservedSeal("CN1", "cracked")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unload"):
        TransferContext("unload", True, False, False)  # type: ignore[arg-type]


# The vocabulary the rule relies on.


def test_reason_order_is_the_design_order():
    assert REASON_ORDER == (
        R.SEAL_MISSING,
        R.SEAL_BROKEN,
        R.SEAL_MISMATCH,
        R.ROUTE_DEVIATION,
        R.UNSEALED_ACTIVITY,
    )
    assert [r.rank for r in REASON_ORDER] == [0, 1, 2, 3, 4]
    assert by_severity(["unsealed_activity", R.SEAL_MISSING, "unsealed_activity"]) == (
        R.SEAL_MISSING,
        R.UNSEALED_ACTIVITY,
    )


def test_every_reason_has_an_alert_kind_and_every_kind_a_severity():
    assert {r.alert_kind.value for r in Reason} == {r.value for r in Reason}
    assert set(ALERT_SEVERITY) == set(AlertKind)
    assert all(isinstance(kind.severity, Severity) for kind in AlertKind)


def test_vocabulary_matches_the_public_contract():
    # Copied from API.md (alerts, transfers): renaming a value is a breaking change.
    kinds = (
        "seal_broken, seal_missing, seal_mismatch, route_deviation, unsealed_activity, moved_while_held, "
        "eseal_tamper, corridor_deviation, overdue, telemetry_silent, dwell_exceeded"
    )
    assert [k.value for k in AlertKind] == kinds.split(", ")
    reasons = "seal_missing, seal_broken, seal_mismatch, route_deviation, unsealed_activity"
    assert [r.value for r in REASON_ORDER] == reasons.split(", ")
    assert [d.value for d in Decision] == ["release", "reinspect", "hold", "inspect"]
    assert [a.value for a in Activity] == ["arrive", "depart", "transship", "strip", "stuff"]
    assert [c.value for c in ContainerStatus] == [
        "declared",
        "in_transit",
        "held",
        "awaiting_inspection",
        "released",
        "refused",
    ]


def test_dcsa_codes():
    assert {t: t.dcsa_code for t in SealType} == {
        SealType.BOLT: "BLT",
        SealType.CABLE: "WIR",
        SealType.PADLOCK: "KLP",
        SealType.E_LOCK: None,
    }
    assert set(DCSA_SEAL_TYPE) == set(SealType)
    assert set(DCSA_SEAL_SOURCE) == set(SealSource)
    assert set(DCSA_SEAL_SOURCE.values()) <= {"CAR", "SHI", "PHY", "VET", "CUS"}
    assert SealSource.CUSTOMS.dcsa_code == "CUS"


def test_container_statuses_are_open_or_final():
    assert set(ContainerStatus) == OPEN_STATUSES | FINAL_STATUSES
    assert not OPEN_STATUSES & FINAL_STATUSES
    assert {ContainerStatus.RELEASED, ContainerStatus.REFUSED} == FINAL_STATUSES
    assert HOLDING_STATUSES <= OPEN_STATUSES
    assert ContainerStatus.HELD.is_open
    assert ContainerStatus.REFUSED.is_final


def test_seal_condition_worst_first():
    assert sorted(SealCondition, key=lambda c: c.rank) == [C.MISSING, C.BROKEN, C.INTACT]


def test_opening_activities():
    assert {a for a in Activity if a.opens_box} == {A.STRIP, A.STUFF}


def test_pure_modules_import_neither_flask_nor_sqlalchemy():
    code = (
        "import sys, tracking.vocab, tracking.rules, tracking.iso6346, tracking.evidence; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in {'flask', 'sqlalchemy', 'api'}))"
    )
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
