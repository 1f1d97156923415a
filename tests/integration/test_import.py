"""`railsea import` against a real server: 1,000 transfers with 10 bad rows store 990 and report the 10 with their
reasons; importing the same file again changes nothing. Declarations import the same way, a reference at a time."""

from __future__ import annotations

import csv
import io
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from flask import Flask

from api import bulk
from api.bulk import report_path
from api.cli import cli
from tests.api.helpers import ITINERARY, box, container_number, counts, invalid_check_digit, seals_for
from tests.conftest import TestDatabase
from tests.live_server import LiveServer, free_port, live_server
from tracking import importer

BOXES = 100
# Per box: arrive and depart at each node of the itinerary but the last, a transship at Dalang, arrive at Changsha.
STEPS = [
    (node, activity)
    for node in ITINERARY[:-1]
    for activity in (["arrive", "transship", "depart"] if node == "CNGGZ-DLG" else ["arrive", "depart"])
] + [(ITINERARY[-1], "arrive")]
# Rows made bad, by index among the 1,000, with what the report must say about each.
BAD: dict[int, tuple[dict[str, str], str]] = {
    5: ({"container": "RSQU9999999"}, "404"),
    104: ({"node": "CNXXX"}, "404"),
    203: ({"node": "CNYTN"}, "403"),
    302: ({"activity": "fly"}, "activity"),
    401: ({"seals": "CN-1:cracked"}, "seals"),
    500: ({"event_time": "FUTURE"}, "event_time"),
    609: ({"event_time": "yesterday"}, "event_time"),
    708: ({"container": ""}, "container"),
    807: ({"from_mode": "plane"}, "from_mode"),
    906: ({"seals": "CN-NO-CONDITION"}, "not number:condition"),
}


def call(server: LiveServer, method: str, path: str, body: Any = None, **kwargs: Any) -> Any:
    status, payload = server.call(method, path, body, **kwargs)
    assert status in (200, 201), (status, payload)
    return payload


def transfers_csv(path: Path, numbers: list[str], start: datetime) -> list[int]:
    """Write the 1,000 rows; returns the spreadsheet row numbers of the bad ones."""
    rows = []
    for i, number in enumerate(numbers):
        for j, (node, activity) in enumerate(STEPS):
            seals = ";".join(f"{s}:intact" for s in seals_for(number))
            rows.append(
                {
                    "container": number,
                    "node": node,
                    "event_time": (start + timedelta(minutes=10 * i + j)).isoformat(),
                    "activity": activity,
                    "seals": seals,
                    "from_mode": "rail" if activity != "depart" and node in ("CNGGZ-DLG", "CNCSH") else "",
                    "to_mode": "rail" if activity in ("depart", "transship") and node == "CNGGZ-DLG" else "",
                    "vehicle": f"TRAIN-{i % 7}" if node == "CNGGZ-DLG" and activity == "depart" else "",
                }
            )
    assert len(rows) == 1000
    future = (datetime.now(UTC) + timedelta(days=2)).isoformat()
    for index, (changes, _) in BAD.items():
        rows[index].update({k: (future if v == "FUTURE" else v) for k, v in changes.items()})
    with path.open("w", encoding="utf-8", newline="") as stream:
        writer = csv.DictWriter(stream, fieldnames=list(importer.TRANSFER_COLUMNS))
        writer.writeheader()
        writer.writerows(rows)
    return [index + 2 for index in BAD]


def run_import(kind: str, path: Path, token: str, server: LiveServer) -> Any:
    runner = CliRunner()
    return runner.invoke(
        cli, ["import", kind, str(path), "--token", token, "--url", server.url, "--jobs", "8"], catch_exceptions=False
    )


def read_report(path: Path) -> dict[int, dict[str, str]]:
    with report_path(path).open(encoding="utf-8", newline="") as stream:
        return {int(r["row"]): r for r in csv.DictReader(stream)}


def test_a_thousand_transfers_with_ten_bad_rows(app: Flask, database: TestDatabase, tmp_path: Path) -> None:
    started = time.monotonic()
    with live_server(database.url, workers=2, threads=8) as server:
        operator = call(server, "POST", "/api/v1/keys", {"name": "Yard", "role": "operator", "nodes": ITINERARY})
        numbers = [container_number(1000 + i) for i in range(BOXES)]
        for k in range(0, BOXES, 10):
            body = {
                "reference": f"BULK-{k // 10}",
                "direction": "import",
                "origin": ITINERARY[0],
                "destination": ITINERARY[-1],
                "itinerary": ITINERARY,
                "deadline": (datetime.now(UTC) + timedelta(days=7)).isoformat(),
                "party": "PEARLFWD",
                "containers": [box(n) for n in numbers[k : k + 10]],
            }
            call(server, "POST", "/api/v1/declarations", body)
        path = tmp_path / "yard-export.csv"
        bad_rows = transfers_csv(path, numbers, datetime.now(UTC) - timedelta(days=1))
        before = counts(app)

        first = run_import("transfers", path, operator["token"], server)
        assert first.exit_code == 1, first.output
        assert "1000 rows: 990 imported, 0 already imported, 10 rejected, 0 failed" in first.stdout
        after = counts(app)
        assert after["events"] - before["events"] == 990
        report = read_report(path)
        assert sorted(report) == sorted(bad_rows)
        for index, (_, expected) in BAD.items():
            line = report[index + 2]
            assert expected in f"{line['status']} {line['reason']}", line
        # The report keeps the row as it was, so it can be fixed and imported again.
        assert report[104 + 2]["node"] == "CNXXX"

        second = run_import("transfers", path, operator["token"], server)
        assert second.exit_code == 1, second.output
        assert "1000 rows: 0 imported, 990 already imported, 10 rejected, 0 failed" in second.stdout
        assert counts(app) == after
        assert read_report(path) == report
    assert time.monotonic() - started < 90


def test_declarations_one_reference_at_a_time(app: Flask, database: TestDatabase, tmp_path: Path) -> None:
    with live_server(database.url, workers=1, threads=4) as server:
        forwarder = call(server, "POST", "/api/v1/keys", {"name": "Pearl", "role": "forwarder", "party": "PEARLFWD"})
        deadline = (datetime.now(UTC) + timedelta(days=7)).isoformat()
        numbers = [container_number(2000 + i) for i in range(9)]
        numbers[5] = invalid_check_digit(numbers[5])
        lines = []
        for i, number in enumerate(numbers):
            reference = ("GOOD", "CHECK-DIGIT", "SEALS")[i // 3]
            first_of_reference = i % 3 == 0
            seals = ";".join(f"{s}:BLT:CUS" for s in seals_for(number))
            lines.append(
                {
                    "reference": reference,
                    "direction": "import" if first_of_reference else "",
                    "origin": ITINERARY[0],
                    "destination": ITINERARY[-1],
                    "itinerary": ">".join(ITINERARY),
                    "inspection_node": "",
                    "deadline": deadline if first_of_reference else "",
                    "container": number,
                    "seals": "ONLY-A-NUMBER:BLT:CUS:EXTRA" if i == 7 else seals,
                    "hs_code": "851712",
                    "description": "mobile phones",
                    "port_quarantine": "no",
                }
            )
        path = tmp_path / "declarations.csv"
        with path.open("w", encoding="utf-8", newline="") as stream:
            writer = csv.DictWriter(stream, fieldnames=list(lines[0]))
            writer.writeheader()
            writer.writerows(lines)
        before = counts(app)

        first = run_import("declarations", path, forwarder["token"], server)
        assert first.exit_code == 1, first.output
        assert "9 rows: 3 imported, 0 already imported, 6 rejected, 0 failed" in first.stdout
        assert counts(app)["declarations"] - before["declarations"] == 1
        report = read_report(path)
        assert sorted(report) == [5, 6, 7, 8, 9, 10]
        # The container with the bad check digit is named on its own row; its neighbours say why they wait.
        assert "containers.2.number" in report[7]["reason"]
        assert report[5]["status"] == "422"
        assert "containers.2.number" not in report[5]["reason"]
        assert report[9]["status"] == "invalid"
        assert "not number:type:source" in report[9]["reason"]
        declared = call(server, "GET", "/api/v1/declarations", token=forwarder["token"])["items"]
        assert [(d["reference"], [c["number"] for c in d["containers"]]) for d in declared] == [("GOOD", numbers[:3])]
        assert declared[0]["containers"][0]["seals"][0]["type"] == "bolt"

        second = run_import("declarations", path, forwarder["token"], server)
        assert "9 rows: 0 imported, 3 already imported, 6 rejected, 0 failed" in second.stdout
        assert counts(app)["declarations"] - before["declarations"] == 1


def rows_of(text: str) -> list[importer.Row]:
    return importer.read_rows(io.StringIO(text), ())[1]


def test_the_key_is_the_request_not_the_file_or_the_row() -> None:
    values = "RSQU0000011,CNNSA,2026-01-05T08:00:00Z,ARRIVE,A1:intact; B2:Broken"
    text = f"container,node,event_time,activity,seals\n{values}\n"
    [request] = importer.transfer_requests(rows_of(text)).requests
    assert request.body == {
        "container": "RSQU0000011",
        "node": "CNNSA",
        "event_time": "2026-01-05T08:00:00Z",
        "activity": "arrive",
        "seals": [{"number": "A1", "condition": "intact"}, {"number": "B2", "condition": "broken"}],
    }
    # Other column order, an extra column, a blank line before it: the same request, the same key.
    moved = "ARRIVE,A1:intact; B2:Broken,RSQU0000011,CNNSA,2026-01-05T08:00:00Z,late"
    [again] = importer.transfer_requests(
        rows_of(f"activity,seals,container,node,event_time,comment\n\n{moved}\n")
    ).requests
    assert again.rows[0].number == 3
    assert again.key == request.key
    assert importer.transfer_requests(rows_of(text.replace("08:00", "08:01"))).requests[0].key != request.key


def test_declaration_rows_group_by_reference_and_must_agree() -> None:
    header = "reference,direction,origin,destination,deadline,container,seals,port_quarantine\n"
    text = header + (
        "R1,import,HKHKG,CNCSH,2027-01-01T00:00:00Z,RSQU0000011,A1:BLT:CUS;A2::,yes\n"
        "R1,,,,,RSQU0000022,B1:cable:carrier,\n"
        "R2,import,HKHKG,CNCSH,2027-01-01T00:00:00Z,RSQU0000033,,\n"
        "R2,export,,,,RSQU0000044,,\n"
        "R3,import,HKHKG,CNCSH,2027-01-01T00:00:00Z,RSQU0000055,C1:glue:CUS,\n"
    )
    parsed = importer.declaration_requests(rows_of(text))
    [r1] = parsed.requests
    assert [c["seals"] for c in r1.body["containers"]] == [
        [{"number": "A1", "type": "bolt", "source": "customs"}, {"number": "A2"}],
        [{"number": "B1", "type": "cable", "source": "carrier"}],
    ]
    assert [c.get("port_quarantine", False) for c in r1.body["containers"]] == [True, False]
    reasons = {r.row.number: r.reason for r in parsed.rejected}
    assert reasons[5] == "differs from row 4 of R2 in direction"
    assert reasons[4].startswith("not imported")
    assert "unknown seal type 'glue'" in reasons[6]
    problem = {"detail": "Not valid.", "errors": {"containers.1.number": ["bad check digit"], "deadline": ["past"]}}
    first, second = importer.rejections(r1, 422, problem)
    assert first.reason == "Not valid. deadline: past"
    assert second.reason == "Not valid. deadline: past; containers.1.number: bad check digit"


def test_a_file_without_the_required_columns_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "wrong.csv"
    path.write_text("container,node\nRSQU0000011,CNNSA\n", encoding="utf-8")
    result = CliRunner().invoke(cli, ["import", "transfers", str(path), "--token", "t", "--url", "http://127.0.0.1:9"])
    assert result.exit_code == 1
    assert "missing columns: event_time, activity" in result.output


def test_an_api_that_does_not_answer_is_given_up_on(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bulk, "RETRIES", 0)
    path = tmp_path / "offline.csv"
    numbers = [container_number(3000 + i) for i in range(20)]
    lines = [f"{n},CNNSA,2026-01-05T08:00:00Z,arrive,A1:intact" for n in numbers]
    path.write_text("container,node,event_time,activity,seals\n" + "\n".join(lines) + "\n", encoding="utf-8")
    url = f"http://127.0.0.1:{free_port()}"
    result = CliRunner().invoke(cli, ["import", "transfers", str(path), "--token", "t", "--url", url, "--jobs", "1"])
    assert result.exit_code == 1
    assert "20 rows: 0 imported, 0 already imported, 0 rejected, 20 failed" in result.stdout
    report = read_report(path)
    assert sorted(report) == list(range(2, 22))
    assert {r["status"] for r in report.values()} == {"failed"}
    assert sum("not sent" in r["reason"] for r in report.values()) == 20 - bulk.GIVE_UP_AFTER
