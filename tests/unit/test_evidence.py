"""The evidence chain: RFC 8785 canonical JSON, hand-computed hashes, and tamper detection."""

from __future__ import annotations

import hashlib
import itertools
import json
import math

import pytest
import rfc8785
from hypothesis import given
from hypothesis import strategies as st

from tracking.evidence import (
    GENESIS,
    Entry,
    VerifyResult,
    append,
    build_chain,
    canonical_json,
    entry_hash,
    verify_chain,
)

RECORDS = [
    {"type": "declared", "container": "CSQU3054383", "seals": ["CN1234567"], "node": "CNSZX"},
    {"type": "transfer", "node": "CNHKG", "decision": "release", "reasons": []},
    {"type": "transfer", "node": "CNGGZ", "decision": "reinspect", "reasons": ["seal_broken"]},
    {"type": "inspection", "node": "CNGGZ", "result": "cleared", "seals_applied": ["GZ-0001"]},
]


# RFC 8785 canonical JSON.


@pytest.mark.parametrize(
    ("value", "canonical"),
    [
        pytest.param({"b": "x", "a": 1}, b'{"a":1,"b":"x"}', id="keys-sorted-no-whitespace"),
        pytest.param({"a": {"d": [1, 2], "c": None}}, b'{"a":{"c":null,"d":[1,2]}}', id="nested"),
        pytest.param([True, False, None], b"[true,false,null]", id="literals"),
        pytest.param(1.0, b"1", id="integral-float"),
        pytest.param(4.50, b"4.5", id="trailing-zero"),
        pytest.param(-0.0, b"0", id="negative-zero"),
        pytest.param(0.000001, b"0.000001", id="small-decimal"),
        pytest.param(1e-7, b"1e-7", id="small-exponent"),
        pytest.param(1e21, b"1e+21", id="large-exponent"),
        pytest.param(1e20, b"100000000000000000000", id="large-integral"),
        pytest.param(2**53 - 1, b"9007199254740991", id="largest-safe-integer"),
        pytest.param("é中\u2028", '"é中\u2028"'.encode(), id="unicode-raw-utf8"),
        pytest.param('\u000f\n"\\/', b'"\\u000f\\n\\"\\\\/"', id="escapes"),
    ],
)
def test_canonical_json(value, canonical):
    assert canonical_json(value) == canonical


def test_rfc8785_section_3_2_4_example():
    value = {
        "numbers": [333333333.33333329, 1e30, 4.50, 2e-3, 0.000000000000000000000000001],
        "string": "\u20ac$\u000f\u000aA'\u0042\u0022\u005c\\\"/",
        "literals": [None, True, False],
    }
    expected = '{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],' + (
        '"string":"€$\\u000f\\nA\'B\\"\\\\\\\\\\"/"}'
    )
    assert canonical_json(value) == expected.encode("utf-8")


def test_keys_sort_by_utf16_code_units_rfc8785_section_3_2_3():
    value = {
        "\u20ac": "Euro Sign",
        "\r": "Carriage Return",
        "\ufb33": "Hebrew Letter Dalet With Dagesh",
        "1": "One",
        "\U0001f600": "Emoji: Grinning Face",
        "\u0080": "Control",
        "\u00f6": "Latin Small Letter O With Diaeresis",
    }
    keys = list(json.loads(canonical_json(value)))
    # The emoji's surrogate pair (D83D DE00) sorts before U+FB33, unlike its code point would.
    assert keys == ["\r", "1", "\u0080", "\u00f6", "\u20ac", "\U0001f600", "\ufb33"]


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(math.nan, id="nan"),
        pytest.param(math.inf, id="infinity"),
        pytest.param(2**53, id="unsafe-integer"),
        pytest.param({1: "x"}, id="non-string-key"),
        pytest.param({"at": object()}, id="unsupported-type"),
    ],
)
def test_values_json_cannot_carry_exactly_are_refused(value):
    with pytest.raises(rfc8785.CanonicalizationError):
        canonical_json(value)
    with pytest.raises(ValueError, match=r"."):  # the same error, catchable without importing rfc8785
        canonical_json(value)


# Hashes.


def test_entry_hash_by_hand():
    first = hashlib.sha256(b'{"a":1,"b":"x"}').hexdigest()
    assert first == "ecf9e98ec0641e23113ff3ce8bdc78d0ddd249886517fd4a7f68cc83d4e65667"
    assert entry_hash("", {"b": "x", "a": 1}) == first
    assert entry_hash("", {"a": 1.0, "b": "x"}) == first  # 1.0 and 1 are the same JSON number
    second = hashlib.sha256(first.encode("utf-8") + b'{"event":"transfer","seals":["CN1"]}').hexdigest()
    assert second == "b5ad152cc1be7e6d6400737aa35b084612efec944db453ab62e2b6f95160dbc0"
    assert entry_hash(first, {"seals": ["CN1"], "event": "transfer"}) == second


def test_entry_hash_of_unicode_uses_utf8():
    record = {"node": "广州大朗"}
    expected = hashlib.sha256('{"node":"广州大朗"}'.encode()).hexdigest()
    assert entry_hash("", record) == expected


def test_build_chain_links_each_record_to_the_previous_hash():
    chain = build_chain(RECORDS)
    assert [e.record for e in chain] == RECORDS
    assert chain[0].prev_hash == GENESIS == ""
    for before, after in itertools.pairwise(chain):
        assert after.prev_hash == before.hash
    for entry in chain:
        assert entry.hash == hashlib.sha256(entry.prev_hash.encode() + canonical_json(entry.record)).hexdigest()


def test_append_continues_a_chain():
    chain = build_chain(RECORDS[:2])
    assert append(chain[-1].hash, RECORDS[2]) == build_chain(RECORDS[:3])[-1]
    assert append(GENESIS, RECORDS[0]) == chain[0]


# Verification.


def test_a_chain_verifies():
    chain = build_chain(RECORDS)
    assert verify_chain(chain) == VerifyResult(valid=True, head=chain[-1].hash, first_bad_index=None)


def test_empty_chain_verifies():
    assert verify_chain([]) == VerifyResult(valid=True, head="", first_bad_index=None)


def test_published_json_verifies_offline():
    published = json.dumps({"entries": [e.as_dict() for e in build_chain(RECORDS)]}, indent=2, ensure_ascii=True)
    entries = json.loads(published)["entries"]
    result = verify_chain(entries)
    assert result.valid
    assert result.head == entries[-1]["hash"]


def test_tampered_record_is_found():
    chain = build_chain(RECORDS)
    chain[2] = Entry({**chain[2].record, "decision": "release"}, chain[2].prev_hash, chain[2].hash)
    result = verify_chain(chain)
    assert (result.valid, result.first_bad_index) == (False, 2)
    assert result.head == build_chain([e.record for e in chain])[-1].hash  # what the records really lead to


def test_rehashed_tampered_record_breaks_the_next_link():
    chain = build_chain(RECORDS)
    forged = append(chain[0].hash, {**RECORDS[1], "decision": "hold"})
    chain[1] = forged
    result = verify_chain(chain)
    assert (result.valid, result.first_bad_index) == (False, 2)


def test_reordered_entries_are_found():
    chain = build_chain(RECORDS)
    chain[1], chain[2] = chain[2], chain[1]
    result = verify_chain(chain)
    assert (result.valid, result.first_bad_index) == (False, 1)


def test_broken_link_is_found():
    chain = build_chain(RECORDS)
    chain[3] = Entry(chain[3].record, "0" * 64, chain[3].hash)
    assert verify_chain(chain).first_bad_index == 3


def test_first_entry_must_start_from_genesis():
    chain = build_chain(RECORDS)
    chain[0] = Entry(chain[0].record, "x", entry_hash("x", chain[0].record))
    assert verify_chain(chain).first_bad_index == 0


def test_removed_middle_entry_is_found():
    chain = build_chain(RECORDS)
    del chain[1]
    assert verify_chain(chain).first_bad_index == 1


def test_removed_tail_changes_the_head():
    chain = build_chain(RECORDS)
    shortened = verify_chain(chain[:-1])
    # The shorter chain is consistent in itself; only a head kept elsewhere reveals the loss.
    assert shortened.valid
    assert shortened.head != verify_chain(chain).head


def test_unhashable_published_record_is_invalid():
    entries = [e.as_dict() for e in build_chain(RECORDS)]
    entries[1]["record"] = {"amount": math.nan}
    result = verify_chain(entries)
    assert (result.valid, result.first_bad_index, result.head) == (False, 1, entries[0]["hash"])


def test_missing_fields_are_invalid():
    entries = [e.as_dict() for e in build_chain(RECORDS)]
    del entries[2]["prev_hash"]
    assert verify_chain(entries).first_bad_index == 2


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**60), 2**60)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(st.characters(codec="utf-8")),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=8), children, max_size=5),
    max_leaves=20,
)


@given(json_values)
def test_the_fast_path_gives_the_reference_bytes_or_the_reference_error(value):
    """canonical_json takes the standard library's encoder for plain values: the bytes must be RFC 8785's."""
    try:
        expected = rfc8785.dumps(value)
    except Exception as error:
        with pytest.raises(type(error)):
            canonical_json(value)
    else:
        assert canonical_json(value) == expected
