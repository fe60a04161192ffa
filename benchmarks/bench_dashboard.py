"""First chart and server memory: the hpt-async dashboard beside optuna-dashboard, on equal studies.

For each size, both studies are made (see ``_dashboard_data.py``), then each
server is started on its own file and, once it answers, headless Chromium
navigates to the study's page.  *First chart* is the time from the start of
the navigation to the moment the first chart is in the page with its marks
(measured in the page by a MutationObserver that the DevTools protocol
installs before the page loads, on the page's own clock).  The server's
resident memory (RSS, with its children) is sampled every 50 ms from its
start until every chart is drawn and then for two more seconds; the peak is
reported.  Each navigation is done twice per server in a fresh tab: the first
(cold: the study is read on this request, as optuna-dashboard does) and the
second (warm).  The hpt-async dashboard loads every study in the background
as it starts, so for it "cold" means the server had just started.  With
``--settle S`` the first navigation waits until the server has run for ``S``
seconds (the issue's "server already running"); it is still the first view
of the study in that server, so no chart is cached yet.

    python benchmarks/bench_dashboard.py --sizes 1000 10000 100000
    python benchmarks/bench_dashboard.py --sizes 100000 --parts   # the dashboard's reads alone
    python benchmarks/bench_dashboard.py --sizes 100000 --settle 10  # first view of a running server

Needs Chromium (``/usr/bin/chromium``), ``pip install -e '.[bench]'``.
The DevTools client is the one of ``tests/test_report_browser.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import psutil

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))
sys.path.insert(0, str(HERE))

from _dashboard_data import make_hpt, make_optuna  # noqa: E402
from test_report_browser import DevTools, find_chromium  # noqa: E402

# Recorded in the page: when the first chart with marks appears, and when all have (hpt-async only).
PROBE = """
(function () {
  window.__bench = {first: null, all: null};
  function check() {
    var b = window.__bench;
    if (b.first === null) {
      var ours = document.querySelector(".chart-card[data-drawn] svg.chart circle, "
        + ".chart-card[data-drawn] svg.chart path");
      var plotly = document.querySelector(".js-plotly-plot .scatterlayer .point");
      if (ours || plotly) { b.first = performance.now(); }
    }
    if (b.all === null) {
      var cards = document.querySelectorAll(".chart-card");
      if (cards.length && document.querySelectorAll(".chart-card[data-drawn]").length === cards.length) {
        b.all = performance.now();
      }
    }
  }
  new MutationObserver(check).observe(document, {childList: true, subtree: true, attributes: true});
})();
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Sampler:
    """Peak RSS of a process and its children, sampled every 50 ms in a thread."""

    def __init__(self, pid: int) -> None:
        self.proc = psutil.Process(pid)
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                rss = self.proc.memory_info().rss + sum(c.memory_info().rss for c in self.proc.children(True))
                self.peak = max(self.peak, rss)
            except psutil.Error:
                pass
            time.sleep(0.05)

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.peak


def wait_http(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                r.read()
            return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(url)


def navigate(browser: DevTools, url: str, *, all_charts: bool, timeout: float = 300) -> dict[str, float | None]:
    target = browser.send("Target.createTarget", {"url": "about:blank"})["targetId"]
    session = browser.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
    browser.send("Page.enable", session=session)
    browser.send("Runtime.enable", session=session)
    browser.send(
        "Emulation.setDeviceMetricsOverride",
        {"width": 1280, "height": 1000, "deviceScaleFactor": 1, "mobile": False},
        session=session,
    )
    browser.send("Page.addScriptToEvaluateOnNewDocument", {"source": PROBE}, session=session)
    browser.send("Page.navigate", {"url": url}, session=session)
    deadline = time.monotonic() + timeout
    result: dict[str, float | None] = {"first": None, "all": None}
    while time.monotonic() < deadline:
        try:
            reply = browser.send(
                "Runtime.evaluate",
                {"expression": "JSON.stringify(window.__bench || null)", "returnByValue": True},
                session=session,
            )
        except TimeoutError:
            continue  # the page's main thread is busy (drawing): ask again
        got = json.loads(reply["result"].get("value") or "null")
        if got and got["first"] is not None and (got["all"] is not None or not all_charts):
            result = got
            break
        time.sleep(0.05)
    browser.send("Target.closeTarget", {"targetId": target})
    return {k: (None if v is None else v / 1000) for k, v in result.items()}


def measure(kind: str, db: Path, browser: DevTools, timeout: float = 300, settle: float = 0.0) -> dict[str, Any]:
    port = free_port()
    env = dict(os.environ)
    if kind == "hpt-async":
        cmd = [sys.executable, "-m", "hpt_async.cli", "dashboard", "--storage", f"sqlite:///{db}", "--port", str(port)]
        page = f"http://127.0.0.1:{port}/study?s=bench"
    else:
        cmd = [str(Path(sys.executable).with_name("optuna-dashboard")), f"sqlite:///{db}", "--port", str(port), "-q"]
        page = f"http://127.0.0.1:{port}/dashboard/studies/1"
    server = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    sampler = Sampler(server.pid)
    started = time.monotonic()
    try:
        wait_http(f"http://127.0.0.1:{port}/")
        time.sleep(max(0.0, started + settle - time.monotonic()))
        cold = navigate(browser, page, all_charts=kind == "hpt-async", timeout=timeout)
        warm = navigate(browser, page, all_charts=kind == "hpt-async", timeout=timeout)
        time.sleep(2)
        idle_rss = psutil.Process(server.pid).memory_info().rss
    finally:
        peak = sampler.stop()
        server.terminate()
        server.wait(timeout=30)
    return {"cold": cold, "warm": warm, "peak_mb": peak / 2**20, "idle_mb": idle_rss / 2**20}


def reader_parts(url: str, repeats: int = 2) -> dict[str, float]:
    """Seconds (best of ``repeats``) of each read the dashboard makes of a study, and of decoding every record."""
    import anyio

    from hpt_async import open_storage

    async def run() -> dict[str, float]:
        storage = open_storage(url, read_only=True)
        best: dict[str, float] = {}

        def keep(name: str, started: float) -> None:
            best[name] = min(best.get(name, float("inf")), time.perf_counter() - started)

        for _ in range(repeats):
            async with await storage.watch("bench") as reader:
                t = time.perf_counter()
                brief = await reader.read_summaries(brief=True)
                keep("brief summaries", t)
                t = time.perf_counter()
                await reader.read_summaries()
                keep("whole summaries", t)
                step = max(1, len(brief) // 2000)
                t = time.perf_counter()
                await reader.read_trials(s.number for s in brief[::step])
                keep("records of 2,000 trials", t)
            async with await storage.watch("bench") as reader:
                t = time.perf_counter()
                await reader.read()
                keep("every record (first read())", t)
        return best

    return anyio.run(run)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000, 100000])
    parser.add_argument("--dir", help="where the studies are kept (default: a temporary directory)")
    parser.add_argument(
        "--parts",
        action="store_true",
        help="only time the reads the hpt-async dashboard makes of each study (no browser, no server)",
    )
    parser.add_argument(
        "--postgres",
        action="store_true",
        help="with --parts: on a throwaway PostgreSQL server (Debian's postgresql) instead of SQLite",
    )
    parser.add_argument(
        "--settle",
        type=float,
        default=0.0,
        help="seconds from a server's start to its first navigation (default 0: as soon as it answers)",
    )
    parser.add_argument(
        "--timeout", type=float, default=300, help="seconds a page may take to draw its first chart (default 300)"
    )
    args = parser.parse_args()
    root = Path(args.dir or tempfile.mkdtemp(prefix="bench-dashboard-"))
    root.mkdir(parents=True, exist_ok=True)
    print(f"load average: {os.getloadavg()}")
    if args.parts:
        import contextlib

        from _dashboard_data import make_hpt_postgres

        from hpt_async.testing.postgres import TemporaryPostgres

        with TemporaryPostgres() if args.postgres else contextlib.nullcontext() as server:
            for n in args.sizes:
                if server is not None:
                    url = f"{server}?schema=bench{n}"
                    print(f"{n:>7} trials  made on PostgreSQL in {make_hpt_postgres(url, n):.1f} s", flush=True)
                else:
                    db = root / f"hpt_{n}.db"
                    if not db.exists():
                        make_hpt(str(db), n)
                    url = f"sqlite:///{db}"
                parts = reader_parts(url)
                kind = "PostgreSQL" if server is not None else "SQLite"
                print(f"{n:>7} trials  {kind}: " + ", ".join(f"{k} {v:.3f} s" for k, v in parts.items()), flush=True)
        print(f"load average: {os.getloadavg()}")
        return
    exe = find_chromium()
    if exe is None:
        raise SystemExit("no Chromium found")
    rows = []
    for n in args.sizes:
        paths = {"hpt-async": root / f"hpt_{n}.db", "optuna-dashboard": root / f"optuna_{n}.db"}
        if not paths["hpt-async"].exists():
            make_hpt(str(paths["hpt-async"]), n)
        if not paths["optuna-dashboard"].exists():
            make_optuna(str(paths["optuna-dashboard"]), n)
        for kind, db in paths.items():
            with tempfile.TemporaryDirectory() as profile:
                browser = DevTools(exe, Path(profile), Path(profile) / "chromium.log")
                try:
                    got = measure(kind, db, browser, args.timeout, args.settle)
                finally:
                    browser.close()
            rows.append((n, kind, got))
            cold, warm = got["cold"], got["warm"]

            def s(x: float | None) -> str:
                return f"not within {args.timeout:g} s" if x is None else f"{x:.2f} s"

            print(
                f"{n:>7} trials  {kind:<17} first chart {'cold' if not args.settle else f'after {args.settle:g} s'}"
                f" {s(cold['first'])}, warm {s(warm['first'])}"
                + (f" (all charts warm {s(warm['all'])})" if warm.get("all") else "")
                + f"; server RSS peak {got['peak_mb']:.0f} MB, idle {got['idle_mb']:.0f} MB",
                flush=True,
            )
    print(f"load average: {os.getloadavg()}")
    for n in args.sizes:
        ours = next(g for m, k, g in rows if m == n and k == "hpt-async")
        theirs = next(g for m, k, g in rows if m == n and k == "optuna-dashboard")
        for when in ("cold", "warm"):
            a, b = ours[when]["first"], theirs[when]["first"]
            if a and b:
                print(f"{n:>7} trials  first chart {when}: optuna-dashboard / hpt-async = {b / a:.1f}x")
        print(f"{n:>7} trials  peak RSS: optuna-dashboard / hpt-async = {theirs['peak_mb'] / ours['peak_mb']:.1f}x")


if __name__ == "__main__":
    main()
