"""ETA from planned hops, timetables and the delay so far; clearance analytics equal to figures worked out by hand."""

from __future__ import annotations

import csv
import io
import random
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from api.extensions import db
from routing.cache import planners
from routing.network import Network
from routing.planner import Planner
from routing.vocab import Mode
from tests.api.helpers import (
    DESTINATION,
    ITINERARY,
    Actors,
    actors,
    box,
    container_number,
    declare,
    inspect,
    iso,
    now,
    ok,
    parse_time,
    seals_for,
    transfer,
)
from tests.unit.test_planner import network, node
from tracking import analytics, eta
from tracking.analytics import EventRow

MONDAY = datetime(2026, 1, 5, tzinfo=UTC)


def at(hours: float, start: datetime = MONDAY) -> datetime:
    return start + timedelta(hours=hours)


# --- ETA, pure: a barge, a weekly train (Mondays 12:00 UTC) and a train that runs at any time ---------------------


@pytest.fixture(scope="module")
def planner() -> Planner:
    nodes = [
        node("CNAAA", handling_h=1),
        node("CNBBB", handling_h=2),
        node("CNCCC", handling_h=3),
        node("CNDDD", handling_h=0),
        node("CNEEE", handling_h=0),
    ]
    legs: list[tuple[Any, ...]] = [
        ("CNAAA", "CNBBB", Mode.BARGE, 5, 100, 10),
        ("CNBBB", "CNCCC", Mode.RAIL, 10, 100, 10, ["mon 12:00"]),
        ("CNCCC", "CNDDD", Mode.RAIL, 4, 100, 10),
        ("CNEEE", "CNCCC", Mode.ROAD, 1, 100, 10),
    ]
    built: Network = network(nodes, legs)
    return Planner(built)


ROUTE = ["CNAAA", "CNBBB", "CNCCC", "CNDDD"]


def stops(estimate: eta.Estimate) -> list[tuple[str, datetime | None]]:
    return [(s.node, s.eta) for s in estimate.stops]


def test_the_plan_chains_hops_with_handling_at_a_change_of_mode_and_timetable_waits(planner: Planner) -> None:
    assert MONDAY.weekday() == 0
    plan = eta.planned(planner, ROUTE, MONDAY)
    # Barge 00:00-05:00; 2 h handling at B (barge to rail) then the Monday 12:00 train, 10 h; on by rail, 4 h.
    assert [(s.node, s.eta, s.departs) for s in plan] == [
        ("CNAAA", at(0), at(0)),
        ("CNBBB", at(5), at(12)),
        ("CNCCC", at(22), at(22)),
        ("CNDDD", at(26), None),
    ]
    fresh = eta.estimate(planner, ROUTE, MONDAY, [])
    assert fresh.delay_h is None
    assert stops(fresh) == [(s.node, s.eta) for s in plan[1:]]


def test_a_delay_the_timetable_absorbs_and_one_it_does_not(planner: Planner) -> None:
    late = eta.estimate(planner, ROUTE, MONDAY, [eta.Observation("CNBBB", at(8), "arrive", "barge")])
    assert late.delay_h == 3.0
    # Ready at 10:00 after handling: still the Monday 12:00 train.
    assert stops(late) == [("CNCCC", at(22)), ("CNDDD", at(26))]
    too_late = eta.estimate(planner, ROUTE, MONDAY, [eta.Observation("CNBBB", at(11), "arrive", "barge")])
    assert too_late.delay_h == 6.0
    # Ready at 13:00: the train left at 12:00, the next runs a week later.
    assert stops(too_late) == [("CNCCC", at(22 + 168)), ("CNDDD", at(26 + 168))]


def test_a_departed_box_and_a_box_off_its_itinerary(planner: Planner) -> None:
    departed = eta.estimate(planner, ROUTE, MONDAY, [eta.Observation("CNBBB", at(12), "depart")])
    assert departed.delay_h == 0.0
    assert stops(departed) == [("CNCCC", at(22)), ("CNDDD", at(26))]
    seen = [eta.Observation("CNBBB", at(12), "depart"), eta.Observation("CNEEE", at(15), "arrive")]
    off_route = eta.estimate(planner, ROUTE, MONDAY, seen)
    # Road from E to C (1 h), 3 h handling at C (road to rail), 4 h of rail.
    assert off_route.delay_h == 0.0
    assert stops(off_route) == [("CNCCC", at(16)), ("CNDDD", at(23))]
    closed = eta.estimate(planner, ROUTE, MONDAY, [eta.Observation("CNDDD", at(26), "arrive")], closed=True)
    assert closed.stops == ()
    assert closed.delay_h == 0.0


# --- ETA through the API ------------------------------------------------------------------------------------------


@pytest.fixture
def people(client: FlaskClient) -> Actors:
    return actors(client)


def test_eta_of_a_box_in_transit(app: Flask, client: FlaskClient, people: Actors) -> None:
    number = container_number(81)
    declared = ok(declare(client, people.forwarder, reference="ETA-1", containers=[box(number)]))
    ok(transfer(client, people.operator, container=number, node="HKHKG", activity="depart", to_mode="barge"))
    arrived_at = now()
    ok(transfer(client, people.operator, container=number, node="CNNSA", from_mode="barge", event_time=iso(arrived_at)))
    body = ok(client.get(f"/api/v1/containers/{number}/eta", headers=people.forwarder), 200)
    with app.app_context():
        first = planners.get(db.session).plan("HKHKG", "CNNSA", depart_at=parse_time(declared["created_at"]))[0]
    assert first.arrive_at is not None
    assert body["delay_h"] == round((arrived_at - first.arrive_at).total_seconds() / 3600, 2)
    assert body["container"] == number
    assert body["status"] == "in_transit"
    assert [s["node"] for s in body["stops"]] == ITINERARY[2:]
    etas = [parse_time(s["eta"]) for s in body["stops"]]
    assert etas == sorted(etas)
    assert etas[0] > arrived_at
    assert all(s["planned"] and s["mode"] in {m.value for m in Mode} for s in body["stops"])
    assert parse_time(body["based_on"]) == arrived_at

    assert client.get(f"/api/v1/containers/{number}/eta", headers=people.other_forwarder).status_code == 404
    ok(transfer(client, people.operator, container=number, node=DESTINATION))
    ok(inspect(client, people.changsha, container=number, node=DESTINATION))
    released = ok(client.get(f"/api/v1/containers/{number}/eta", headers=people.forwarder), 200)
    assert released["status"] == "released"
    assert released["stops"] == []


# --- clearance analytics, pure --------------------------------------------------------------------------------------

D0 = date(2026, 1, 5)


def t(day: date, hour: float) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC) + timedelta(hours=hour)


def row(cid: int, code: str, moment: datetime, activity: str | None, decision: str, *reasons: str) -> EventRow:
    kind = "transfer" if activity else "inspection"
    return EventRow(cid, code, moment, kind, activity, decision, reasons, inspection_node="CNCSH")


def test_percentiles_interpolate_between_closest_ranks() -> None:
    assert analytics.percentile([4, 1, 3, 2], 0.5) == 2.5
    assert analytics.percentile([1, 2, 3, 4], 0.9) == pytest.approx(3.7)
    assert analytics.percentile([7], 0.9) == 7
    assert analytics.percentile([], 0.5) is None


D1 = D0 + timedelta(days=1)
REPORTED = [
    # Box 1: a visit across midnight (counted on the day it arrived), then cleared at its inspection node.
    row(1, "CNNSA", t(D0, 23), "arrive", "release"),
    row(1, "CNNSA", t(D1, 1), "depart", "release"),
    row(1, "CNCSH", t(D1, 10), "arrive", "inspect"),
    row(1, "CNCSH", t(D1, 14.5), None, "cleared"),
    # Box 2: re-inspected for two reasons; a transship neither opens nor closes a visit; never departs.
    row(2, "CNNSA", t(D0, 8), "transship", "reinspect", "seal_broken", "unsealed_activity"),
    row(2, "CNNSA", t(D0, 9), "arrive", "hold"),
    # Box 3: cleared away from its inspection node (no release), then refused at it (no release either).
    row(3, "CNNSA", t(D0, 2), "arrive", "reinspect", "seal_mismatch"),
    row(3, "CNNSA", t(D0, 2.5), None, "cleared"),
    row(3, "CNNSA", t(D0, 6), "depart", "release"),
    row(3, "CNCSH", t(D1, 3), "arrive", "inspect"),
    row(3, "CNCSH", t(D1, 5), None, "refused"),
    # Box 4: arrived the day before the period: neither its transfer nor its dwell count.
    row(4, "CNNSA", t(D0 - timedelta(days=1), 20), "arrive", "release"),
    row(4, "CNNSA", t(D0, 4), "depart", "release"),
]


def test_the_report_counts_each_figure_as_defined() -> None:
    report = analytics.clearance_report(REPORTED, D0, D1)
    days = {(f.node, f.day): f for f in report.days}
    nansha = days[("CNNSA", D0)]
    assert (nansha.transfers, nansha.released_directly, nansha.direct_release_share) == (6, 3, 0.5)
    assert nansha.reinspections == {
        "seal_missing": 0,
        "seal_broken": 1,
        "seal_mismatch": 1,
        "route_deviation": 0,
        "unsealed_activity": 1,
    }
    assert nansha.reinspected == 2
    # Dwell: box 3 from 02:00 to 06:00 (4 h), box 1 from 23:00 to 01:00 (2 h).
    assert nansha.dwell == analytics.Spread(2, 3.0, 3.8)
    assert days[("CNNSA", D1)].transfers == 1
    assert days[("CNNSA", D1)].dwell.count == 0
    changsha = days[("CNCSH", D1)]
    assert (changsha.transfers, changsha.released_directly, changsha.direct_release_share) == (2, 0, 0.0)
    assert changsha.clearance == analytics.Spread(1, 4.5, 4.5)
    totals = {f.node: f for f in report.totals}
    assert totals["CNNSA"].transfers == 7
    assert totals["CNNSA"].dwell == analytics.Spread(2, 3.0, 3.8)
    assert {item["day"] for item in report.as_dict()["items"]} == {D0.isoformat(), D1.isoformat()}
    assert "day" not in report.as_dict()["totals"][0]


def test_the_report_does_not_depend_on_the_order_of_the_events() -> None:
    in_order = analytics.clearance_report(REPORTED, D0, D1)
    for seed in range(5):
        shuffled = list(REPORTED)
        random.Random(seed).shuffle(shuffled)
        assert analytics.clearance_report(shuffled, D0, D1) == in_order
    # Rows the database sorted by box, node and time are taken as they come, one at a time.
    by_box_node_time = sorted(REPORTED, key=lambda r: (r.container_id, r.node, r.time))
    assert analytics.clearance_report(iter(by_box_node_time), D0, D1, ordered=True) == in_order


# --- clearance analytics through the API ----------------------------------------------------------------------------


def test_the_endpoint_gives_the_figures_worked_out_by_hand(client: FlaskClient, people: Actors) -> None:
    day = (now() - timedelta(days=2)).date()
    boxes = [container_number(90 + i) for i in range(4)]
    ok(declare(client, people.forwarder, reference="CLEAR-1", containers=[box(n) for n in boxes]))
    b1, b2, b3, b4 = boxes

    def move(number: str, code: str, hour: float, activity: str, seals: list[Any] | None = None) -> dict[str, Any]:
        return ok(
            transfer(client, people.operator, container=number, node=code, activity=activity, seals=seals,
                     event_time=iso(t(day, hour)))
        )  # fmt: skip

    assert move(b1, "HKHKG", 6, "depart")["decision"] == "release"
    move(b1, "CNNSA", 8, "arrive")
    move(b1, "CNNSA", 14, "depart")
    move(b2, "CNNSA", 9, "arrive")
    move(b2, "CNNSA", 19, "depart")
    customs_seal, carrier_seal = seals_for(b3)
    assert move(b3, "CNNSA", 10, "arrive", [{"number": customs_seal, "condition": "broken"}, carrier_seal])[
        "reasons"
    ] == ["seal_broken"]
    assert move(b3, "CNNSA", 12, "depart")["decision"] == "hold"
    assert move(b4, "CNNSA", 11, "arrive", [seals_for(b4)[1], "XX-UNEXPECTED"])["reasons"] == [
        "seal_missing",
        "seal_mismatch",
    ]
    assert move(b1, "CNCSH", 20, "arrive")["decision"] == "inspect"
    assert move(b2, "CNCSH", 22, "arrive")["decision"] == "inspect"
    released = [
        parse_time(ok(inspect(client, people.changsha, container=n, node="CNCSH"))["created_at"]) for n in (b1, b2)
    ]

    query = f"from={day.isoformat()}&to={day.isoformat()}"
    report = ok(client.get(f"/api/v1/analytics/clearance?{query}", headers=people.supervisor), 200)
    assert (report["from"], report["to"]) == (day.isoformat(), day.isoformat())
    items = {item["node"]: item for item in report["items"]}
    assert set(items) == {"HKHKG", "CNNSA", "CNCSH"}

    # By hand. Nansha: 7 transfers, 4 released directly; re-inspected b3 (broken) and b4 (missing + mismatch);
    # dwell b1 6 h, b2 10 h, b3 2 h → median 6, p90 = 6 + 0.8 × (10 − 6) = 9.2.
    assert items["CNNSA"] == {
        "node": "CNNSA",
        "day": day.isoformat(),
        "transfers": 7,
        "released_directly": 4,
        "direct_release_share": round(4 / 7, 4),
        "reinspections": 2,
        "reinspections_by_reason": {
            "seal_missing": 1,
            "seal_broken": 1,
            "seal_mismatch": 1,
            "route_deviation": 0,
            "unsealed_activity": 0,
        },
        "dwell_h": {"count": 3, "p50": 6.0, "p90": 9.2},
        "clearance_h": {"count": 0, "p50": None, "p90": None},
    }
    # Changsha, the inspection node: arrivals at 20:00 and 22:00, each released by its inspection.
    waits = sorted(
        [(released[0] - t(day, 20)).total_seconds() / 3600, (released[1] - t(day, 22)).total_seconds() / 3600]
    )
    assert items["CNCSH"]["clearance_h"] == {
        "count": 2,
        "p50": round((waits[0] + waits[1]) / 2, 2),
        "p90": round(waits[0] + 0.9 * (waits[1] - waits[0]), 2),
    }
    assert (items["CNCSH"]["transfers"], items["CNCSH"]["direct_release_share"]) == (2, 0.0)
    assert (
        items["HKHKG"]["transfers"],
        items["HKHKG"]["direct_release_share"],
        items["HKHKG"]["dwell_h"]["count"],
    ) == (
        1,
        1.0,
        0,
    )
    totals = {item["node"]: item for item in report["totals"]}
    assert dict(totals["CNNSA"].items()) == {k: v for k, v in items["CNNSA"].items() if k != "day"}
    # The default period (the last 30 days) holds the same day.
    default = ok(client.get("/api/v1/analytics/clearance", headers=people.supervisor), 200)
    assert {i["node"]: i for i in default["items"] if i["day"] == day.isoformat()} == items

    # The CSV download says the same.
    for url, headers in (
        (f"/api/v1/analytics/clearance?{query}&format=csv", people.supervisor),
        (f"/api/v1/analytics/clearance?{query}", {**people.supervisor, "Accept": "text/csv"}),
    ):
        response = client.get(url, headers=headers)
        assert response.status_code == 200
        assert response.mimetype == "text/csv"
        assert "attachment" in response.headers["Content-Disposition"]
        lines = {(r["node"], r["day"]): r for r in csv.DictReader(io.StringIO(response.get_data(as_text=True)))}
        nansha = lines[("CNNSA", day.isoformat())]
        assert (nansha["transfers"], nansha["direct_release_share"], nansha["dwell_p90_h"]) == ("7", "0.5714", "9.2")
        assert (nansha["reinspections_seal_missing"], nansha["clearance_p50_h"]) == ("1", "")
        assert lines[("CNNSA", "all")]["transfers"] == "7"


def test_who_may_see_which_nodes(client: FlaskClient, people: Actors) -> None:
    number = container_number(99)
    ok(declare(client, people.forwarder, reference="CLEAR-2", containers=[box(number)]))
    ok(transfer(client, people.operator, container=number, node="HKHKG", activity="depart"))
    ok(transfer(client, people.operator, container=number, node="CNNSA"))
    guangzhou = ok(client.get("/api/v1/analytics/clearance", headers=people.guangzhou), 200)
    assert {i["node"] for i in guangzhou["items"]} == {"CNNSA"}
    assert ok(client.get("/api/v1/analytics/clearance?node=CNNSA", headers=people.guangzhou), 200)["items"]
    for headers, query, status in (
        (people.changsha, "node=CNNSA", 403),
        (people.forwarder, "", 403),
        (people.operator, "", 403),
        (people.supervisor, "node=CNXXX", 404),
        (people.supervisor, "from=2026-02-01&to=2026-01-01", 422),
        (people.supervisor, "from=2024-01-01&to=2026-01-01", 422),
        (people.supervisor, "format=xml", 422),
        (people.supervisor, "from=9999-12-30&to=9999-12-31", 422),
    ):
        response = client.get(f"/api/v1/analytics/clearance?{query}", headers=headers)
        assert response.status_code == status, (query, response.get_data(as_text=True))
