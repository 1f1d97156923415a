"""The dashboard in a real browser: `railsea serve` on each database, Debian's chromium driven by Playwright.

The browser may only talk to the server under test: every other request is aborted, recorded, and fails the test.
"""

from __future__ import annotations

import json
import re
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from playwright.sync_api import Page, Route, expect, sync_playwright

from bench.common import CHROMIUM, CHROMIUM_ARGS, serve_process
from tests.conftest import ADMIN_TOKEN, TestDatabase
from tracking.iso6346 import check_digit

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"  # git-ignored; the README's screenshots come from scripts/screenshots.py
RAILSEA = Path(sys.executable).with_name("railsea")
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 15.0
LIVE_TIMEOUT_MS = 10_000
UI_TIMEOUT_MS = 15_000

CONTAINER = "CSQU3054383"  # declared while the page is open: its alert must arrive through the stream
SEAL = "CN-305438"


def number(owner: str, serial: int) -> str:
    body = f"{owner}{serial:06d}"
    return f"{body}{check_digit(body)}"


# --- the server -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Server:
    url: str

    def call(self, method: str, path: str, body: Any = None, token: str = ADMIN_TOKEN) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, method=method)
        request.add_header("Authorization", f"Bearer {token}")
        request.add_header("Connection", "close")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as error:
            with error:
                return error.code, json.loads(error.read() or b"null")

    def ok(self, method: str, path: str, body: Any = None, token: str = ADMIN_TOKEN, status: int = 201) -> Any:
        got, data = self.call(method, path, body, token)
        assert got == status, (method, path, got, data)
        return data


@pytest.fixture
def server(app: Flask, database: TestDatabase, tmp_path: Path) -> Iterator[Server]:
    """`railsea serve` (one threaded worker) on the `app` fixture's freshly reset database."""
    # Without Redis: the page must get its alerts from the in-process wake-ups.
    with serve_process(
        database.url,
        workers=1,
        threads=8,
        env={"RAILSEA_REDIS_URL": ""},
        log=tmp_path / "server.log",
        timeout_s=START_TIMEOUT_S,
        admin_token=ADMIN_TOKEN,
    ) as url:
        yield Server(url)


# --- the scenario through the API -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Tokens:
    supervisor: str
    forwarder: str
    operator: str


def make_keys(server: Server) -> Tokens:
    def key(**body: Any) -> str:
        token: str = server.ok("POST", "/api/v1/keys", body)["token"]
        return token

    return Tokens(
        supervisor=key(name="Guangzhou customs", role="supervisor", offices=["CN-GUANGZHOU"]),
        forwarder=key(name="Pearl Forwarding", role="forwarder", party="PEARLFWD"),
        operator=key(name="Xijiang terminals", role="operator", nodes=["CNSJQ", "CNFOS", "CNNSA"]),
    )


def iso(moment: datetime) -> str:
    return moment.isoformat()


def declare(server: Server, tokens: Tokens, reference: str, boxes: list[tuple[str, str]]) -> None:
    """An import from Foshan Sanshui to Nansha by barge (inspected once, at Nansha)."""
    body = {
        "reference": reference,
        "direction": "import",
        "origin": "CNSJQ",
        "destination": "CNNSA",
        "itinerary": ["CNSJQ", "CNFOS", "CNNSA"],
        "deadline": iso(datetime.now(UTC) + timedelta(days=3)),
        "containers": [
            {"number": box, "seals": [{"number": seal, "type": "bolt", "source": "customs"}]} for box, seal in boxes
        ],
    }
    server.ok("POST", "/api/v1/declarations", body, tokens.forwarder)


def transfer(server: Server, tokens: Tokens, box: str, node: str, activity: str, seals: list[tuple[str, str]]) -> Any:
    """What the operator at `node` registers, now (after the declaration, as in real life)."""
    body = {
        "container": box,
        "node": node,
        "event_time": iso(datetime.now(UTC)),
        "activity": activity,
        "from_mode": None if activity == "depart" else "barge",
        "to_mode": None if activity == "arrive" else "barge",
        "seals": [{"number": n, "condition": c} for n, c in seals],
    }
    return server.ok("POST", "/api/v1/transfers", body, tokens.operator)


def background(server: Server, tokens: Tokens) -> str:
    """Containers in every state before the page opens, one with an open alert; returns that container."""
    moving, waiting, cleared, declared, broken = (
        number(o, 410_000 + i) for i, o in enumerate(("MSKU", "TGHU", "OOLU", "TCNU", "HLXU"))
    )
    boxes = [(box, f"CN-{box[4:10]}") for box in (moving, waiting, cleared, declared, broken)]
    declare(server, tokens, "PRD-2026-0001", boxes)
    seal = dict(boxes)
    for box in (moving, waiting, cleared):
        transfer(server, tokens, box, "CNSJQ", "depart", [(seal[box], "intact")])
        transfer(server, tokens, box, "CNFOS", "transship", [(seal[box], "intact")])
    for box in (waiting, cleared):
        assert transfer(server, tokens, box, "CNNSA", "arrive", [(seal[box], "intact")])["decision"] == "inspect"
    server.ok(
        "POST", "/api/v1/inspections", {"container": cleared, "node": "CNNSA", "result": "cleared"}, tokens.supervisor
    )
    raised = transfer(server, tokens, broken, "CNSJQ", "depart", [(seal[broken], "broken")])
    assert raised["alert_id"] is not None, raised
    return broken


# --- the browser ----------------------------------------------------------------------------------------------------


def sign_in(page: Page, token: str, role: str) -> None:
    page.get_by_label("API token").fill(token)
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#role-badge")).to_contain_text(role, timeout=UI_TIMEOUT_MS)
    expect(page.locator("#stream-status")).to_have_attribute("data-state", "live", timeout=UI_TIMEOUT_MS)


def alert_item(page: Page, box: str) -> Any:
    return page.locator("#alert-list li", has_text=box)


@pytest.mark.browser
def test_dashboard_signs_in_maps_streams_alerts_and_shows_a_timeline(server: Server, database: TestDatabase) -> None:
    tokens = make_keys(server)
    earlier = background(server, tokens)
    attempted: list[str] = []
    outside: list[str] = []
    page_errors: list[str] = []

    def guard(route: Route) -> None:
        url = route.request.url
        attempted.append(url)
        if url == server.url or url.startswith(server.url + "/"):
            route.continue_()
        else:
            outside.append(url)
            route.abort()

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(
                viewport={"width": 1440, "height": 900}, locale="en-GB", timezone_id="Asia/Hong_Kong"
            )
            try:
                page = context.new_page()
                page.on("pageerror", lambda error: page_errors.append(str(error)))
                page.route("**/*", guard)
                page.goto(server.url + "/")

                # The network is public: drawn before anyone signs in, on a basemap from world-atlas.
                expect(page.locator("#map")).to_have_attribute("data-basemap", "ready", timeout=UI_TIMEOUT_MS)
                # (No wait_for_function: the page's Content-Security-Policy forbids the eval it needs.)
                expect(page.locator("#map")).not_to_have_attribute("data-nodes", "0", timeout=UI_TIMEOUT_MS)
                assert page.locator("#map path.node-marker").count() >= 40
                assert int(page.locator("#map").get_attribute("data-nodes") or 0) >= 40
                assert page.locator("#map path.leg-line").count() >= 100

                # A wrong token is refused with a message; the supervisor's is accepted.
                page.get_by_label("API token").fill("not-a-token")
                page.get_by_role("button", name="Sign in").click()
                expect(page.locator("#session-error")).to_contain_text("unknown or revoked", timeout=UI_TIMEOUT_MS)
                sign_in(page, tokens.supervisor, "Customs supervisor")

                # Loaded at sign-in: the earlier alert, and containers on the map coloured by status.
                expect(alert_item(page, earlier)).to_contain_text("seal_broken", timeout=UI_TIMEOUT_MS)
                expect(page.locator('[data-kpi="released"]')).to_have_text("1")
                expect(page.locator('[data-kpi="awaiting_inspection"]')).to_have_text("1")
                assert page.locator("#map path.container-marker").count() >= 4

                # Live: declared, moved and read with a wrong seal while the page is open.
                declare(server, tokens, "PRD-2026-0002", [(CONTAINER, SEAL)])
                transfer(server, tokens, CONTAINER, "CNSJQ", "depart", [(SEAL, "intact")])
                transfer(server, tokens, CONTAINER, "CNFOS", "transship", [(SEAL, "intact")])
                raised = transfer(server, tokens, CONTAINER, "CNNSA", "arrive", [("CN-305439", "intact")])
                assert raised["decision"] == "reinspect", raised
                assert "seal_mismatch" in raised["reasons"], raised
                live = alert_item(page, CONTAINER)
                expect(live).to_contain_text(CONTAINER, timeout=LIVE_TIMEOUT_MS)
                expect(live).to_contain_text("CNNSA")
                expect(page.locator("#alert-list li").first).to_contain_text(CONTAINER)  # newest on top

                # The supervisor acknowledges it with the button...
                live.get_by_role("button", name="Acknowledge").click()
                expect(live).to_contain_text("acknowledged", timeout=UI_TIMEOUT_MS)
                acknowledged = server.ok("GET", f"/api/v1/alerts?container={CONTAINER}", status=200)["items"]
                assert [a["status"] for a in acknowledged] == ["acknowledged"]

                # ...and resolves the earlier one with a note.
                old = alert_item(page, earlier)
                old.get_by_role("button", name="Resolve").click()
                old.get_by_label("Resolution note").fill("Seal replaced under supervision at Sanshui")
                old.locator("form").get_by_role("button", name="Resolve").click()
                expect(old).to_contain_text("resolved", timeout=UI_TIMEOUT_MS)
                resolved = server.ok("GET", f"/api/v1/alerts?container={earlier}", status=200)["items"]
                assert [a["status"] for a in resolved] == ["resolved"]

                # The container search: state, seals, alerts, timeline and track.
                page.get_by_label("Container number").fill(CONTAINER.lower())
                page.get_by_role("button", name="Look up").click()
                detail = page.locator("#container-detail")
                expect(detail).to_contain_text("Held", timeout=UI_TIMEOUT_MS)
                expect(detail).to_contain_text(SEAL)
                expect(detail).to_contain_text("Nansha")
                timeline = detail.locator("ol.timeline > li")
                expect(timeline).to_have_count(4)  # declared, depart, transship, arrive
                expect(timeline.last).to_contain_text("CNNSA")
                expect(timeline.last).to_contain_text("reinspect")
                expect(timeline.last).to_contain_text("seal mismatch")
                expect(detail).to_contain_text("CNSJQ")
                expect(detail).to_contain_text("CNFOS")
                expect(page.locator("#map")).to_have_attribute("data-track", "3", timeout=UI_TIMEOUT_MS)
                page.wait_for_timeout(1200)  # the map's fly-to animation

                ARTIFACTS.mkdir(exist_ok=True)
                page.screenshot(path=str(ARTIFACTS / f"dashboard-{database.backend}.png"))

                # Clearance analytics: the supervisor's charts for Nansha, drawn from the API's figures.
                clearance = page.locator("#clearance-panel")
                expect(clearance).to_be_visible()
                page.locator("#clearance-node").select_option("CNNSA")
                expect(clearance).to_have_attribute("data-state", "ready", timeout=UI_TIMEOUT_MS)
                expect(clearance.locator("svg.chart").first).to_be_visible()
                expect(clearance.locator("svg.chart rect.bar").first).to_be_attached()
                clearance.scroll_into_view_if_needed()
                clearance.screenshot(path=str(ARTIFACTS / f"dashboard-clearance-{database.backend}.png"))

                # A forwarder sees its container's alert, read-only.
                page.get_by_role("button", name="Sign out").click()
                expect(page.locator("#stream-status")).to_have_attribute("data-state", "offline")
                expect(page.locator("#alert-list li")).to_have_count(0)
                sign_in(page, tokens.forwarder, "read-only")
                expect(page.locator("#clearance-panel")).to_be_hidden()
                expect(alert_item(page, CONTAINER)).to_contain_text("acknowledged", timeout=UI_TIMEOUT_MS)
                expect(page.locator("#alert-list button[data-action]")).to_have_count(0)
            finally:
                context.close()
        finally:
            browser.close()

    assert attempted, "the route guard saw no request"
    assert outside == [], f"the page tried to leave the server: {outside}"
    assert page_errors == [], page_errors


# --- the page and its files, without a browser ----------------------------------------------------------------------


def test_dashboard_page_references_only_local_files(client: FlaskClient) -> None:
    response = client.get("/")
    assert response.status_code == 200
    assert "default-src 'self'" in response.headers["Content-Security-Policy"]
    html = response.get_data(as_text=True)
    assert "http://" not in html
    assert "https://" not in html
    for reference in re.findall(r'\s(?:src|href|data-basemap-url)="([^"]+)"', html):
        assert reference.startswith(("/", "#", "data:")), reference
        if reference.startswith("/"):
            with client.get(reference) as asset:
                assert asset.status_code == 200, reference


VENDOR = {
    "/vendor/leaflet/dist/leaflet.js": 200,
    "/vendor/leaflet/dist/leaflet.css": 200,
    "/vendor/leaflet/dist/images/layers.png": 200,
    "/vendor/world-atlas/countries-50m.json": 200,
    "/vendor/world-atlas/countries-110m.json": 200,
    "/vendor/topojson-client/dist/topojson-client.min.js": 200,
    "/vendor/leaflet/package.json": 404,
    "/vendor/world-atlas/countries-10m.json": 404,
    "/vendor/commander/index.js": 404,
    "/vendor/swagger-ui-dist/package.json": 404,
    "/vendor/leaflet/dist/../package.json": 404,
    "/vendor/leaflet/dist/%2e%2e/%2e%2e/leaflet/package.json": 404,
}


def test_vendor_serves_only_whitelisted_files(client: FlaskClient) -> None:
    got = {}
    for path in VENDOR:
        with client.get(path) as response:
            got[path] = response.status_code
    assert got == VENDOR
