"""ISO 6346 container numbers: check digit, normalisation and the messages a user sees."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tracking.iso6346 import check_digit, is_valid, normalise, validation_error


def test_check_digit_of_the_iso_example_by_hand():
    # CSQU305438: C=13 S=30 Q=28 U=32 (A=10, skipping 11, 22, 33), each weighted by 2**position.
    values = [13, 30, 28, 32, 3, 0, 5, 4, 3, 8]
    total = sum(v * 2**i for i, v in enumerate(values))
    assert total == 6185
    assert total % 11 == 3
    assert check_digit("CSQU305438") == 3


@pytest.mark.parametrize(
    ("body", "digit"),
    [
        pytest.param("CSQU305438", 3, id="iso-example"),
        pytest.param("MSKU907032", 3, id="maersk"),
        pytest.param("TGHU123456", 7, id="textainer"),
        pytest.param("ABCU000000", 1, id="zero-serial"),  # 10 + 24 + 52 + 256 = 342 = 31·11 + 1
        pytest.param("CSQU000007", 0, id="remainder-ten-is-zero"),
    ],
)
def test_check_digit(body, digit):
    assert check_digit(body) == digit


@pytest.mark.parametrize("body", ["CSQU30543", "CSQU3054383", "CSQ1305438", "", "ÄSQU305438"])
def test_check_digit_needs_four_letters_and_six_digits(body):
    with pytest.raises(ValueError, match="4 letters followed by 6 digits"):
        check_digit(body)


@pytest.mark.parametrize(
    "number",
    [
        "CSQU3054383",
        "MSKU9070323",
        "TGHU1234567",
        "CSQU0000070",
        "csqu3054383",
        "CSQU 305438 3",
        "CSQU-305438-3",
        " csqu 305 438-3 ",
        "ＣＳＱＵ３０５４３８３",
        "ABCJ0000004",  # J = 20: 10 + 24 + 52 + 160 = 246 = 22·11 + 4
        "ABCZ0000005",  # Z = 38: 10 + 24 + 52 + 304 = 390 = 35·11 + 5
    ],
)
def test_valid_numbers(number):
    assert is_valid(number)
    assert validation_error(number) is None


@pytest.mark.parametrize(
    ("number", "message"),
    [
        pytest.param("CSQU3054384", "CSQU3054384: check digit is 4 but should be 3", id="wrong-check-digit"),
        pytest.param("TGHU1234560", "TGHU1234560: check digit is 0 but should be 7", id="wrong-check-digit-zero"),
        pytest.param("CSQX3054383", "must be U, J or Z, not X", id="bad-category"),
        pytest.param("CSQU305438", "expected 4 letters and 7 digits", id="too-short"),
        pytest.param("CSQU30543830", "expected 4 letters and 7 digits", id="too-long"),
        pytest.param("CS1U3054383", "expected 4 letters and 7 digits", id="digit-in-owner-code"),
        pytest.param("CSQU30S4383", "expected 4 letters and 7 digits", id="letter-in-serial"),
        pytest.param("CSQU٣054383", "expected 4 letters and 7 digits", id="arabic-indic-digit"),
        pytest.param("", "expected 4 letters and 7 digits", id="empty"),
    ],
)
def test_invalid_numbers_say_what_is_wrong(number, message):
    assert not is_valid(number)
    error = validation_error(number)
    assert error is not None
    assert message in error


def test_format_error_shows_an_example():
    assert (
        validation_error("12345")
        == "'12345' is not a container number: expected 4 letters and 7 digits, like CSQU3054383"
    )


@pytest.mark.parametrize(
    ("raw", "normalised"),
    [("csqu 305438 3", "CSQU3054383"), ("CSQU-305438-3", "CSQU3054383"), ("\tcsqu3054383\n", "CSQU3054383")],
)
def test_normalise(raw, normalised):
    assert normalise(raw) == normalised


owner_codes = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=3, max_size=3)
serials = st.text(alphabet="0123456789", min_size=6, max_size=6)


@settings(deadline=None)
@given(owner=owner_codes, category=st.sampled_from("UJZ"), serial=serials, wrong=st.integers(0, 9))
def test_exactly_one_check_digit_is_valid(owner, category, serial, wrong):
    body = owner + category + serial
    digit = check_digit(body)
    assert is_valid(f"{body}{digit}")
    assert is_valid(f"{body}{wrong}") is (wrong == digit)
