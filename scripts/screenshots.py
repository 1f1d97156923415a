"""The README's dashboard screenshots, drawn from the demo data: docs/dashboard.png and docs/dashboard-clearance.png.

Run from the repository root after `scripts/setup.sh test` (Playwright, Debian's chromium and the npm assets):

    .venv/bin/python scripts/screenshots.py

It builds a throwaway SpatiaLite database in a temporary directory (`railsea init`, then `railsea demo`: the demo
consignments, one seal break and four weeks of history, a few hundred containers), serves it with `railsea serve` on a
free loopback port, signs in on the dashboard as the demo's customs supervisor in Debian's chromium (driven by
Playwright; every request that would leave the server is aborted and fails the run) and writes the two images:

- docs/dashboard.png: the whole page at 1440×900 once the map, the live alerts and the held container's timeline and
  track are drawn;
- docs/dashboard-clearance.png: the Clearance panel on the inspection node with the most transfers in the period.

Nothing else is written outside the temporary directory: `railsea demo` writes the demo keys to
`<instance folder>/demo-tokens.json`, and this script moves the app's instance folder into the temporary directory, so
the repository's instance/ (and the keys `make run` left there) are never touched. The images depend on the clock (the
demo's history ends now), so running it again changes them a little.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # `bench` is not installed: it is importable from the repository root only

from playwright.sync_api import Page, Route, ViewportSize, expect, sync_playwright  # noqa: E402

from bench.common import CHROMIUM, CHROMIUM_ARGS, Server, serve_process  # noqa: E402
from fixtures.demo import CONSIGNMENTS  # noqa: E402
from tracking.iso6346 import check_digit  # noqa: E402

DOCS = ROOT / "docs"
DASHBOARD_PNG = DOCS / "dashboard.png"
CLEARANCE_PNG = DOCS / "dashboard-clearance.png"
VIEWPORT: ViewportSize = {"width": 1440, "height": 900}
CLI_TIMEOUT_S = 900.0  # the demo's history is a few hundred journeys through the domain; slow on a busy machine
START_TIMEOUT_S = 60.0
UI_TIMEOUT_MS = 30_000
FLY_TO_MS = 1500  # the map's fly-to animation when a track is drawn
CLEARANCE_DAYS = 28  # the dashboard's clearance period (dashboard.js), today included

# `railsea` with the app's instance folder moved to argv[1] (the app has no setting for it; `demo` writes its keys
# there). The commands are the real ones: `python -c RAILSEA_CLI <instance> init` is `railsea init`.
RAILSEA_CLI = """
import sys
from api import create_app
from api.cli import cli

instance = sys.argv.pop(1)

def factory():
    app = create_app()
    app.instance_path = instance
    return app

cli.create_app = factory
cli.main(sys.argv[1:], prog_name="railsea")
"""


def railsea(instance: Path, env: Mapping[str, str], *args: str) -> str:
    """Run a `railsea` command with the instance folder at `instance`; returns its output, or exits with it."""
    command = [sys.executable, "-c", RAILSEA_CLI, str(instance), *args]
    started = time.monotonic()
    result = subprocess.run(
        command, env=dict(env), cwd=ROOT, capture_output=True, text=True, timeout=CLI_TIMEOUT_S, check=False
    )
    if result.returncode != 0:
        sys.exit(f"railsea {' '.join(args)} failed ({result.returncode}):\n{result.stdout}{result.stderr}")
    print(f"==> railsea {' '.join(args)} ({time.monotonic() - started:.0f} s)", flush=True)
    return result.stdout


def held_container() -> str:
    """The demo's seal break: the second box of its sea-rail import, held at Nansha with a mismatched bolt seal."""
    body = CONSIGNMENTS[0][3][1]
    return f"{body}{check_digit(body)}"


def busiest_node(server: Server, token: str) -> str:
    """The supervisor's node with the fullest clearance charts over the dashboard's period (its last four weeks): an
    inspection node (clearance times to draw) with the most transfers, then the most re-inspections."""
    today = datetime.now(UTC).date()
    start = today - timedelta(days=CLEARANCE_DAYS - 1)
    status, report = server.call("GET", f"/api/v1/analytics/clearance?from={start}&to={today}", token=token)
    if status != 200:
        sys.exit(f"the clearance figures: HTTP {status} {report}")
    ranked = sorted(
        report["totals"],
        key=lambda t: (t["clearance_h"]["count"] > 0, t["transfers"], t["reinspections"]),
        reverse=True,
    )
    for totals in ranked[:5]:
        print(
            f"    {totals['node']:10} {totals['transfers']:4} transfers, {totals['reinspections']:3} re-inspections, "
            f"{totals['clearance_h']['count']:3} clearances",
            flush=True,
        )
    if not ranked:
        sys.exit("the demo left no transfers in the supervisor's scope")
    return str(ranked[0]["node"])


def shoot(url: str, token: str, node: str, container: str) -> None:
    outside: list[str] = []
    page_errors: list[str] = []

    def guard(route: Route) -> None:
        if route.request.url == url or route.request.url.startswith(url + "/"):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport=VIEWPORT, locale="en-GB", timezone_id="Asia/Hong_Kong")
            try:
                page = context.new_page()
                page.on("pageerror", lambda error: page_errors.append(str(error)))
                page.route("**/*", guard)
                page.goto(url + "/")
                draw(page, token, node, container)
            finally:
                context.close()
        finally:
            browser.close()
    if outside or page_errors:
        sys.exit(f"the page misbehaved: requests leaving the server {outside}, errors {page_errors}")


def draw(page: Page, token: str, node: str, container: str) -> None:
    # The network and the basemap, drawn before anyone signs in.
    map_ = page.locator("#map")
    expect(map_).to_have_attribute("data-basemap", "ready", timeout=UI_TIMEOUT_MS)
    expect(map_).not_to_have_attribute("data-nodes", "0", timeout=UI_TIMEOUT_MS)

    # The supervisor: containers on the map, open alerts, the live stream.
    page.get_by_label("API token").fill(token)
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#role-badge")).to_contain_text("Customs supervisor", timeout=UI_TIMEOUT_MS)
    expect(page.locator("#stream-status")).to_have_attribute("data-state", "live", timeout=UI_TIMEOUT_MS)
    expect(page.locator("#alert-list li", has_text=container).first).to_be_visible(timeout=UI_TIMEOUT_MS)
    expect(map_).not_to_have_attribute("data-containers", "0", timeout=UI_TIMEOUT_MS)

    # The held box: its seals, alert, timeline and track.
    page.get_by_label("Container number").fill(container)
    page.get_by_role("button", name="Look up").click()
    detail = page.locator("#container-detail")
    expect(detail).to_contain_text(container, timeout=UI_TIMEOUT_MS)
    expect(detail.locator("ol.timeline > li").last).to_contain_text("reinspect", timeout=UI_TIMEOUT_MS)
    expect(map_).not_to_have_attribute("data-track", "0", timeout=UI_TIMEOUT_MS)
    clearance = page.locator("#clearance-panel")
    expect(clearance).to_have_attribute("data-state", "ready", timeout=UI_TIMEOUT_MS)
    page.wait_for_timeout(FLY_TO_MS)
    page.screenshot(path=str(DASHBOARD_PNG))
    print(f"==> wrote {DASHBOARD_PNG.relative_to(ROOT)}", flush=True)

    # The clearance panel on the busiest inspection node.
    select = page.locator("#clearance-node")
    if select.input_value() != node:
        select.select_option(node)
    expect(clearance).to_have_attribute("data-state", "ready", timeout=UI_TIMEOUT_MS)
    expect(page.locator("#clearance-status")).to_contain_text(node, timeout=UI_TIMEOUT_MS)
    expect(clearance.locator("svg.chart")).to_have_count(3, timeout=UI_TIMEOUT_MS)
    clearance.scroll_into_view_if_needed()
    page.wait_for_timeout(300)
    clearance.screenshot(path=str(CLEARANCE_PNG))
    print(f"==> wrote {CLEARANCE_PNG.relative_to(ROOT)} ({node})", flush=True)


def main() -> None:
    admin_token = "rs_admin_" + secrets.token_urlsafe(24)
    with tempfile.TemporaryDirectory(prefix="railsea-screenshots-") as name:
        work = Path(name)
        instance = work / "instance"
        instance.mkdir()
        database_url = f"sqlite:///{work / 'demo.db'}"
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("RAILSEA_")},
            "RAILSEA_DATABASE_URL": database_url,
            "RAILSEA_ADMIN_TOKEN": admin_token,
        }
        railsea(instance, env, "init")
        railsea(instance, env, "demo")
        tokens: dict[str, Any] = json.loads((instance / "demo-tokens.json").read_text(encoding="utf-8"))
        supervisor = str(tokens["supervisor"])

        # One threaded worker, no Redis: alerts reach the page through the in-process wake-ups.
        with serve_process(
            database_url,
            workers=1,
            threads=8,
            env={"RAILSEA_REDIS_URL": ""},
            log=work / "server.log",
            timeout_s=START_TIMEOUT_S,
            admin_token=admin_token,
        ) as url:
            print(f"==> serving the demo on {url}", flush=True)
            node = busiest_node(Server(url, admin_token), supervisor)
            DOCS.mkdir(exist_ok=True)
            shoot(url, supervisor, node, held_container())


if __name__ == "__main__":
    main()
