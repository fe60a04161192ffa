"""The dashboard in headless Chromium, served by a real subprocess while another process runs the study.

As in ``test_report_browser.py`` (whose DevTools client this uses), the test
skips without Chromium unless ``HPT_ASYNC_REQUIRE_BROWSER=1``; screenshots go
to ``$HPT_ASYNC_TEST_ARTIFACTS``.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import anyio
import pytest
from test_dashboard import _get, start_dashboard, stop
from test_report_browser import DevTools, _require_chromium

import hpt_async as hpt

HOSTILE = "<img src=x onerror=alert(1)>\"'&<script>alert(2)</script>"
HOSTILE_CHOICE = "<script>alert(3)</script>"
HOSTILE_ERROR = '<b>boom</b> & "quoted" <img src=y onerror=alert(4)>'
PARETO = "two-objectives"
TIMEOUT = 90.0


def _space() -> dict[str, Any]:
    return {
        "lr": hpt.Float(1e-4, 1e-1, log=True),
        "layers": hpt.Int(1, 4),
        "optimizer": hpt.Choice(["adam", HOSTILE_CHOICE]),
    }


async def _write(url: str, stop_file: str) -> None:
    """The other process: a study of two objectives, then a hostile study that runs until ``stop_file`` exists."""

    def two(trial: hpt.Trial) -> tuple[float, float]:
        lr = trial.params["lr"]
        return (lr * 100, 1.0 / (1 + trial.params["layers"]) + (lr * 50) ** 0.5)

    await hpt.Tuner(
        two,
        _space(),
        direction=("minimize", "minimize"),
        storage=url,
        study=PARETO,
        max_trials=30,
        seed=1,
        loggers=[],
        strategy="random",
    ).run()

    async def objective(trial: hpt.Trial) -> float:
        trial.set_user_attr("note", HOSTILE)
        base = abs(trial.params["lr"] - 0.01) * 10 + 0.1 * trial.params["layers"]
        for step in range(4):
            await anyio.sleep(0.08)
            await trial.report(base + 0.5**step, step=step)
        if trial.number % 7 == 3:
            raise RuntimeError(HOSTILE_ERROR)
        return base

    tuner = hpt.Tuner(
        objective,
        _space(),
        storage=url,
        study=HOSTILE,
        max_trials=100_000,
        concurrency=3,
        seed=2,
        fail_fast=False,
        loggers=[],
        strategy="random",
    )
    async with anyio.create_task_group() as tg:
        tg.start_soon(tuner.run)
        while not os.path.exists(stop_file):
            await anyio.sleep(0.1)
        tg.cancel_scope.cancel()


CHARTS = """
JSON.stringify(Array.from(document.querySelectorAll(".chart-card")).map(function (card) {
  var svg = card.querySelector("svg.chart");
  var box = svg ? svg.getBoundingClientRect() : {width: 0, height: 0};
  return {
    chart: card.getAttribute("data-chart"),
    drawn: card.hasAttribute("data-drawn"),
    shapes: svg ? svg.querySelectorAll("path, circle, rect, line").length : 0,
    marks: svg ? svg.querySelectorAll("[data-tip]").length : 0,
    width: box.width,
    height: box.height
  };
}))
"""

BADGE_SHOWN = 'JSON.stringify(getComputedStyle(document.getElementById("running-badge")).display !== "none")'

SAFETY = """
JSON.stringify({
  imgs: document.querySelectorAll("img").length,
  scripts: document.scripts.length,
  bold: document.querySelectorAll("main b:not([id]):not([data-count])").length,
  title: document.title,
  text: document.body.innerText
})
"""


class Page:
    """One browser tab, with helpers to navigate, evaluate and wait."""

    def __init__(self, browser: DevTools) -> None:
        self.browser = browser
        target = browser.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = browser.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            browser.send(f"{domain}.enable", session=self.session)
        self.resize(1100, 900)

    def resize(self, width: int, height: int) -> None:
        self.browser.send(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
            session=self.session,
        )

    def go(self, url: str | None = None, *, click: str | None = None) -> None:
        """Navigate to ``url``, or click the link ``click`` (a CSS selector); return once the page has loaded."""
        before = sum(1 for e in self.browser.events if e.get("method") == "Page.loadEventFired")
        if url is not None:
            self.browser.send("Page.navigate", {"url": url}, session=self.session)
        else:
            self.js(f"JSON.stringify(document.querySelector({json.dumps(click)}).click() || true)")
        self.until(
            lambda: sum(1 for e in self.browser.events if e.get("method") == "Page.loadEventFired") > before,
            "the page to load",
        )

    def js(self, expression: str) -> Any:
        result = self.browser.send(
            "Runtime.evaluate", {"expression": expression, "returnByValue": True}, session=self.session
        )
        assert "exceptionDetails" not in result, result
        return json.loads(result["result"]["value"])

    def until(self, check: Any, what: str) -> Any:
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            got = check()
            if got:
                return got
            time.sleep(0.1)
        raise AssertionError(f"timed out waiting for {what}")

    def screenshot(self, path: Path, *, height: int | None = None) -> bytes:
        """The whole page (or its top ``height`` pixels) as PNG, written to ``path``."""
        full = int(self.js("JSON.stringify(document.documentElement.scrollHeight)"))
        height = min(height or full, full)
        self.resize(1100, height)
        shot = self.browser.send(
            "Page.captureScreenshot",
            {"format": "png", "clip": {"x": 0, "y": 0, "width": 1100, "height": height, "scale": 1}},
            session=self.session,
        )
        self.resize(1100, 900)
        png = base64.b64decode(shot["data"])
        path.write_bytes(png)
        return png


@pytest.fixture
def artifacts(tmp_path: Path) -> Path:
    root = os.environ.get("HPT_ASYNC_TEST_ARTIFACTS")
    path = Path(root) if root else tmp_path / "artifacts"
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_the_dashboard_follows_a_running_study_in_headless_chromium(
    tmp_path: Path, artifacts: Path, backend: str, request: pytest.FixtureRequest
) -> None:
    exe = _require_chromium()
    db = tmp_path / "live.db"
    # PostgreSQL: a schema of this test's own on the test server (the tests skip without one, unless required).
    url = f"sqlite:///{db}" if backend == "sqlite" else request.getfixturevalue("postgres_url")
    shot = "" if backend == "sqlite" else "-postgresql"
    stop_file = tmp_path / "stop"
    tests = Path(__file__).resolve().parent
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tests.parent), str(tests)])}
    writer = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import anyio, test_dashboard_browser as t; anyio.run(t._write, {url!r}, {str(stop_file)!r})",
        ],
        cwd=tests,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    server = None
    browser = None
    try:
        deadline = time.monotonic() + TIMEOUT
        while backend == "sqlite" and not db.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        server, address = start_dashboard(url)

        def counts() -> dict[str, Any]:
            listing = json.loads(_get(address + "api/studies")[2])
            return {s["name"]: s for s in listing["studies"]}

        # Enough finished trials for every chart (importance needs eight), while the study still runs.
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            found = counts()
            if HOSTILE in found and found[HOSTILE]["counts"].get("complete", 0) >= 10:
                break
            time.sleep(0.2)
        else:
            raise AssertionError(f"the study did not start: {writer.stderr}")
        assert found[HOSTILE]["running"], "the study ended before the browser could watch it"

        browser = DevTools(exe, tmp_path / "profile", artifacts / f"dashboard-chromium{shot}.log")
        page = Page(browser)

        # The list of studies: names shown as text.
        page.go(address)
        page.until(lambda: page.js('JSON.stringify(document.getElementById("live").textContent === "live")'), "live")
        safety = page.js(SAFETY)
        assert HOSTILE in safety["text"] and PARETO in safety["text"]
        assert safety["imgs"] == 0 and safety["scripts"] == 1

        # The study's page: every chart drawn, the table filled, names escaped.
        page.go(address + "study?s=" + quote(HOSTILE, safe=""))
        page.js("JSON.stringify(window.__sameDocument = true)")
        charts = page.until(
            lambda: (c := page.js(CHARTS)) and all(x["drawn"] for x in c) and c,
            "every chart to be drawn",
        )
        assert [c["chart"] for c in charts] == [
            "history",
            "parallel",
            "importance",
            "slices",
            "intermediate",
            "timeline",
        ]
        for c in charts:
            assert c["shapes"] > 10 and c["marks"] > 0, c
            assert c["width"] > 500 and c["height"] > 100, c
        assert page.js(BADGE_SHOWN), "the running badge of a running study"
        safety = page.js(SAFETY)
        assert HOSTILE in safety["title"] and HOSTILE in safety["text"]
        assert safety["imgs"] == 0 and safety["scripts"] == 1 and safety["bold"] == 0
        page.js('JSON.stringify(document.getElementById("filter-text").value = "alert(3)")')
        page.js('JSON.stringify(document.getElementById("filter-text").dispatchEvent(new Event("input")))')
        page.until(lambda: HOSTILE_CHOICE in page.js(SAFETY)["text"], "the hostile choice in the filtered table")

        # Live: the table's count rises as trials end in the other process, without a reload.
        page.js('JSON.stringify(document.getElementById("filter-text").value = "")')
        page.js('JSON.stringify(document.getElementById("filter-text").dispatchEvent(new Event("input")))')
        count = lambda: int(page.js('JSON.stringify(document.getElementById("trial-count").textContent)') or 0)  # noqa: E731
        first = page.until(lambda: count() >= 10 and count(), "the table")
        page.until(lambda: count() > first, "the trial count to rise")
        assert page.js("JSON.stringify(window.__sameDocument === true)")
        total = page.js('JSON.stringify(document.getElementById("trial-total").textContent)')
        assert int(total) > first
        png = page.screenshot(artifacts / f"dashboard{shot}.png")
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 50_000
        page.screenshot(artifacts / f"dashboard-top{shot}.png", height=1250)

        # A failed trial's page: parameters, reports, user attributes, the error as text.
        failed = json.loads(_get(address + "api/trials?" + f"s={quote(HOSTILE, safe='')}&state=failed")[2])
        number = failed["rows"][0]["number"]
        link = page.js(
            'JSON.stringify((function () { var t = document.getElementById("filter-state"); t.value = "failed";'
            ' t.dispatchEvent(new Event("change")); return true; })())'
        )
        assert link
        page.until(
            lambda: page.js(f"JSON.stringify(!!document.querySelector('#trial-table a[href$=\"&n={number}\"]'))"),
            "the failed trial's link",
        )
        page.go(click=f'#trial-table a[href$="&n={number}"]')
        assert page.js('JSON.stringify(document.body.getAttribute("data-page"))') == "trial"
        detail = page.js(
            'JSON.stringify({error: document.querySelector("#error .error").textContent,'
            ' errorMarkup: document.querySelectorAll("#error b, #error img").length,'
            ' params: document.querySelector("#params").innerText,'
            ' attrs: document.querySelector("#user-attrs").innerText,'
            ' curve: document.querySelectorAll("#curve svg circle").length,'
            ' facts: document.querySelector("#facts").innerText})'
        )
        assert HOSTILE_ERROR in detail["error"] and detail["errorMarkup"] == 0
        assert "lr" in detail["params"] and HOSTILE in detail["attrs"]
        assert detail["curve"] == 4 and "failed" in detail["facts"]
        page.screenshot(artifacts / f"dashboard-trial{shot}.png")

        # A study of two objectives shows its Pareto front.
        page.go(address + "study?s=" + quote(PARETO))
        charts = page.until(lambda: (c := page.js(CHARTS)) and all(x["drawn"] for x in c) and c, "the Pareto chart")
        pareto = next(c for c in charts if c["chart"] == "pareto")
        assert not page.js(BADGE_SHOWN), "a finished study shows no running badge"
        assert pareto["shapes"] > 30 and pareto["marks"] >= 30
        page.screenshot(artifacts / f"dashboard-pareto{shot}.png")
        events = list(browser.events)
    finally:
        if browser is not None:
            browser.close()
        stop_file.touch()
        if writer.poll() is None:
            writer.wait(timeout=120)
        if server is not None:
            err = stop(server)
            assert "Traceback" not in err, err

    assert writer.returncode == 0, writer.stderr.read() if writer.stderr else ""
    errors = [
        e["params"]
        for e in events
        if (e.get("method") == "Runtime.consoleAPICalled" and e["params"].get("type") in ("error", "assert", "warning"))
        or e.get("method") == "Runtime.exceptionThrown"
        or (e.get("method") == "Log.entryAdded" and e["params"]["entry"].get("level") in ("error", "warning"))
    ]
    assert errors == [], errors
    assert not [e for e in events if e.get("method") == "Page.javascriptDialogOpening"]
    requests = [e["params"]["request"]["url"] for e in events if e.get("method") == "Network.requestWillBeSent"]
    assert any(u.startswith(address + "api/events") for u in requests)
    assert requests and all(u.startswith((address, "data:", "about:")) for u in requests), requests
    if backend == "sqlite":
        # The read-only server left no -wal or -shm file beside the database (artifacts/ is the screenshots' home).
        assert sorted(name for name in os.listdir(tmp_path) if name != "artifacts") == ["live.db", "profile", "stop"]
