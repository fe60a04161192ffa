"""The HTML report and its figures, drawn from real studies kept in SQLite."""

from __future__ import annotations

import itertools
import math
import os
import re
import subprocess
import sys
import textwrap
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import anyio
import pytest

import hpt_async as hpt
from hpt_async.report import (
    BEST,
    CHART_NAMES,
    STATE_COLOURS,
    Figure,
    ImportanceUnavailable,
    figures,
    param_importance,
    render_report,
    write_report,
)

SVG = "{http://www.w3.org/2000/svg}"

SPACE = {
    "lr": hpt.Float(1e-5, 1e-1, log=True),
    "layers": hpt.Int(1, 4),
    "optimizer": hpt.Choice(["adam", "sgd", ("sgd", "nesterov")]),
    "units": hpt.Int(16, 256, when={"layers": [3, 4]}),
}


class PruneOdd(hpt.Pruner):
    """Stops every odd-numbered trial at step 2, so the pruned trials are known in advance."""

    async def decide(self, study: hpt.StudyView, trial: hpt.TrialRecord, step: int, value: float) -> hpt.Decision:
        return hpt.Decision.STOP if trial.number % 2 == 1 and step >= 2 else hpt.Decision.CONTINUE


async def objective(trial: hpt.Trial) -> float:
    p = trial.params
    base = (math.log10(p["lr"]) + 3) ** 2 + 0.1 * p["layers"] + (0.5 if p["optimizer"] == "sgd" else 0.0)
    loss = base
    for step in range(5):
        loss = base + 1.0 / (step + 1)
        await anyio.sleep(0.003)
        await trial.report(loss, step=step)
    if trial.number == 4:
        raise RuntimeError("diverged")
    return loss


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> hpt.LoadedStudy:
    """24 trials, 4 at once: odd ones pruned at step 2, trial 4 failed, the rest complete."""
    url = f"sqlite:///{tmp_path_factory.mktemp('report') / 'r.db'}"

    async def run() -> None:
        tuner = hpt.Tuner(
            objective, SPACE, storage=url, study="demo", max_trials=24, concurrency=4, pruner=PruneOdd(), seed=3,
            loggers=[],
        strategy="random",
)  # fmt: skip
        await tuner.run()

    anyio.run(run, backend="asyncio")
    return hpt.load_study(url, "demo")


def parse(fig: Figure) -> ET.Element:
    return ET.fromstring(fig.to_svg())


def marks(root: ET.Element, tag: str) -> list[ET.Element]:
    """Elements of ``tag`` that carry a tooltip (one per drawn trial), in drawing order."""
    return [e for e in root.iter(f"{SVG}{tag}") if e.find(f"{SVG}title") is not None]


def tip(e: ET.Element) -> str:
    t = e.find(f"{SVG}title")
    assert t is not None and t.text is not None
    return t.text


def trial_of(e: ET.Element) -> int:
    m = re.match(r"trial (\d+) ", tip(e))
    assert m, tip(e)
    return int(m.group(1))


def test_the_fixture_study_has_every_state_the_charts_show(study: hpt.LoadedStudy) -> None:
    assert study.count("pruned") == 12 and study.count("failed") == 1 and study.count("complete") == 11
    assert all(t.started > 0 and t.ended is not None for t in study.trials)


def test_figures_are_the_six_charts_each_drawn(study: hpt.LoadedStudy) -> None:
    figs = figures(study)
    assert tuple(figs) == CHART_NAMES == ("history", "parallel", "importance", "slices", "intermediate", "timeline")
    for key, fig in figs.items():
        assert fig.key == key and not fig.empty, fig
        root = parse(fig)
        assert root.get("data-chart") == key
        assert len(list(root.iter())) > 30, key
        assert f">{fig.title}</text>" in fig.to_svg() and f">{fig.title}</text>" not in fig.to_svg(title=False)


def test_history_plots_each_complete_trial_and_the_running_best(study: hpt.LoadedStudy) -> None:
    root = parse(figures(study)["history"])
    dots = [e for e in marks(root, "circle") if e.get("fill") == STATE_COLOURS["complete"]]
    complete = [t.number for t in study.trials if t.state is hpt.TrialState.COMPLETE]
    assert sorted(trial_of(e) for e in dots) == complete
    ring = [e for e in marks(root, "circle") if e.get("stroke") == BEST]
    assert [trial_of(e) for e in ring] == [study.best.number]  # type: ignore[union-attr]
    # The rug marks every pruned and failed trial.
    rug = [trial_of(e) for e in marks(root, "rect")]
    assert sorted(rug) == [t.number for t in study.trials if t.state.value in ("pruned", "failed")]
    # The best-so-far line never rises (minimising): screen y grows downward, so it never decreases... upward.
    line = next(e for e in root.iter(f"{SVG}path") if e.get("stroke") == BEST)
    ys = [float(pt.split(",")[1]) for pt in line.get("d", "")[1:].split("L")]
    assert all(b >= a for a, b in itertools.pairwise(ys))
    assert f"best {hpt.report._svg.fmt(study.best.value, 5)}" in ET.tostring(root, encoding="unicode")  # type: ignore[union-attr]


def test_parallel_coordinates_draw_one_line_per_complete_trial(study: hpt.LoadedStudy) -> None:
    root = parse(figures(study)["parallel"])
    lines = marks(root, "path")
    assert sorted(trial_of(e) for e in lines) == [t.number for t in study.trials if t.state.value == "complete"]
    best = [e for e in lines if e.get("stroke") == BEST]
    assert [trial_of(e) for e in best] == [study.best.number]  # type: ignore[union-attr]
    # Five vertices: four parameter axes and the value axis.
    assert all(e.get("d", "").count("L") == 4 for e in lines)
    text = ET.tostring(root, encoding="unicode")
    assert "lr (log)" in text and "n/a" in text  # units is inactive for layers 1-2


def test_slices_use_log_axes_categories_and_only_active_trials(study: hpt.LoadedStudy) -> None:
    root = parse(figures(study)["slices"])
    panels = {g.get("data-param"): g for g in root.iter(f"{SVG}g") if g.get("class") == "panel"}
    assert list(panels) == ["lr", "layers", "optimizer", "units"]
    complete = {t.number: t for t in study.trials if t.state.value == "complete"}

    def dots(name: str) -> list[ET.Element]:
        return [
            e
            for e in panels[name].iter(f"{SVG}circle")
            if e.find(f"{SVG}title") is not None and e.get("fill") != "none"
        ]

    # lr: x is an affine function of log10(lr).
    lr_dots = dots("lr")
    assert sorted(trial_of(e) for e in lr_dots) == sorted(complete)
    pts = sorted((math.log10(complete[trial_of(e)].params["lr"]), float(e.get("cx", "nan"))) for e in lr_dots)
    (u0, x0), (u1, x1) = pts[0], pts[-1]
    for u, x in pts:
        assert x == pytest.approx(x0 + (u - u0) * (x1 - x0) / (u1 - u0), abs=0.2)
    ticks = [t.text for t in panels["lr"].iter(f"{SVG}text")]
    assert "1e-4" in ticks and "0.01" in ticks
    # units: only where active (layers 3 or 4).
    active = sorted(n for n, t in complete.items() if "units" in t.params)
    assert sorted(trial_of(e) for e in dots("units")) == active
    assert f"active in {len(active)} of {len(complete)}" in [t.text for t in panels["units"].iter(f"{SVG}text")]
    # optimizer: a column per choice, each dot in its own column.
    labels = [t.text for t in panels["optimizer"].iter(f"{SVG}text")]
    assert "adam" in labels and "sgd" in labels and any(x and x.startswith("('sgd'") for x in labels)
    columns: dict[Any, list[float]] = {}
    for e in dots("optimizer"):
        columns.setdefault(repr(complete[trial_of(e)].params["optimizer"]), []).append(float(e.get("cx", "nan")))
    spans = sorted((min(xs), max(xs)) for xs in columns.values())
    assert all(a[1] < b[0] for a, b in itertools.pairwise(spans))


def test_intermediate_values_mark_where_pruned_trials_stopped(study: hpt.LoadedStudy) -> None:
    root = parse(figures(study)["intermediate"])
    curves = marks(root, "path")
    crosses = [e for e in curves if e.get("stroke") == STATE_COLOURS["pruned"] and e.get("d", "").count("M") == 2]
    pruned = [t.number for t in study.trials if t.state.value == "pruned"]
    assert sorted(trial_of(e) for e in crosses) == pruned
    lines = [e for e in curves if e not in crosses]
    assert sorted({trial_of(e) for e in lines}) == [t.number for t in study.trials]
    for e in lines:
        n = trial_of(e)
        assert e.get("d", "").count("L") == len(study.trials[n].reports) - 1


def test_timeline_has_one_bar_per_trial_and_shows_concurrency(study: hpt.LoadedStudy) -> None:
    fig = figures(study)["timeline"]
    root = parse(fig)
    bars = marks(root, "rect")
    assert sorted(trial_of(e) for e in bars) == [t.number for t in study.trials]
    for e in bars:
        t = study.trials[trial_of(e)]
        assert e.get("fill") == STATE_COLOURS[t.state.value]
    # Bars start left to right in the order the trials started.
    by_start = sorted(bars, key=lambda e: study.trials[trial_of(e)].started)
    xs = [float(e.get("x", "nan")) for e in by_start]
    assert xs == sorted(xs)
    # The concurrency curve peaks at 4, the tuner's concurrency.
    assert "at most 4 trials at once" in ET.tostring(root, encoding="unicode")


def test_importance_finds_the_parameter_that_matters(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'imp.db'}"

    async def f(trial: hpt.Trial) -> float:
        return 1 + 10 * (trial.params["x"] - 0.3) ** 2 + 0.001 * trial.params["y"]

    async def run() -> None:
        space = {"x": hpt.Float(0, 1), "y": hpt.Float(0, 1), "c": hpt.Choice(["a", "b"])}
        await hpt.Tuner(f, space, storage=url, study="imp", max_trials=48, seed=1, loggers=[], strategy="random").run()

    anyio.run(run, backend="asyncio")
    result = param_importance("imp", storage=url)
    assert next(iter(result.shares)) == "x"
    assert result.shares["x"] > 0.9 and result.shares["y"] < 0.05 and result.shares["c"] < 0.05
    assert result.n_trials == 48 and not result.log_values and 0.9 < result.explained <= 1.05
    fig = figures("imp", storage=url)["importance"]
    bars = marks(parse(fig), "rect")
    assert [tip(b).split("\n")[0] for b in bars] == ["x", "y", "c"]
    assert float(bars[0].get("width", "0")) > 10 * float(bars[1].get("width", "0"))


def test_importance_degrades_with_a_message(study: hpt.LoadedStudy, monkeypatch: pytest.MonkeyPatch) -> None:
    few = hpt.LoadedStudy("few", "minimize", list(study.trials[:6]), study.space)
    fig = figures(few)["importance"]
    assert fig.empty and "at least 8 complete trials" in (fig.message or "")
    with pytest.raises(ImportanceUnavailable, match="at least 8"):
        param_importance(few)
    monkeypatch.setitem(sys.modules, "sklearn.ensemble", None)
    fig = figures(study)["importance"]
    assert fig.empty and "scikit-learn" in (fig.message or "")
    assert not figures(study)["history"].empty  # the rest is still drawn


def test_an_empty_study_and_a_failing_one_still_make_a_report(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'e.db'}"

    async def boom(trial: hpt.Trial) -> float:
        raise ValueError("no")

    async def run() -> None:
        await hpt.Tuner(boom, SPACE, storage=url, study="bad", max_trials=3, loggers=[], strategy="random").run()

    anyio.run(run, backend="asyncio")
    bad = hpt.load_study(url, "bad")
    figs = figures(bad)
    assert {k for k, f in figs.items() if f.empty} == {"history", "parallel", "importance", "slices", "intermediate"}
    assert not figs["timeline"].empty
    empty = hpt.LoadedStudy("nothing", "maximize", [], {})
    assert all(f.empty for f in figures(empty).values())
    html = render_report(empty)
    assert "No complete trial yet" in html and html.count("<svg") == 6


def test_the_page_is_self_contained(study: hpt.LoadedStudy, tmp_path: Path) -> None:
    out = write_report(study, tmp_path / "r.html", title="My study")
    html = out.read_text(encoding="utf-8")
    assert html.startswith("<!DOCTYPE html>") and "<title>My study</title>" in html
    assert not re.search(r"https?://", html), "the page must not refer to the network"
    assert not re.search(r"<(link|img|iframe)\b|\bsrc=", html)
    assert "default-src 'none'" in html
    for key in CHART_NAMES:
        assert f'data-chart="{key}"' in html
    # Summary: name, direction, counts by state, best value and parameters.
    assert "<h1>demo" in html and "minimize" in html
    assert "complete <b>11</b>" in html and "pruned <b>12</b>" in html and "failed <b>1</b>" in html
    best = study.best
    assert best is not None
    assert f'id="best-value">{hpt.report._svg.fmt(best.value, 6)}<' in html
    assert f"trial {best.number}" in html and "<td>optimizer</td>" in html
    assert "in progress" not in html
    assert len(html) < 400_000
    # The table of the best trials: ten rows, the best first.
    table = html[html.index('id="top-trials"') :]
    table = table[: table.index("</table>")]
    assert table.count("<tr") == 11  # a header and ten trials
    first = table.split('<tr class="is-best">', 1)[1]
    assert first.startswith(f'<td class="num">1</td><td class="num">{best.number}</td>')


def test_write_report_replaces_whole_files_and_fails_cleanly(study: hpt.LoadedStudy, tmp_path: Path) -> None:
    target = tmp_path / "r.html"
    target.write_text("old")
    write_report(study, target)
    assert target.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    with pytest.raises(OSError):
        write_report(study, tmp_path / "missing" / "r.html")
    with pytest.raises(IsADirectoryError):
        write_report(study, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.html"]  # no temporary file left behind
    with pytest.raises(ValueError, match="give its storage"):
        write_report("demo", target)
    # Through a symbolic link the file it points to is replaced and the link stays.
    link = tmp_path / "link.html"
    link.symlink_to(target)
    target.write_text("older")
    write_report(study, link)
    assert link.is_symlink() and target.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")


def test_a_study_result_a_study_view_and_standalone_svgs(tmp_path: Path) -> None:
    tuner = hpt.Tuner(objective, SPACE, max_trials=10, concurrency=2, seed=1, loggers=[], strategy="random")
    result = anyio.run(tuner.run, backend="asyncio")
    figs = figures(result)
    assert not figs["history"].empty and not figs["slices"].empty
    live = figures(tuner.study)  # the StudyView plugins see: its space is known, so 'units' is an Int axis
    assert live["slices"].to_svg().count("<circle") == figs["slices"].to_svg().count("<circle")
    path = tmp_path / "h.svg"
    figs["history"].save(path)
    root = ET.parse(path).getroot()
    assert root.tag == f"{SVG}svg" and figs["history"]._repr_svg_() == path.read_text(encoding="utf-8")


def test_a_study_in_progress_is_reported_while_another_process_writes(tmp_path: Path) -> None:
    db = tmp_path / "live.db"
    url = f"sqlite:///{db}"
    script = textwrap.dedent(
        f"""
        import anyio, hpt_async as hpt
        async def slow(trial):
            for step in range(20):
                await anyio.sleep(0.04)
                await trial.report(trial.params["x"] + 1 / (step + 1), step=step)
            return trial.params["x"]
        async def main():
            await hpt.Tuner(slow, {{"x": hpt.Float(0, 1)}}, storage={url!r}, study="live",
                            max_trials=6, concurrency=3, loggers=[], strategy="random").run()
        anyio.run(main)
        """
    )
    writer = subprocess.Popen([sys.executable, "-c", script])
    try:
        deadline = time.monotonic() + 60
        seen_running = None
        while time.monotonic() < deadline and writer.poll() is None:
            if db.exists():
                try:
                    live = hpt.load_study(url, "live")
                except hpt.StudyNotFound:
                    live = None
                if live is not None and live.count("running") and any(t.reports for t in live.trials):
                    seen_running = live
                    break
            time.sleep(0.05)
        assert seen_running is not None, "never saw the study with running trials"
        html = write_report(seen_running, tmp_path / "live.html").read_text(encoding="utf-8")
        assert "in progress: " in html
        bars = marks(parse(figures(seen_running)["timeline"]), "rect")
        assert any(b.get("fill") == STATE_COLOURS["running"] for b in bars)
        assert writer.wait(timeout=60) == 0
    finally:
        if writer.poll() is None:
            writer.kill()
            writer.wait()
    done = hpt.load_study(url, "live")
    assert done.count("complete") == 6 and "in progress" not in render_report(done)
    assert os.path.getsize(tmp_path / "live.html") > 10_000


def test_a_maximised_study_keeps_its_best_on_top(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'max.db'}"
    space = {"batch": hpt.Int(8, 512, log=True), "width": hpt.Choice([16, 32, 64])}

    async def acc(trial: hpt.Trial) -> float:
        return math.log2(trial.params["batch"]) + trial.params["width"] / 64

    async def run() -> None:
        await hpt.Tuner(acc, space, storage=url, study="acc", direction="maximize", max_trials=12, seed=2,
                        loggers=[], strategy="random").run()  # fmt: skip

    anyio.run(run, backend="asyncio")
    study = hpt.load_study(url, "acc")
    assert study.best is not None and study.best.value == max(t.value for t in study.trials)  # type: ignore[type-var]
    figs = figures(study)
    line = next(e for e in parse(figs["history"]).iter(f"{SVG}path") if e.get("stroke") == BEST)
    ys = [float(pt.split(",")[1]) for pt in line.get("d", "")[1:].split("L")]
    assert all(b <= a for a, b in itertools.pairwise(ys))  # the best so far only rises
    panels = {g.get("data-param"): g for g in parse(figs["slices"]).iter(f"{SVG}g") if g.get("class") == "panel"}
    ticks = [t.text for t in panels["width"].iter(f"{SVG}text")]
    assert {"16", "32", "64"} <= set(ticks)
    batch_ticks = [t.text for t in panels["batch"].iter(f"{SVG}text")]
    assert "batch (log scale)" in batch_ticks and "100" in batch_ticks
    assert "maximize" in render_report(study)


def test_values_at_the_ends_of_the_float_range_are_drawn() -> None:
    finals = [1e308, -1e308, 1.7e308, 0.5, 3.0, 1e300, -1.7e308, 2.0, 5.0, 7.0]

    async def extreme(trial: hpt.Trial) -> float:
        await trial.report(-finals[trial.number], step=0)
        return finals[trial.number]

    async def run() -> hpt.StudyResult:
        return await hpt.Tuner(extreme, SPACE, max_trials=10, loggers=[], seed=0, strategy="random").run()

    result = anyio.run(run, backend="asyncio")
    figs = figures(result)
    for key in ("history", "parallel", "slices", "intermediate"):
        root = parse(figs[key])  # well-formed SVG
        coordinates = re.findall(r'\s(?:cx|cy|x|y|x1|x2|y1|y2)="([^"]+)"', figs[key].to_svg())
        assert coordinates and all(math.isfinite(float(c)) for c in coordinates), key
        assert marks(root, "circle") or marks(root, "path"), key
    assert "<svg" in render_report(result)


def test_the_report_file_follows_the_umask_and_keeps_a_replaced_files_mode(tmp_path: Path) -> None:
    import stat as _stat

    records = hpt.LoadedStudy("modes", "minimize", [], {})
    old = os.umask(0o077)
    try:
        path = write_report(records, tmp_path / "private.html")
    finally:
        os.umask(old)
    assert _stat.S_IMODE(path.stat().st_mode) == 0o600
    path.chmod(0o640)
    write_report(records, path)
    assert _stat.S_IMODE(path.stat().st_mode) == 0o640
    old = os.umask(0o002)
    try:
        shared = write_report(records, tmp_path / "shared.html")
    finally:
        os.umask(old)
    assert _stat.S_IMODE(shared.stat().st_mode) == 0o664
