"""The network as plain, immutable values: what the planner works on (no Flask, no SQLAlchemy)."""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from routing.vocab import WEEKDAYS, Mode, NodeKind

EARTH_RADIUS_KM = 6371.0088

# Customs territories: each EU member state's offices belong to the one EU customs territory (Union Customs Code);
# Russia, Kazakhstan and Belarus share the Eurasian Economic Union's; Hong Kong and Macao are separate territories.
_EU = frozenset(
    [
        "AT",
        "BE",
        "BG",
        "CY",
        "CZ",
        "DE",
        "DK",
        "EE",
        "ES",
        "FI",
        "FR",
        "GR",
        "HR",
        "HU",
        "IE",
        "IT",
        "LT",
        "LU",
        "LV",
        "MT",
        "NL",
        "PL",
        "PT",
        "RO",
        "SE",
        "SI",
        "SK",
    ]
)
_EAEU = frozenset(["AM", "BY", "KG", "KZ", "RU"])

_DEPARTURE = re.compile(r"^(mon|tue|wed|thu|fri|sat|sun) ([01]\d|2[0-3]):([0-5]\d)$")


def customs_territory(office: str) -> str:
    """The customs territory an office belongs to, from its country prefix (`CN-GUANGZHOU` → `CN`)."""
    country = office.split("-", 1)[0].upper()
    if country in _EU:
        return "EU"
    if country in _EAEU:
        return "EAEU"
    return country


@dataclass(frozen=True, slots=True, order=True)
class Departure:
    """A weekly departure: ISO weekday (1 = Monday) and minute of the day, in UTC."""

    weekday: int
    minute: int

    @property
    def minute_of_week(self) -> int:
        return (self.weekday - 1) * 1440 + self.minute

    @classmethod
    def parse(cls, text: str) -> Departure:
        """Parse `"mon 22:00"` (lower-case day, 24-hour UTC time)."""
        match = _DEPARTURE.match(text.strip().lower())
        if not match:
            raise ValueError(f"departure {text!r} is not like 'mon 22:00' (day, then HH:MM in UTC)")
        day, hour, minute = match.groups()
        return cls(WEEKDAYS.index(day) + 1, int(hour) * 60 + int(minute))

    def __str__(self) -> str:
        return f"{WEEKDAYS[self.weekday - 1]} {self.minute // 60:02d}:{self.minute % 60:02d}"


@dataclass(frozen=True, slots=True)
class NodeInfo:
    """A place where containers change vehicle or mode."""

    code: str
    name: str
    kind: NodeKind
    lon: float
    lat: float
    modes: frozenset[Mode]
    customs_office: str
    handling_h: float
    handling_cost_per_teu: float
    seal_preserving_transfer: bool
    dwell_limit_h: float

    @property
    def territory(self) -> str:
        return customs_territory(self.customs_office)


@dataclass(frozen=True, slots=True)
class LegInfo:
    """A directed service between two nodes by one mode; `departures` empty means it runs any time."""

    id: int
    origin: str
    destination: str
    mode: Mode
    distance_km: float
    duration_h: float
    cost_per_teu: float
    co2_kg_per_teu: float
    coords: tuple[tuple[float, float], ...]
    departures: tuple[Departure, ...] = ()


@dataclass(frozen=True, slots=True)
class Network:
    """A snapshot of the whole network at one version."""

    version: int
    nodes: dict[str, NodeInfo]
    legs: tuple[LegInfo, ...] = field(default=())


def haversine_km(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Great-circle distance between two `(lon, lat)` points in kilometres."""
    lon1, lat1, lon2, lat2 = map(math.radians, (a[0], a[1], b[0], b[1]))
    h = math.sin((lat2 - lat1) / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(math.sqrt(h))


def path_length_km(coords: Sequence[tuple[float, float]]) -> float:
    """Length of a polyline of `(lon, lat)` points in kilometres."""
    return sum(haversine_km(a, b) for a, b in itertools.pairwise(coords))


def parse_departures(texts: Iterable[str]) -> tuple[Departure, ...]:
    return tuple(sorted({Departure.parse(t) for t in texts}))
