"""Single-objective decisions, fingerprinted: run under two versions to show they did not change.

Runs seeded single-objective studies (``evolution``; ``tpe`` alone and with
``asha``; ``random`` with ``asha``, ``hyperband`` and ``median``; 120 trials
each; ``bayes`` alone and with ``asha``, 40 trials each; reports at nine
steps) and
prints, per study, a hash of every trial's state, value and configuration in
order.  Two versions that print the same hashes made the same decisions trial
by trial, so their search quality on these studies is the same::

    PYTHONPATH=<export of the other version> python benchmarks/bench_same_decisions.py
    python benchmarks/bench_same_decisions.py
"""

from __future__ import annotations

import hashlib
import json

import anyio

import hpt_async as hpt

SPACE = {"x": hpt.Float(-3, 3), "y": hpt.Float(-3, 3), "k": hpt.Choice(["a", "b", "c"])}


async def objective(trial: hpt.Trial) -> float:
    value = 0.0
    for step in range(1, 10):
        p = trial.params
        value = (p["x"] - 1) ** 2 + (p["y"] + 0.5) ** 2 + {"a": 0.0, "b": 0.3, "c": 1.0}[p["k"]] + 1 / step
        await trial.report(value, step=step)
    return value


def main() -> None:
    for strategy, pruner in [
        ("evolution", None),
        ("tpe", None),
        ("tpe", "asha"),
        ("random", "asha"),
        ("random", "hyperband"),
        ("random", "median"),
        ("bayes", None),
        ("bayes", "asha"),
    ]:
        trials = 40 if strategy == "bayes" else 120
        tuner = hpt.Tuner(objective, SPACE, strategy=strategy, pruner=pruner, max_trials=trials, seed=5, loggers=[])
        result = anyio.run(tuner.run)
        trials = [(t.state.value, t.value, sorted(t.params.items())) for t in result.trials]
        print(f"{strategy}+{pruner}: {hashlib.sha1(json.dumps(trials).encode()).hexdigest()[:12]}")


if __name__ == "__main__":
    main()
