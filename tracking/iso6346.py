"""ISO 6346 container numbers: normalisation, the check digit and a validation message a user can act on."""

from __future__ import annotations

import re
import string

from tracking.rules import compact

CATEGORIES = frozenset("UJZ")
"""Equipment category identifiers: U freight container, J detachable equipment, Z trailer or chassis."""

EXAMPLE = "CSQU3054383"

# Letters count from A = 10 upwards, skipping 11, 22 and 33 (multiples of 11) so no letter equals the modulus.
_LETTER_VALUES = dict(zip(string.ascii_uppercase, (v for v in range(10, 39) if v % 11), strict=True))
# Explicit ASCII classes: `\d` would also accept other scripts' digits.
_BODY = re.compile(r"[A-Z]{4}[0-9]{6}")
_SHAPE = re.compile(r"[A-Z]{4}[0-9]{7}")


def normalise(number: str) -> str:
    """Upper case, without spaces or hyphens (`csqu 305438-3` → `CSQU3054383`).

    Container numbers are written and mistyped like seal numbers, so they normalise the same way.
    """
    return compact(number)


def check_digit(owner_serial: str) -> int:
    """The check digit of the first ten characters (owner code, category, serial), e.g. `CSQU305438` → 3.

    The weighted sum mod 11 can be 10, which ISO 6346 writes as 0 (it advises against issuing such serials).
    """
    body = normalise(owner_serial)
    if not _BODY.fullmatch(body):
        raise ValueError(f"{owner_serial!r} is not 4 letters followed by 6 digits")
    total = sum((_LETTER_VALUES[ch] if ch.isalpha() else int(ch)) << position for position, ch in enumerate(body))
    return total % 11 % 10


def validation_error(number: str) -> str | None:
    """None when `number` is a valid ISO 6346 container number, otherwise what is wrong with it."""
    text = normalise(number)
    if not _SHAPE.fullmatch(text):
        return f"{number!r} is not a container number: expected 4 letters and 7 digits, like {EXAMPLE}"
    if text[3] not in CATEGORIES:
        return f"{text}: the fourth letter is the equipment category and must be U, J or Z, not {text[3]}"
    expected = check_digit(text[:10])
    if int(text[10]) != expected:
        return f"{text}: check digit is {text[10]} but should be {expected}"
    return None


def is_valid(number: str) -> bool:
    return validation_error(number) is None
