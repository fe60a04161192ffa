"""The report of a real study, opened in headless Chromium.

Chromium is driven through the DevTools protocol over ``--remote-debugging-pipe``
(file descriptors 3 and 4, messages separated by NUL bytes), so the test needs
nothing but the browser itself.  It skips when no Chromium is installed, unless
``HPT_ASYNC_REQUIRE_BROWSER=1`` is set (as on CI), when it fails instead.  The
rendered page and its screenshot are kept in ``$HPT_ASYNC_TEST_ARTIFACTS``
(default: the test's temporary directory).
"""

from __future__ import annotations

import base64
import json
import os
import queue
import random
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import anyio
import pytest

import hpt_async as hpt
from hpt_async.report import BEST, CHART_NAMES, MO_CHART_NAMES, write_report

REQUIRE_ENV = "HPT_ASYNC_REQUIRE_BROWSER"
ARTIFACTS_ENV = "HPT_ASYNC_TEST_ARTIFACTS"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
    "--remote-debugging-pipe",
]
TIMEOUT = 60.0


def find_chromium() -> str | None:
    """The Chromium to use: ``$HPT_ASYNC_CHROMIUM``, Debian's ``/usr/bin/chromium``, or one on PATH."""
    for candidate in (os.environ.get("HPT_ASYNC_CHROMIUM"), "/usr/bin/chromium"):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return shutil.which("chromium") or shutil.which("chromium-browser")


class DevTools:
    """A Chromium process and a minimal DevTools protocol client over its debugging pipe."""

    def __init__(self, executable: str, profile: Path, log: Path) -> None:
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()
        # The browser reads commands on fd 3 and writes replies on fd 4: a small Python
        # launcher moves the pipe ends there, then becomes the browser.
        launcher = (
            "import os, sys\n"
            f"r, w = {to_browser_r}, {from_browser_w}\n"
            "a, b = os.dup(r), os.dup(w)\n"  # copies above 4, so that moving one end never clobbers the other
            "os.dup2(a, 3)\n"
            "os.dup2(b, 4)\n"
            "for fd in {a, b, r, w} - {3, 4}:\n"
            "    os.close(fd)\n"
            "os.set_inheritable(3, True)\n"
            "os.set_inheritable(4, True)\n"
            "os.execv(sys.argv[1], sys.argv[1:])\n"
        )
        self._log = open(log, "wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-c", launcher, executable, *FLAGS, f"--user-data-dir={profile}", "about:blank"],
            pass_fds=(to_browser_r, from_browser_w),
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=self._log,
        )
        os.close(to_browser_r)
        os.close(from_browser_w)
        self._next_id = 0
        self._replies: dict[int, dict[str, Any]] = {}
        self._events: queue.Queue[dict[str, Any]] = queue.Queue()
        self.events: list[dict[str, Any]] = []
        self._cond = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        buffer = b""
        while True:
            try:
                chunk = os.read(self._from_browser, 65536)
            except OSError:
                chunk = b""
            if not chunk:
                with self._cond:
                    self._cond.notify_all()
                return
            buffer += chunk
            while b"\0" in buffer:
                raw, buffer = buffer.split(b"\0", 1)
                message = json.loads(raw)
                with self._cond:
                    if "id" in message:
                        self._replies[message["id"]] = message
                    else:
                        self.events.append(message)
                    self._cond.notify_all()

    def send(self, method: str, params: dict[str, Any] | None = None, session: str | None = None) -> dict[str, Any]:
        """Send one command and wait for its result (an error reply raises)."""
        self._next_id += 1
        ident = self._next_id
        message: dict[str, Any] = {"id": ident, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + TIMEOUT
        with self._cond:
            while ident not in self._replies:
                left = deadline - time.monotonic()
                if left <= 0 or self.proc.poll() is not None:
                    raise TimeoutError(f"no reply to {method} (browser exit code {self.proc.poll()})")
                self._cond.wait(min(left, 0.5))
            reply = self._replies.pop(ident)
        if "error" in reply:
            raise RuntimeError(f"{method} failed: {reply['error']}")
        return reply.get("result", {})

    def wait_event(self, method: str, session: str) -> dict[str, Any]:
        """Wait for the first event named ``method`` of ``session``."""
        deadline = time.monotonic() + TIMEOUT
        with self._cond:
            while True:
                for event in self.events:
                    if event.get("method") == method and event.get("sessionId") == session:
                        return event
                left = deadline - time.monotonic()
                if left <= 0 or self.proc.poll() is not None:
                    raise TimeoutError(f"no {method} event")
                self._cond.wait(min(left, 0.5))

    def close(self) -> None:
        try:
            if self.proc.poll() is None:
                try:
                    self.send("Browser.close")
                except (OSError, TimeoutError, RuntimeError):
                    pass
                try:
                    self.proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
        finally:
            for fd in (self._to_browser, self._from_browser):
                try:
                    os.close(fd)
                except OSError:
                    pass
            self._log.close()


def _require_chromium() -> str:
    exe = find_chromium()
    if exe is None:
        message = "no Chromium found (install Debian's chromium package)"
        if os.environ.get(REQUIRE_ENV) == "1":
            pytest.fail(f"{message}, and {REQUIRE_ENV}=1 requires the browser test to run")
        pytest.skip(message)
    return exe


def test_a_missing_browser_skips_unless_required(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys.modules[__name__], "find_chromium", lambda: None)
    monkeypatch.delenv(REQUIRE_ENV, raising=False)
    with pytest.raises(pytest.skip.Exception):
        _require_chromium()
    monkeypatch.setenv(REQUIRE_ENV, "1")
    with pytest.raises(pytest.fail.Exception, match=REQUIRE_ENV):
        _require_chromium()


@pytest.fixture
def artifacts(tmp_path: Path) -> Path:
    """Where the page and the screenshot are kept."""
    root = os.environ.get(ARTIFACTS_ENV)
    path = Path(root) if root else tmp_path / "artifacts"
    path.mkdir(parents=True, exist_ok=True)
    return path


SPACE = {
    "lr": hpt.Float(1e-5, 1e-1, log=True),
    "layers": hpt.Int(1, 4),
    "optimizer": hpt.Choice(["adam", "sgd", "rmsprop"]),
    "units": hpt.Int(16, 256, log=True, when={"layers": [3, 4]}),
    "dropout": hpt.Float(0.0, 0.5),
}


async def objective(trial: hpt.Trial) -> float:
    p = trial.params
    rng = random.Random(trial.number)
    floor = 0.05 + 0.2 * (abs(p["lr"] - 3e-3) / 1e-1) ** 0.5 + 0.03 * p["layers"] + 0.1 * p["dropout"]
    floor += {"adam": 0.0, "sgd": 0.15, "rmsprop": 0.05}[p["optimizer"]]
    loss = 1.0
    for epoch in range(10):
        loss = floor + (1.0 - floor) * 0.7**epoch + 0.01 * rng.random()
        await anyio.sleep(0.002 + 0.004 * rng.random())
        await trial.report(loss, step=epoch)
    return loss


CHARTS_DRAWN = """
JSON.stringify(Array.from(document.querySelectorAll("svg.chart")).map(function (svg) {
  var box = svg.getBoundingClientRect();
  return {
    chart: svg.getAttribute("data-chart"),
    shapes: svg.querySelectorAll("path, circle, rect, line").length,
    marks: svg.querySelectorAll("[data-tip]").length,
    titles: svg.querySelectorAll("title").length,
    width: box.width,
    height: box.height
  };
}))
"""

FIRST_DOT = """
(function () {
  var dot = document.querySelector('svg[data-chart="history"] circle[data-tip]');
  dot.scrollIntoView({block: "center"});
  var box = dot.getBoundingClientRect();
  return JSON.stringify({x: box.left + box.width / 2, y: box.top + box.height / 2, tip: dot.getAttribute("data-tip")});
})()
"""


def test_the_report_renders_in_headless_chromium(tmp_path: Path, artifacts: Path) -> None:
    exe = _require_chromium()
    url = f"sqlite:///{tmp_path / 'browser.db'}"

    async def run() -> None:
        tuner = hpt.Tuner(
            objective,
            SPACE,
            storage=url,
            study="browser-demo",
            strategy="random",
            pruner=hpt.MedianPruner(warmup_steps=2, min_trials=5),
            max_trials=40,
            concurrency=4,
            seed=7,
            loggers=[],
        )
        await tuner.run()

    anyio.run(run, backend="asyncio")
    study = hpt.load_study(url, "browser-demo")
    assert study.count("pruned") > 0 and study.count("complete") >= 8
    page = write_report(study, artifacts / "report.html")

    browser = DevTools(exe, tmp_path / "profile", artifacts / "chromium.log")
    try:
        target = browser.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = browser.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            browser.send(f"{domain}.enable", session=session)
        browser.send(
            "Emulation.setDeviceMetricsOverride",
            {"width": 1040, "height": 900, "deviceScaleFactor": 1, "mobile": False},
            session=session,
        )
        browser.send("Page.navigate", {"url": page.resolve().as_uri()}, session=session)
        browser.wait_event("Page.loadEventFired", session)

        def evaluate(expression: str) -> Any:
            result = browser.send(
                "Runtime.evaluate", {"expression": expression, "returnByValue": True}, session=session
            )
            assert "exceptionDetails" not in result, result
            return json.loads(result["result"]["value"])

        charts = {c["chart"]: c for c in evaluate(CHARTS_DRAWN)}
        assert list(charts) == list(CHART_NAMES)
        for name, c in charts.items():
            assert c["shapes"] > 10 and c["marks"] > 0, (name, c)
            assert c["width"] > 500 and c["height"] > 150, (name, c)
            assert c["titles"] == 0, (name, c)  # the page script turned every <title> into a styled tooltip

        # Hovering a dot shows its tooltip.
        dot = evaluate(FIRST_DOT)
        browser.send("Input.dispatchMouseEvent", {"type": "mouseMoved", "x": dot["x"], "y": dot["y"]}, session=session)
        shown = evaluate(
            'JSON.stringify({hidden: document.getElementById("tip").hidden,'
            ' text: document.getElementById("tip").textContent})'
        )
        assert shown == {"hidden": False, "text": dot["tip"]} and shown["text"].startswith("trial ")
        browser.send("Input.dispatchMouseEvent", {"type": "mouseMoved", "x": 2, "y": 2}, session=session)
        evaluate("JSON.stringify(window.scrollTo(0, 0) || 0)")

        height = evaluate("JSON.stringify(document.documentElement.scrollHeight)")
        browser.send(
            "Emulation.setDeviceMetricsOverride",
            {"width": 1040, "height": int(height), "deviceScaleFactor": 1, "mobile": False},
            session=session,
        )
        shot = browser.send("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True}, session=session)
        png = base64.b64decode(shot["data"])
        (artifacts / "report.png").write_bytes(png)
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 50_000

        events = list(browser.events)
    finally:
        browser.close()

    errors = [
        e["params"]
        for e in events
        if (e.get("method") == "Runtime.consoleAPICalled" and e["params"].get("type") in ("error", "assert"))
        or e.get("method") == "Runtime.exceptionThrown"
        or (e.get("method") == "Log.entryAdded" and e["params"]["entry"].get("level") == "error")
    ]
    assert errors == [], errors
    requests = [e["params"]["request"]["url"] for e in events if e.get("method") == "Network.requestWillBeSent"]
    assert requests and all(u.startswith(("file:", "data:", "about:")) for u in requests), requests


# -- a study with several objectives and a constraint ----------------------------------------------

MO_SPACE = {"x": hpt.Float(0.0, 1.0), "y": hpt.Float(0.0, 1.0), "z": hpt.Float(0.0, 1.0)}


def _zdt1(trial: hpt.SyncTrial) -> tuple[float, float]:
    x, y, z = trial.params["x"], trial.params["y"], trial.params["z"]
    g = 1 + 4.5 * (y + z)
    trial.set_constraints([0.15 - x])  # feasible when x >= 0.15
    return x, g * (1 - (x / g) ** 0.5)


PARETO_DRAWN = """
(function () {
  var svg = document.querySelector('svg[data-chart="pareto"]');
  var front = Array.from(svg.querySelectorAll("circle[data-tip]")).filter(function (c) {
    return c.getAttribute("fill") === "BEST_COLOUR" && c.getAttribute("data-tip").indexOf("Pareto front") >= 0;
  });
  var crosses = Array.from(svg.querySelectorAll("path[data-tip]")).filter(function (p) {
    return p.getAttribute("data-tip").indexOf("infeasible") >= 0;
  });
  var hv = document.querySelector('svg[data-chart="hypervolume"]');
  var box = svg.getBoundingClientRect();
  return JSON.stringify({
    front: front.map(function (c) { return Number(c.getAttribute("data-tip").split(" ")[1]); }),
    crosses: crosses.length,
    hv_points: hv.querySelectorAll("circle[data-tip]").length,
    size: document.getElementById("front-size").textContent,
    visible: box.width > 500 && box.height > 200
  });
})()
""".replace("BEST_COLOUR", BEST)


def test_the_report_of_a_study_with_several_objectives_shows_its_front(tmp_path: Path, artifacts: Path) -> None:
    exe = _require_chromium()
    tuner = hpt.Tuner(_zdt1, MO_SPACE, directions=["minimize", "minimize"], metric_names=["f1", "f2"],
                      strategy="evolution", max_trials=60, seed=3, loggers=[])  # fmt: skip
    result = anyio.run(tuner.run, backend="asyncio")
    front = [t.number for t in result.best_trials]
    infeasible = [t.number for t in result.trials if not t.feasible]
    assert front and infeasible
    page = write_report(result, artifacts / "report-pareto.html")

    browser = DevTools(exe, tmp_path / "profile", artifacts / "chromium-pareto.log")
    try:
        target = browser.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = browser.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Runtime", "Log"):
            browser.send(f"{domain}.enable", session=session)
        browser.send(
            "Emulation.setDeviceMetricsOverride",
            {"width": 1040, "height": 900, "deviceScaleFactor": 1, "mobile": False},
            session=session,
        )
        browser.send("Page.navigate", {"url": page.resolve().as_uri()}, session=session)
        browser.wait_event("Page.loadEventFired", session)

        def evaluate(expression: str) -> Any:
            result = browser.send(
                "Runtime.evaluate", {"expression": expression, "returnByValue": True}, session=session
            )
            assert "exceptionDetails" not in result, result
            return json.loads(result["result"]["value"])

        charts = [c["chart"] for c in evaluate(CHARTS_DRAWN)]
        assert charts == [*MO_CHART_NAMES, *CHART_NAMES]
        drawn = evaluate(PARETO_DRAWN)
        assert sorted(drawn["front"]) == front  # exactly the feasible front is highlighted
        assert drawn["crosses"] == len(infeasible)  # every infeasible trial is marked
        assert drawn["hv_points"] == sum(1 for t in result.trials if t.feasible)
        assert drawn["size"] == f"{len(front)} trials" and drawn["visible"]
        shot = browser.send("Page.captureScreenshot", {"format": "png"}, session=session)
        (artifacts / "report-pareto.png").write_bytes(base64.b64decode(shot["data"]))
        events = list(browser.events)
    finally:
        browser.close()
    errors = [
        e["params"]
        for e in events
        if e.get("method") == "Runtime.exceptionThrown"
        or (e.get("method") == "Log.entryAdded" and e["params"]["entry"].get("level") == "error")
    ]
    assert errors == [], errors
