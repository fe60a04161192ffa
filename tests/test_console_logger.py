"""The ``console`` logger: rich's live display on a terminal, plain lines elsewhere, silence when asked."""

from __future__ import annotations

import io
import json
import os
import pty
import re
import subprocess
import sys
import textwrap
import time

import anyio
import pytest
from rich.console import Console

import hpt_async as hpt

SPACE = {"x": hpt.Float(0.0, 1.0), "mode": hpt.Choice(["a", "b"])}
HANG_GUARD = 20.0
BAR = "━"


def recording_console() -> Console:
    """A terminal-like console that keeps everything drawn on it."""
    return Console(record=True, force_terminal=True, width=120, file=io.StringIO(), color_system="truecolor")


def last_frame(text: str, study: str) -> str:
    """The last drawing of the live display in ``text`` (from its last header line on)."""
    start = text.rindex(f"[{study}] {BAR}")
    return text[start:]


class StopAtStepOne(hpt.Pruner):
    """Prunes every third trial at its second report."""

    async def decide(self, study: hpt.StudyView, trial: hpt.TrialRecord, step: int, value: float) -> hpt.Decision:
        return hpt.Decision.STOP if step == 1 and trial.number % 3 == 2 else hpt.Decision.CONTINUE


async def mixed(trial: hpt.Trial) -> float:
    """Trial 1 fails, every third from 2 is pruned, the others complete with value number + 0.25."""
    for step in range(2):
        await trial.report(float(step), step=step)
    if trial.number == 1:
        raise ValueError("bad luck")
    return trial.number + 0.25


async def run(tuner: hpt.Tuner) -> hpt.StudyResult:
    with anyio.fail_after(HANG_GUARD):
        return await tuner.run()


# -- the live display -----------------------------------------------------------------------


@pytest.mark.anyio
async def test_the_live_display_shows_counts_bar_best_and_failures() -> None:
    console = recording_console()
    logger = hpt.ConsoleLogger(console=console, refresh_per_second=50)
    tuner = hpt.Tuner(
        mixed,
        SPACE,
        loggers=[logger],
        pruner=StopAtStepOne(),
        max_trials=8,
        concurrency=2,
        seed=3,
        study="live",
        strategy="random",
    )
    result = await run(tuner)
    assert result.count("complete") == 5 and result.count("pruned") == 2 and result.count("failed") == 1

    text = console.export_text()
    assert text.startswith("[live] minimize over 2 parameters, seed 3")
    assert "[live] trial 1 failed: ValueError: bad luck" in text
    frame = last_frame(text, "live")
    assert "8/8 trials" in frame
    assert re.search(r"complete 5\s+pruned 2\s+failed 1\s+running 0", frame)
    best = result.best
    assert best is not None and best.number == 0
    assert f"best 0.25 (trial 0) x={best.params['x']:.6g}, mode='{best.params['mode']}'" in frame
    # A full bar at the end: 40 cells drawn, none of them the half cell of a bar in progress.
    bar_line = frame.splitlines()[0]
    assert BAR * 40 in bar_line and "╸" not in bar_line and "╺" not in bar_line
    assert frame.splitlines()[-1].startswith("[live] stopped (max_trials); best value 0.25 at trial 0")
    # The terminal got cursor movements: the display was drawn in place, not appended.
    assert "\x1b[1A" in console.file.getvalue()  # type: ignore[attr-defined]


@pytest.mark.anyio
async def test_the_display_is_redrawn_while_a_trial_runs_without_events() -> None:
    console = recording_console()
    seen: list[str] = []

    async def objective(trial: hpt.Trial) -> float:
        if trial.number == 2:
            # No event arrives while this trial waits: only the painter can show the two trials done.
            with anyio.fail_after(HANG_GUARD):
                while "2/4 trials" not in console.file.getvalue():  # type: ignore[attr-defined]
                    await anyio.sleep(0.01)
            seen.append(console.file.getvalue())  # type: ignore[attr-defined]
        return float(trial.number)

    logger = hpt.ConsoleLogger(console=console, refresh_per_second=20)
    await run(hpt.Tuner(objective, SPACE, loggers=[logger], max_trials=4, seed=0, study="redraw", strategy="random"))
    assert len(seen) == 1
    frame = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", seen[0][seen[0].rindex("2/4 trials") :])
    assert "complete 2" in frame and "running 1" in frame  # drawn while trial 2 was still running


SYSTEM_EXIT_SCRIPT = """
import asyncio, io, json, sys, threading
from rich.console import Console
import hpt_async as hpt

async def objective(trial):
    if trial.number == 2:
        raise KeyboardInterrupt
    return float(trial.number)

async def main():
    logger = hpt.ConsoleLogger(console=Console(file=io.StringIO(), force_terminal=True))
    space = {"x": hpt.Float(0.0, 1.0)}
    await hpt.Tuner(objective, space, max_trials=5, loggers=[logger], seed=0, strategy="random").run()

stdout = sys.stdout
try:
    asyncio.run(main())
except BaseException as exc:
    caught = type(exc).__name__
threads = [t.name for t in threading.enumerate() if t.name.startswith("hpt-async")]
sys.__stderr__.write(json.dumps({"caught": caught, "threads": threads, "stdout": sys.stdout is stdout}) + "\\n")
"""


def test_a_study_ended_by_keyboard_interrupt_stops_the_display_and_its_thread() -> None:
    # An objective's KeyboardInterrupt unwinds the study (its SystemExit only fails the trial), and
    # asyncio lets it out of the event loop, so this runs in a process of its own.
    done = subprocess.run([sys.executable, "-c", SYSTEM_EXIT_SCRIPT], capture_output=True, text=True, timeout=120)
    report = json.loads(done.stderr.strip().splitlines()[-1])
    assert report["caught"] in ("KeyboardInterrupt", "BaseExceptionGroup")
    assert report["threads"] == []  # the painter thread was stopped
    assert report["stdout"] is True  # the live display gave the streams back


@pytest.mark.anyio
async def test_event_handlers_only_take_note_and_never_draw() -> None:
    console = recording_console()
    logger = hpt.ConsoleLogger(console=console, refresh_per_second=1e-6)  # the painter never wakes during the run
    sizes: list[int] = []

    class Probe:
        """Heard after the console logger: how much has been drawn so far."""

        @hpt.hookimpl
        def hpt_trial_ended(self, event: hpt.TrialEnded) -> None:
            sizes.append(len(console.file.getvalue()))  # type: ignore[attr-defined]

    tuner = hpt.Tuner(
        mixed, SPACE, loggers=[logger, Probe()], max_trials=6, seed=1, study="quiet-hooks", strategy="random"
    )
    await run(tuner)
    assert len(sizes) == 6
    assert len(set(sizes)) == 1, sizes  # a failure included: nothing was drawn from a hook
    text = console.export_text()
    assert "[quiet-hooks] trial 1 failed: ValueError: bad luck" in text  # printed at the end instead
    assert re.search(r"complete 5\s+pruned 0\s+failed 1\s+running 0", last_frame(text, "quiet-hooks"))


@pytest.mark.anyio
async def test_a_timeout_study_shows_its_bar_against_the_clock() -> None:
    console = recording_console()

    async def objective(trial: hpt.Trial) -> float:
        await anyio.sleep(0.05)
        return 1.0

    logger = hpt.ConsoleLogger(console=console, refresh_per_second=20)
    result = await run(
        hpt.Tuner(objective, SPACE, loggers=[logger], timeout=1.0, seed=0, study="clock", strategy="random")
    )
    assert result.reason == "timeout"
    frame = last_frame(console.export_text(), "clock")
    done = result.count("complete")
    assert f"{done} trials  0:00:0" in frame and " / 0:00:01" in frame
    assert "/None" not in frame and BAR * 40 in frame


@pytest.mark.anyio
async def test_without_a_budget_the_display_counts_trials() -> None:
    console = recording_console()
    tuner = hpt.Tuner(
        lambda t: 1.0,
        {"mode": hpt.Choice(["a", "b", "c"])},
        strategy="grid",
        loggers=[hpt.ConsoleLogger(console=console)],
        study="grid",
    )
    result = await run(tuner)
    assert result.reason == "exhausted"
    frame = last_frame(console.export_text(), "grid")
    assert "3 trials" in frame and "/3" not in frame
    assert "[grid] stopped (exhausted)" in frame


@pytest.mark.anyio
async def test_quiet_on_a_terminal_prints_only_the_closing_status_and_summary() -> None:
    console = recording_console()
    logger = hpt.ConsoleLogger(console=console, quiet=True)
    await run(hpt.Tuner(mixed, SPACE, loggers=[logger], max_trials=4, seed=0, study="hush", strategy="random"))
    text = console.export_text()
    assert "seed 0" not in text and "bad luck" not in text
    assert text.count("4/4 trials") == 1
    assert "[hush] stopped (max_trials)" in text
    assert "\x1b[1A" not in console.file.getvalue()  # type: ignore[attr-defined]  # no live redrawing


class Terminal(io.StringIO):
    """A stream that says it is a terminal."""

    def isatty(self) -> bool:
        return True


@pytest.mark.anyio
async def test_a_stream_that_is_a_terminal_gets_the_live_display(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TERM", "xterm-256color")
    stream = Terminal()
    await run(
        hpt.Tuner(
            mixed, SPACE, loggers=[hpt.ConsoleLogger(stream)], max_trials=3, seed=0, study="tty", strategy="random"
        )
    )
    out = stream.getvalue()
    assert "\x1b[" in out and BAR in out
    assert "3/3 trials" in out


@pytest.mark.anyio
async def test_a_dumb_terminal_gets_plain_lines(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TERM", "dumb")
    stream = Terminal()
    logger = hpt.ConsoleLogger(stream, interval=0.0)
    await run(hpt.Tuner(mixed, SPACE, loggers=[logger], max_trials=3, seed=0, study="dumb", strategy="random"))
    out = stream.getvalue()
    assert "\x1b" not in out and BAR not in out
    assert "[dumb] 3/3 done: 2 complete, 0 pruned, 1 failed; 0 running" in out


@pytest.mark.anyio
async def test_a_stream_that_is_not_a_terminal_gets_plain_lines() -> None:
    stream = io.StringIO()
    await run(
        hpt.Tuner(
            mixed,
            SPACE,
            loggers=[hpt.ConsoleLogger(stream, interval=0.0)],
            max_trials=3,
            seed=0,
            study="pipe",
            strategy="random",
        )
    )
    out = stream.getvalue()
    assert "\x1b" not in out and BAR not in out
    lines = out.splitlines()
    assert lines[0] == "[pipe] minimize over 2 parameters, seed 0"
    assert "[pipe] trial 1 failed: ValueError: bad luck" in lines
    assert any(line.startswith("[pipe] 3/3 done: 2 complete, 0 pruned, 1 failed; 0 running") for line in lines)
    assert lines[-1].startswith("[pipe] stopped (max_trials); best value 0.25 at trial 0")


def test_refresh_per_second_must_be_positive() -> None:
    with pytest.raises(ValueError, match="refresh_per_second"):
        hpt.ConsoleLogger(refresh_per_second=0)


# -- a real terminal --------------------------------------------------------------------------

SCRIPT = textwrap.dedent(
    """
    import anyio
    import hpt_async as hpt

    async def objective(trial):
        await anyio.sleep(0.01)
        return trial.params["x"]

    anyio.run(hpt.Tuner(objective, {"x": hpt.Float(0, 1)}, max_trials=5, seed=0, study="pty", strategy="random").run)
    """
)


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "NO_COLOR", "TTY_COMPATIBLE")}
    env.update(TERM="xterm-256color", COLUMNS="100", HPT_ASYNC_DISABLE_PLUGIN_AUTOLOAD="1")
    return env


def test_the_default_logger_draws_live_on_a_pseudo_terminal() -> None:
    controller, terminal = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-c", SCRIPT], stdin=subprocess.DEVNULL, stdout=terminal, stderr=terminal, env=_env()
    )
    os.close(terminal)
    chunks: list[bytes] = []
    deadline = time.monotonic() + HANG_GUARD
    try:
        while time.monotonic() < deadline:
            try:
                chunk = os.read(controller, 65536)
            except OSError:  # the child closed the terminal (EIO)
                break
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(controller)
        returncode = proc.wait(timeout=HANG_GUARD)
    out = b"".join(chunks).decode("utf-8", "replace")
    assert returncode == 0, out
    assert "\x1b[" in out and BAR in out
    assert "5/5 trials" in out
    plain = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", out)  # without colours and cursor movements
    assert re.search(r"complete 5\s+pruned 0\s+failed 0\s+running 0", plain)
    assert "[pty] stopped (max_trials); best value" in out


def test_the_default_logger_prints_plain_lines_into_a_pipe() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=_env(), timeout=HANG_GUARD, check=True
    )
    err = proc.stderr
    assert "\x1b" not in err and BAR not in err
    lines = err.splitlines()
    assert lines[0] == "[pty] minimize over 1 parameter, seed 0"
    assert any(line.startswith("[pty] 5/5 done: 5 complete") for line in lines)
    assert lines[-1].startswith("[pty] stopped (max_trials); best value")
