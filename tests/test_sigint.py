"""Ctrl-C (SIGINT) during a run: running trials are recorded CANCELLED and nothing is left running."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time

SCRIPT = textwrap.dedent(
    """
    import sys
    import anyio
    import hpt_async as hpt

    class Watch:
        @hpt.hookimpl
        def hpt_trial_started(self, event):
            print("started", event.number, flush=True)

        @hpt.hookimpl
        def hpt_trial_ended(self, event):
            print("ended", event.record.number, event.record.state.value, flush=True)

        @hpt.hookimpl
        def hpt_study_ended(self, event, study):
            print("study ended", event.result.reason, len(study.running), flush=True)

    async def objective(trial):
        await anyio.sleep(60)
        return 1.0

    tuner = hpt.Tuner(objective, {"x": hpt.Float(0, 1)}, concurrency=3, max_trials=10,
                      loggers=[], plugins=[Watch()], seed=0)
    anyio.run(tuner.run)
    """
)


def test_sigint_cancels_running_trials_and_ends_the_study() -> None:
    proc = subprocess.Popen([sys.executable, "-c", SCRIPT], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    started = 0
    deadline = time.monotonic() + 30
    while started < 3 and time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        started += line.startswith("started")
    assert started == 3, "the three concurrent trials never started"
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    lines = out.splitlines()
    ended = [line for line in lines if line.startswith("ended")]
    assert sorted(ended) == ["ended 0 cancelled", "ended 1 cancelled", "ended 2 cancelled"]
    assert "study ended cancelled 0" in lines
    assert proc.returncode != 0
    assert "KeyboardInterrupt" in err
