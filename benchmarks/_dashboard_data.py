"""Equal studies for the dashboard benchmark: one of hpt-async, one of Optuna, each in its own SQLite file.

Both hold ``n`` COMPLETE trials over the same four parameters, each with five
intermediate values.  The hpt-async study is run by a Tuner (random
strategy).  Optuna's SQLAlchemy storage writes about 70 trials a second, so
its study is made of a first block of 1,000 trials added with
``study.add_trials`` and then copied inside the file, with new trial ids and
numbers, until it holds ``n`` (the rows are Optuna's own, so its dashboard
reads them as any other study).
"""

from __future__ import annotations

import random
import sqlite3
import sys
import time

BLOCK = 1000


def _loss(lr: float, layers: int, dropout: float, epoch: int) -> float:
    floor = 0.05 + 0.2 * (abs(lr - 3e-3) / 1e-1) ** 0.5 + 0.03 * layers + 0.1 * dropout
    return floor + (1 - floor) * 0.7**epoch


def make_hpt(path: str, n: int) -> float:
    """Run a Tuner of ``n`` trials into ``sqlite:///path`` (or into ``path`` when it is a URL); returns seconds."""
    import anyio

    import hpt_async as hpt

    space = {
        "lr": hpt.Float(1e-5, 1e-1, log=True),
        "layers": hpt.Int(1, 4),
        "optimizer": hpt.Choice(["adam", "sgd", "rmsprop"]),
        "dropout": hpt.Float(0.0, 0.5),
    }

    async def objective(trial: hpt.Trial) -> float:
        p = trial.params
        loss = 1.0
        for epoch in range(5):
            loss = (
                _loss(p["lr"], p["layers"], p["dropout"], epoch)
                + 0.05 * {"adam": 0, "sgd": 1, "rmsprop": 0.4}[p["optimizer"]]
            )
            await trial.report(loss, step=epoch)
        return loss

    started = time.perf_counter()
    tuner = hpt.Tuner(
        objective,
        space,
        storage=path if "://" in path else f"sqlite:///{path}",
        study="bench",
        strategy="random",
        max_trials=n,
        concurrency=32,
        seed=0,
        loggers=[],
    )
    anyio.run(tuner.run)
    return time.perf_counter() - started


def make_optuna(path: str, n: int) -> float:
    """An Optuna study of ``n`` trials in ``sqlite:///path`` (see the module docstring); returns seconds."""
    import optuna
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    started = time.perf_counter()
    study = optuna.create_study(storage=f"sqlite:///{path}", study_name="bench", direction="minimize")
    dists = {
        "lr": FloatDistribution(1e-5, 1e-1, log=True),
        "layers": IntDistribution(1, 4),
        "optimizer": CategoricalDistribution(["adam", "sgd", "rmsprop"]),
        "dropout": FloatDistribution(0.0, 0.5),
    }
    rng = random.Random(0)
    trials = []
    for _ in range(min(n, BLOCK)):
        p = {
            "lr": 10 ** rng.uniform(-5, -1),
            "layers": rng.randint(1, 4),
            "optimizer": rng.choice(["adam", "sgd", "rmsprop"]),
            "dropout": rng.uniform(0, 0.5),
        }
        extra = 0.05 * {"adam": 0, "sgd": 1, "rmsprop": 0.4}[p["optimizer"]]
        iv = {e: _loss(p["lr"], p["layers"], p["dropout"], e) + extra for e in range(5)}
        trials.append(optuna.trial.create_trial(params=p, distributions=dists, value=iv[4], intermediate_values=iv))
    study.add_trials(trials)
    db = sqlite3.connect(path)
    try:
        base = db.execute("SELECT MAX(trial_id), MAX(number) + 1 FROM trials").fetchone()
        top_id, count = int(base[0]), int(base[1])
        first_id = top_id - count + 1
        copies = {
            "trial_params": ("param_id", "trial_id, param_name, param_value, distribution_json"),
            "trial_values": ("trial_value_id", "trial_id, objective, value, value_type"),
            "trial_intermediate_values": (
                "trial_intermediate_value_id",
                "trial_id, step, intermediate_value, intermediate_value_type",
            ),
        }
        k = 1
        while count * k < n:
            take = min(count, n - count * k)
            shift = count * k
            db.execute(
                "INSERT INTO trials (trial_id, number, study_id, state, datetime_start, datetime_complete) "
                "SELECT trial_id + ?, number + ?, study_id, state, datetime_start, datetime_complete FROM trials "
                "WHERE trial_id BETWEEN ? AND ?",
                (shift, shift, first_id, first_id + take - 1),
            )
            for table, (key, columns) in copies.items():
                top = db.execute(f"SELECT MAX({key}) FROM {table}").fetchone()[0]
                rest = columns.split(", ", 1)[1]
                db.execute(
                    f"INSERT INTO {table} ({key}, {columns}) SELECT {key} + ? - (SELECT MIN({key}) FROM {table}) + 1, "
                    f"trial_id + ?, {rest} FROM {table} WHERE trial_id BETWEEN ? AND ?",
                    (top, shift, first_id, first_id + take - 1),
                )
            k += 1
        db.commit()
    finally:
        db.close()
    return time.perf_counter() - started


def make_hpt_postgres(url: str, n: int) -> float:
    """A study of ``n`` trials on PostgreSQL: a Tuner runs the first 1,000, SQL copies them up to ``n``.

    The copies (new numbers, the configurations, values and reports of the
    first block in turn) are inserted with the triggers off (a superuser's
    setting, as the throwaway test server gives); returns seconds.
    """
    import anyio
    import asyncpg

    from hpt_async.storage.postgres import PostgresStorage

    started = time.perf_counter()
    block = min(n, BLOCK)
    make_hpt(url, block)
    storage = PostgresStorage(url)

    async def fill() -> None:
        c = await asyncpg.connect(storage.dsn, server_settings={"search_path": storage.schema})
        try:
            sid = await c.fetchval("SELECT id FROM studies WHERE name = 'bench'")
            await c.execute("SET session_replication_role = replica")
            await c.execute(
                "INSERT INTO trials (study_id, number, state, params, value, started, ended, session, writer)"
                " SELECT t.study_id, g, t.state, t.params, t.value, t.started, t.ended, t.session, t.writer"
                " FROM generate_series($2::bigint, $3::bigint) AS g JOIN trials t"
                " ON t.study_id = $1 AND t.number = g % $2",
                sid,
                block,
                n - 1,
            )
            await c.execute(
                "INSERT INTO reports (study_id, number, step, value, objective_values)"
                " SELECT r.study_id, g, r.step, r.value, r.objective_values"
                " FROM generate_series($2::bigint, $3::bigint) AS g JOIN reports r"
                " ON r.study_id = $1 AND r.number = g % $2",
                sid,
                block,
                n - 1,
            )
            await c.execute("RESET session_replication_role")
            await c.execute("UPDATE studies SET next_number = $2, used = $2 WHERE id = $1", sid, n)
            await c.execute("VACUUM ANALYZE trials")
            await c.execute("VACUUM ANALYZE reports")
        finally:
            await c.close()

    if n > block:
        anyio.run(fill)
    return time.perf_counter() - started


if __name__ == "__main__":
    kind, target, size = sys.argv[1], sys.argv[2], int(sys.argv[3])
    seconds = (make_hpt if kind == "hpt" else make_optuna)(target, size)
    print(f"{kind} study of {size} trials in {target}: {seconds:.1f} s")
