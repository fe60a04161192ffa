"""The dashboard without a browser: its model of a study, the read-only storage, the server over HTTP."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import anyio
import pytest

import hpt_async as hpt
from hpt_async.contracts import TrialSummary
from hpt_async.dashboard import DashboardUnavailable, open_read_only, serve
from hpt_async.dashboard._figures import chart_keys, prepare, render
from hpt_async.dashboard._model import (
    CHART_LIMIT,
    StudyInfo,
    StudyModel,
    StudyUnreadable,
    TableQuery,
    chart_data,
    sample,
)
from hpt_async.dashboard._readonly import tidy_side_files
from hpt_async.trial import TrialRecord, TrialState

ROOT = Path(__file__).resolve().parent.parent
SPACE = {"x": hpt.Float(0.0, 1.0), "k": hpt.Choice(["a", "b"])}


def _record(n: int, value: float | None, state: TrialState = TrialState.COMPLETE, **kw: Any) -> TrialRecord:
    return TrialRecord(
        n, state, {"x": n / 10, "k": "a" if n % 2 else "b"}, value, started=100.0 + n, ended=101.0 + n, **kw
    )


# -- the model ------------------------------------------------------------------------------------


def test_the_model_counts_tracks_the_best_and_logs_what_changed() -> None:
    model = StudyModel(StudyInfo("s", "minimize", {}))
    model.apply([_record(0, 3.0), _record(1, None, TrialState.RUNNING)])
    assert model.counts["complete"] == 1 and model.counts["running"] == 1 and model.running
    assert model.best is not None and model.best.number == 0
    v = model.version
    model.apply([_record(1, 1.0), _record(2, 5.0)])
    assert model.counts["running"] == 0 and model.counts["complete"] == 3 and not model.running
    assert model.best.number == 1
    assert model.changed_since(v) == [1, 2]
    assert model.changed_since(model.version) == []
    # The best trial turned into something else: the best is found again among the rest.
    model.apply([_record(1, None, TrialState.FAILED)])
    assert model.best.number == 0


def test_a_page_too_far_behind_is_told_to_resync() -> None:
    model = StudyModel(StudyInfo("s", "maximize", {}))
    for n in range(3000):
        model.apply([_record(n, float(n))])
    assert model.changed_since(0) is None
    assert model.changed_since(model.version - 2) == [2998, 2999]
    assert model.best.number == 2999


def test_the_table_sorts_filters_and_pages_on_the_server() -> None:
    model = StudyModel(StudyInfo("s", "minimize", {"x": {"type": "float", "low": 0, "high": 1}}))
    model.apply([_record(n, float((n * 7) % 10)) for n in range(10)] + [_record(10, None, TrialState.PRUNED)])
    total, rows = model.table(TableQuery(sort="value", limit=3))
    assert total == 11 and [r["value"] for r in rows] == [0.0, 1.0, 2.0] and rows[0]["best"]
    total, rows = model.table(TableQuery(sort="value", descending=True, offset=9, limit=5))
    assert [r["number"] for r in rows] == [0, 10]  # a trial without a value comes last either way
    total, rows = model.table(TableQuery(states=frozenset({"pruned"})))
    assert total == 1 and rows[0]["number"] == 10
    total, rows = model.table(TableQuery(text="k=b", sort="param:x", descending=True))
    assert total == 6 and [r["number"] for r in rows] == [10, 8, 6, 4, 2, 0]
    assert json.dumps(rows)  # JSON-ready


def _fetching(model: StudyModel, records: list[TrialRecord]) -> list[list[int]]:
    """Let ``model`` read full records from ``records``; returns the list of the numbers each read asked for."""
    by_number = {r.number: r for r in records}
    asked: list[list[int]] = []

    async def fetch(numbers: list[int]) -> list[TrialRecord]:
        asked.append(list(numbers))
        return [by_number[n] for n in sorted(numbers) if n in by_number]

    model.fetch = fetch
    return asked


@pytest.mark.anyio
async def test_charts_of_a_large_study_are_drawn_from_a_bounded_sample_with_the_exact_best_so_far() -> None:
    import random

    rng = random.Random(1)
    model = StudyModel(StudyInfo("big", "minimize", {"x": {"type": "float", "low": 0, "high": 1}}))
    records = [_record(n, rng.random(), reports={0: 1.0, 1: 0.5}) for n in range(20_000)]
    model.load(TrialSummary.of(r) for r in records)
    asked = _fetching(model, records)
    data = await chart_data(model, "history")
    assert len(data.trials) <= CHART_LIMIT + 200 and data.best is not None
    assert sum(len(a) for a in asked) <= CHART_LIMIT + 201  # only the sample's records were read in full
    best = None
    improvements = []
    for r in model.ordered():
        if best is None or r.value < best:
            best = r.value
            improvements.append(r.number)
    assert set(improvements) <= {t.number for t in data.trials}
    assert data.best.number == improvements[-1]
    timeline = await chart_data(model, "timeline")
    assert len(timeline.trials) == 1000 and timeline.trials[-1].number == 19_999
    assert len((await chart_data(model, "importance")).trials) == 1000
    curves = await chart_data(model, "intermediate")
    assert len(curves.trials) <= 401 and all(dict(t.reports) == {0: 1.0, 1: 0.5} for t in curves.trials)
    before = sum(len(a) for a in asked)
    assert len(sample(model, "history")) == len(data.trials)
    await chart_data(model, "history")  # kept: read again from memory
    assert sum(len(a) for a in asked) == before
    drawn = render(await prepare(model, "history"))
    assert "Drawn from" in drawn["notes"][0] and "20,000" in drawn["notes"][0]
    assert drawn["svg"].startswith("<svg") and not drawn["empty"]


@pytest.mark.anyio
async def test_full_records_are_read_once_kept_and_replaced_by_changes() -> None:
    model = StudyModel(StudyInfo("s", "minimize", {}))
    records = [_record(n, float(n), reports={0: 1.0}) for n in range(5)]
    model.load(TrialSummary.of(r) for r in records)
    assert model.counts["complete"] == 5 and model.best is not None and model.best.number == 0
    assert model.table(TableQuery(limit=2))[1][0]["reports"] == 1
    with pytest.raises(StudyUnreadable):
        await model.records_of([3])  # no reader open: a clear error, not a stale answer
    asked = _fetching(model, records)
    got = await model.records_of([3, 4, 99])
    assert sorted(got) == [3, 4] and asked == [[3, 4]]
    assert (await model.records_of([3]))[3] is got[3] and asked == [[3, 4]]
    changed = _record(3, -1.0, user_attrs={"note": "again"})
    model.apply([changed])  # a change from the reader replaces the kept record
    assert (await model.records_of([3]))[3] is changed and asked == [[3, 4]]
    assert model.best.number == 3
    model.load(TrialSummary.of(r) for r in records[:2])  # a reader opened again: everything is replaced
    assert len(model.trials) == 2 and model.changed_since(0) is None and model.best.number == 0
    assert model.complete and model.complete_event.is_set()
    model.load([TrialSummary.of(records[0])._replace(params={}, reports=0)], complete=False)  # brief summaries
    assert not model.complete and not model.complete_event.is_set() and len(model.trials) == 1


@pytest.mark.anyio
async def test_several_objectives_add_a_pareto_chart() -> None:
    model = StudyModel(StudyInfo("mo", ("minimize", "maximize"), {}))
    model.apply(
        [
            TrialRecord(n, TrialState.COMPLETE, {"x": n}, float(n), values=(float(n), float(n * n % 7)))
            for n in range(12)
        ]
    )
    assert chart_keys(model)[:3] == ["pareto", "hypervolume", "history"]
    front = {r.number for r in model.pareto()}
    assert front and model.best is None
    drawn = render(await prepare(model, "pareto"))
    assert drawn["svg"].count("<circle") >= 12 and not drawn["empty"]
    assert not render(await prepare(model, "hypervolume"))["empty"]
    assert model.summary()["front"] == len(front)


# -- read-only storage -----------------------------------------------------------------------------


async def _tiny_study(url: str, name: str = "s", n: int = 5) -> None:
    def objective(trial: hpt.Trial) -> float:
        return trial.params["x"]

    await hpt.Tuner(
        objective, SPACE, storage=url, study=name, max_trials=n, seed=0, loggers=[], strategy="random"
    ).run()


@pytest.mark.anyio
async def test_the_read_only_storage_reads_writes_nothing_and_leaves_no_file(tmp_path: Path) -> None:
    path = tmp_path / "ro.db"
    await _tiny_study(f"sqlite:///{path}")
    assert sorted(os.listdir(tmp_path)) == ["ro.db"]
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    storage = open_read_only(f"sqlite:///{path}")
    assert [s.name for s in await storage.studies()] == ["s"]
    assert len(await storage.load("s")) == 5
    async with await storage.watch("s") as reader:
        assert len(await reader.read()) == 5
        assert await reader.read() == []
    for attempt in (
        storage.open("t", direction="minimize", space=hpt.Space(SPACE)),
        storage.delete("s"),
        storage.rename("s", "t"),
    ):
        with pytest.raises(PermissionError) as info:
            await attempt
        assert isinstance(info.value, hpt.HptError)
    if hasattr(storage, "aclose"):
        await storage.aclose()
    tidy_side_files(str(path))
    assert sorted(os.listdir(tmp_path)) == ["ro.db"]
    assert hashlib.sha256(path.read_bytes()).hexdigest() == digest


@pytest.mark.anyio
async def test_side_files_stay_while_a_writer_holds_the_file(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "w.db"
    await _tiny_study(f"sqlite:///{path}")
    writer = sqlite3.connect(path)
    writer.execute("SELECT COUNT(*) FROM trials").fetchall()
    try:
        tidy_side_files(str(path))
        assert (tmp_path / "w.db-wal").exists() and (tmp_path / "w.db-shm").exists()
    finally:
        writer.close()
    assert sorted(os.listdir(tmp_path)) == ["w.db"]


@pytest.mark.anyio
async def test_the_read_only_storage_creates_no_file(tmp_path: Path) -> None:
    storage = open_read_only(f"sqlite:///{tmp_path / 'none.db'}")
    with pytest.raises(FileNotFoundError):
        await storage.studies()
    if hasattr(storage, "aclose"):
        await storage.aclose()
    assert os.listdir(tmp_path) == []


# -- the server ------------------------------------------------------------------------------------


def _get(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def _events(url: str, count: int) -> list[dict[str, Any]]:
    """The first ``count`` events of a server-sent event stream."""
    out = []
    with urllib.request.urlopen(url, timeout=30) as r:
        data = None
        for raw in r:
            line = raw.decode().rstrip("\n")
            if line.startswith("data: "):
                data = json.loads(line[6:])
            elif line == "" and data is not None:
                out.append(data)
                data = None
                if len(out) == count:
                    return out
    return out


def start_dashboard(url: str, *extra: str) -> tuple[subprocess.Popen[str], str]:
    """``hpt-async dashboard`` as a subprocess on a free port; returns it and its address."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    proc = subprocess.Popen(
        [sys.executable, "-m", "hpt_async.cli", "dashboard", "--storage", url, "--port", "0", *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if "http://" not in line:
        proc.kill()
        raise AssertionError(f"no address printed: {line!r} {proc.stderr.read() if proc.stderr else ''}")
    return proc, line.split()[2]


def stop(proc: subprocess.Popen[str]) -> str:
    """Stop the dashboard as Ctrl-C does; returns what it wrote on stderr."""
    import signal

    proc.send_signal(signal.SIGINT)
    try:
        _, err = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
        raise AssertionError(f"the dashboard did not stop on SIGINT: {err}") from None
    assert proc.returncode == 0, err
    return err


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_the_server_answers_read_only_with_a_strict_policy_and_streams_only_changes(
    tmp_path: Path, backend: str, request: pytest.FixtureRequest
) -> None:
    path = tmp_path / "srv.db"
    # PostgreSQL: a schema of this test's own on the test server (the tests skip without one, unless required).
    url = f"sqlite:///{path}" if backend == "sqlite" else request.getfixturevalue("postgres_url")
    anyio.run(_tiny_study, url, "s", 6)
    proc, address = start_dashboard(url)
    try:
        status, headers, body = _get(address)
        assert status == 200 and b'data-study="s"' in body
        csp = headers["content-security-policy"]
        assert "default-src 'none'" in csp and "script-src 'self'" in csp and "'unsafe-inline'" not in csp
        assert headers["x-content-type-options"] == "nosniff"
        # A page elsewhere reaching the dashboard through a DNS name of its own is refused.
        assert _get(address, {"Host": "evil.example:80"})[0] == 421
        assert _get(address + "api/trials?s=nope")[0] == 404
        assert _get(address + "api/trials?s=s&sort=bogus")[0] == 400
        assert _get(address + "api/trials?s=s&limit=0")[0] == 400
        assert _get(address + "api/chart?s=s&c=bogus")[0] == 404
        assert _get(address + "trial?s=s&n=99")[0] == 404
        status, _, body = _get(address + "api/trials?s=s&limit=4&sort=value")
        page = json.loads(body)
        assert status == 200 and page["total"] == 6 and len(page["rows"]) == 4
        for key in json.loads(_get(address + "api/study?s=s")[2])["charts"]:
            chart = json.loads(_get(address + f"api/chart?s=s&c={key}")[2])
            assert chart["svg"].startswith("<svg"), key
        status, _, body = _get(address + "trial?s=s&n=2")
        assert status == 200 and b"Parameters" in body and b"Reports" in body
        # Nothing but GET: a write is not a route.
        request = urllib.request.Request(address + "api/trials?s=s", method="POST", data=b"")
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(request, timeout=10)
        assert info.value.code == 405
        first = _events(address + "api/events?s=s", 1)[0]
        assert first["summary"]["n"] == 6 and first["rows"] == []
        # Six more trials by another process: the stream sends those, not the whole study.
        since = first["summary"]["version"]
        subprocess.run(
            [sys.executable, "-c", f"import anyio, test_dashboard as t; anyio.run(t._tiny_study, {url!r}, 's', 12)"],
            cwd=Path(__file__).parent,
            env={**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(Path(__file__).parent)])},
            check=True,
            timeout=60,
        )
        deadline = time.monotonic() + 30
        seen: set[int] = set()
        while len(seen) < 6 and time.monotonic() < deadline:
            got = _events(address + f"api/events?s=s&v={since}", 1)[0]
            assert got["resync"] is False
            seen |= {r["number"] for r in got["rows"]}
            since = got["summary"]["version"]
        assert seen == set(range(6, 12))
    finally:
        err = stop(proc)
    assert "Traceback" not in err, err
    if backend == "sqlite":
        assert sorted(os.listdir(tmp_path)) == ["srv.db"]


def test_serve_runs_alongside_a_tuner_in_the_same_program(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'along.db'}"

    async def main() -> tuple[str, dict[str, Any]]:
        async def objective(trial: hpt.Trial) -> float:
            await anyio.sleep(0.01)
            return trial.params["x"]

        tuner = hpt.Tuner(
            objective, SPACE, storage=url, study="along", max_trials=30, concurrency=3, loggers=[], strategy="random"
        )
        async with anyio.create_task_group() as tg:
            tg.start_soon(tuner.run)
            await anyio.sleep(0.2)  # the study exists once the tuner has opened it
            address = await tg.start(lambda task_status: serve(url, port=0, task_status=task_status))
            got = await anyio.to_thread.run_sync(_get, address + "api/studies")
            tg.cancel_scope.cancel()
        return address, json.loads(got[2])

    address, listing = anyio.run(main, backend="asyncio")
    assert address.startswith("http://127.0.0.1:")
    assert [s["name"] for s in listing["studies"]] == ["along"]


def test_bad_addresses_are_refused() -> None:
    with pytest.raises(ValueError, match="port"):
        anyio.run(lambda: serve("memory", port=70000))
    with pytest.raises(ValueError, match="host"):
        anyio.run(lambda: serve("memory", host=""))


def test_a_missing_web_server_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "uvicorn", None)
    with pytest.raises(DashboardUnavailable, match=r"hpt-async\[dashboard\]"):
        anyio.run(lambda: serve("memory", port=0))
    assert issubclass(DashboardUnavailable, hpt.HptError)


def test_importing_the_dashboard_loads_no_web_server() -> None:
    code = (
        "import json, sys, hpt_async, hpt_async.dashboard; "
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in ('starlette', 'uvicorn'))))"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert json.loads(out.stdout) == []


def test_the_command_is_listed_and_checks_its_storage(tmp_path: Path) -> None:
    from hpt_async.cli import main

    assert main(["dashboard", "--storage", "nonsense", "--port", "0"]) == 1


@pytest.mark.anyio
async def test_the_hub_follows_studies_as_they_come_change_and_go(tmp_path: Path) -> None:
    from hpt_async.dashboard._hub import Hub

    url = f"sqlite:///{tmp_path / 'hub.db'}"
    await _tiny_study(url, "a", 3)
    hub = Hub(open_read_only(url), interval=0.05, list_interval=3600)
    async with anyio.create_task_group() as tg:
        await tg.start(hub.run)
        assert list(hub.models) == ["a"]
        model = hub.models["a"]
        with anyio.fail_after(30):
            await model.loaded_event.wait()
        assert len(model.trials) == 3
        with anyio.fail_after(30):
            await model.complete_event.wait()  # brief summaries first, then the whole ones
        assert model.complete and all(s.params for s in model.trials.values())
        assert not model._full  # summaries only: no full record read yet
        version = model.version
        await _tiny_study(url, "a", 5)  # two more trials, by another tuner
        with anyio.fail_after(30):
            while len(model.trials) < 5:
                await model.wait_change(version)
                version = model.version
        await _tiny_study(url, "b", 2)
        await hpt.studies.open_storage(url).delete("a")
        await hub.refresh_list()
        assert list(hub.models) == ["b"]
        tg.cancel_scope.cancel()


@pytest.mark.anyio
async def test_the_whole_summaries_wait_for_a_first_chart(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from hpt_async.dashboard import _hub

    url = f"sqlite:///{tmp_path / 'first.db'}"
    await _tiny_study(url, "a", 4)
    monkeypatch.setattr(_hub, "FIRST_CHART_GRACE", 3600.0)
    hub = _hub.Hub(open_read_only(url), interval=0.05, list_interval=3600)
    async with anyio.create_task_group() as tg:
        await tg.start(hub.run)
        model = hub.models["a"]
        with anyio.fail_after(30):
            await model.loaded_event.wait()
        # Brief summaries: enough to choose and draw a chart's trials, not yet the configurations.
        assert not model.complete and all(not s.params for s in model.trials.values())
        data = await chart_data(model, "history")
        assert len(data.trials) == 4 and all(t.params for t in data.trials)
        assert not model.complete
        model.first_chart.set()  # as the server does once it has served a chart
        with anyio.fail_after(30):
            await model.complete_event.wait()
        assert all(s.params for s in model.trials.values())
        tg.cancel_scope.cancel()


@pytest.mark.anyio
async def test_a_study_deleted_before_its_whole_summaries_frees_what_waits_for_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from hpt_async.dashboard import _hub

    url = f"sqlite:///{tmp_path / 'gone.db'}"
    await _tiny_study(url, "a", 4)
    monkeypatch.setattr(_hub, "FIRST_CHART_GRACE", 3600.0)  # the whole summaries wait for a first chart
    hub = _hub.Hub(open_read_only(url), interval=0.05, list_interval=3600)
    async with anyio.create_task_group() as tg:
        await tg.start(hub.run)
        model = hub.models["a"]
        with anyio.fail_after(30):
            await model.loaded_event.wait()
        assert not model.complete_event.is_set()
        await hpt.studies.open_storage(url).delete("a")
        await hub.refresh_list()
        with anyio.fail_after(30):
            await model.complete_event.wait()  # a request waiting for the table answers instead of hanging
        assert model.error == "the study is no longer in the storage"
        tg.cancel_scope.cancel()


def test_a_port_in_use_is_one_line_of_error(tmp_path: Path) -> None:
    import socket

    url = f"sqlite:///{tmp_path / 'busy.db'}"
    anyio.run(_tiny_study, url, "s", 2)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        done = subprocess.run(
            [sys.executable, "-m", "hpt_async.cli", "dashboard", "--storage", url, "--port", str(port)],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
        )
    assert done.returncode == 1
    assert done.stderr.startswith("hpt-async: error: ") and "cannot listen" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
    assert sorted(os.listdir(tmp_path)) == ["busy.db"]
