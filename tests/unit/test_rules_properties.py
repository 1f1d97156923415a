"""Properties of the transfer rule that must hold for any seals and any context (hypothesis)."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from tracking.rules import ObservedSeal, TransferContext, decide_transfer
from tracking.vocab import REASON_ORDER, Activity, AlertKind, Decision, Reason, SealCondition

# Applied per test rather than as a profile, so other modules keep their own settings.
fast = settings(deadline=None, max_examples=150)

SEALED_ACTIVITIES = [a for a in Activity if not a.opens_box]

seal_numbers = st.text(alphabet="ABCDEFGHJKLMNPRSTUVWXYZ0123456789", min_size=1, max_size=10)
expected_sets = st.lists(seal_numbers, min_size=1, max_size=5, unique=True)
conditions = st.sampled_from(SealCondition)

contexts = st.builds(
    TransferContext,
    activity=st.sampled_from(Activity),
    on_itinerary=st.booleans(),
    at_inspection_node=st.booleans(),
    held=st.booleans(),
    port_quarantine=st.booleans(),
    first_seaport_of_entry=st.booleans(),
    quarantine_cleared=st.booleans(),
)


@st.composite
def disguised(draw: st.DrawFn, number: str) -> str:
    """The same seal as an operator might type it: any case, spaces, hyphens, full-width characters."""
    out = []
    for ch in number:
        out.append(draw(st.sampled_from(["", " ", "-", " - ", "\t"])))
        style = draw(st.sampled_from(["as-is", "lower", "full-width"]))
        if style == "lower":
            ch = ch.lower()
        elif style == "full-width":
            ch = chr(ord(ch) + 0xFEE0)  # the full-width form of a printable ASCII character
        out.append(ch)
    out.append(draw(st.sampled_from(["", " ", "-"])))
    return "".join(out)


@st.composite
def disguised_observation(draw: st.DrawFn, observed: list[ObservedSeal]) -> list[ObservedSeal]:
    """The same readings in any order, each number typed differently."""
    shuffled = draw(st.permutations(observed))
    return [ObservedSeal(draw(disguised(seal.number)), seal.condition) for seal in shuffled]


@st.composite
def seals_and_readings(draw: st.DrawFn) -> tuple[list[str], list[ObservedSeal]]:
    """An expected set and readings drawn from it and from strangers, in any condition, possibly repeated."""
    expected = draw(expected_sets)
    strangers = draw(st.lists(seal_numbers, max_size=3))
    pool = expected + strangers
    observed = draw(st.lists(st.builds(ObservedSeal, st.sampled_from(pool), conditions), max_size=8))
    return expected, observed


@st.composite
def seal_changes(draw: st.DrawFn) -> tuple[list[str], list[ObservedSeal], Reason]:
    """An expected set and readings with at least one seal missing, broken or unexpected."""
    expected = draw(expected_sets)
    observed = [ObservedSeal(n, SealCondition.INTACT) for n in expected]
    change = draw(st.sampled_from(["drop", "missing", "broken", "extra", "swap"]))
    index = draw(st.integers(0, len(expected) - 1))
    extra = draw(seal_numbers.filter(lambda n: n not in expected))
    if change == "drop":
        del observed[index]
        reason = Reason.SEAL_MISSING
    elif change == "missing":
        observed[index] = ObservedSeal(expected[index], SealCondition.MISSING)
        reason = Reason.SEAL_MISSING
    elif change == "broken":
        observed[index] = ObservedSeal(expected[index], SealCondition.BROKEN)
        reason = Reason.SEAL_BROKEN
    elif change == "extra":
        observed.append(ObservedSeal(extra, SealCondition.INTACT))
        reason = Reason.SEAL_MISMATCH
    else:
        observed[index] = ObservedSeal(extra, SealCondition.INTACT)
        reason = Reason.SEAL_MISSING
    return expected, draw(st.permutations(observed)), reason


@fast
@given(
    expected=expected_sets,
    data=st.data(),
    activity=st.sampled_from(SEALED_ACTIVITIES),
    first_seaport=st.booleans(),
    quarantine_cleared=st.booleans(),
)
def test_unchanged_seals_on_the_itinerary_are_released(expected, data, activity, first_seaport, quarantine_cleared):
    observed = data.draw(disguised_observation([ObservedSeal(n, SealCondition.INTACT) for n in expected]))
    ctx = TransferContext(
        activity,
        on_itinerary=True,
        at_inspection_node=False,
        held=False,
        first_seaport_of_entry=first_seaport,
        quarantine_cleared=quarantine_cleared,
    )
    result = decide_transfer(expected, observed, ctx)
    assert (result.decision, result.reasons, result.alert_kind) == (Decision.RELEASE, (), None)


@fast
@given(change=seal_changes(), ctx=contexts)
def test_any_seal_change_reinspects(change, ctx):
    expected, observed, reason = change
    result = decide_transfer(expected, observed, replace(ctx, held=False))
    assert result.decision is Decision.REINSPECT
    assert reason in result.reasons
    assert result.alert_kind is not None


@fast
@given(case=seals_and_readings(), ctx=contexts, data=st.data())
def test_decision_ignores_order_case_spaces_and_hyphens(case, ctx, data):
    expected, observed = case
    expected_typed = [data.draw(disguised(n)) for n in data.draw(st.permutations(expected))]
    observed_typed = data.draw(disguised_observation(observed))
    assert decide_transfer(expected_typed, observed_typed, ctx) == decide_transfer(expected, observed, ctx)


@fast
@given(case=seals_and_readings(), ctx=contexts)
def test_a_held_container_is_never_released(case, ctx):
    expected, observed = case
    result = decide_transfer(expected, observed, replace(ctx, held=True))
    assert result.decision is Decision.HOLD
    assert result.alert_kind is AlertKind.MOVED_WHILE_HELD


@fast
@given(case=seals_and_readings(), ctx=contexts)
def test_reasons_are_unique_in_severity_order_and_pick_the_alert(case, ctx):
    expected, observed = case
    result = decide_transfer(expected, observed, ctx)
    ranks = [REASON_ORDER.index(r) for r in result.reasons]
    assert ranks == sorted(set(ranks))
    if ctx.held:
        assert result.alert_kind is AlertKind.MOVED_WHILE_HELD
    elif result.reasons:
        assert result.decision is Decision.REINSPECT
        assert result.alert_kind == AlertKind(result.reasons[0].value)
    else:
        assert result.decision in {Decision.RELEASE, Decision.INSPECT}
        assert result.alert_kind is None


@fast
@given(case=seals_and_readings(), ctx=contexts)
def test_route_and_activity_reasons_follow_the_context(case, ctx):
    expected, observed = case
    reasons = decide_transfer(expected, observed, ctx).reasons
    assert (Reason.ROUTE_DEVIATION in reasons) is (not ctx.on_itinerary)
    assert (Reason.UNSEALED_ACTIVITY in reasons) is ctx.activity.opens_box
