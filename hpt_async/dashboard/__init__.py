"""A live dashboard of the studies in a storage: a read-only web app that updates as trials end.

>>> import hpt_async.dashboard
>>> await hpt_async.dashboard.serve("sqlite:///tuning.db", port=8080)      # doctest: +SKIP

or, from a shell, ``hpt-async dashboard --storage sqlite:///tuning.db``.
Alongside a tuner in the same program::

    async with anyio.create_task_group() as tg:
        url = await tg.start(hpt_async.dashboard.serve, "sqlite:///tuning.db")
        print("dashboard at", url)
        await tuner.run()
        tg.cancel_scope.cancel()

The server (Starlette on uvicorn, ``pip install 'hpt-async[dashboard]'``)
keeps one reader of changes per study (:meth:`Storage.watch`): it reads only
what changed since its last read and pushes that to open pages by
server-sent events.  Charts are the HTML report's own SVG, drawn on the
server from a bounded sample of a large study; the trial table is sorted,
filtered and paged on the server.  Nothing is loaded from outside the
server (a strict content security policy), every string from a study is
escaped, no route changes a study, and a SQLite file is opened read-only.
See ``docs/dashboard.md``.
"""

from __future__ import annotations

import functools
import ipaddress
import socket
import sys
from typing import TYPE_CHECKING, Any

import anyio
from anyio.abc import TaskStatus

from ..exceptions import HptError

if TYPE_CHECKING:
    from ..contracts.storage import Storage

__all__ = ["DashboardUnavailable", "ReadOnlyStorageError", "open_read_only", "serve"]

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080


class DashboardUnavailable(HptError, ImportError):
    """The dashboard's web server is not installed (``pip install 'hpt-async[dashboard]'``)."""


def __getattr__(name: str) -> Any:
    if name == "ReadOnlyStorageError":
        from ..storage.sqlite import ReadOnlyStorageError

        return ReadOnlyStorageError
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def open_read_only(storage: str | Storage) -> Storage:
    """The storage a dashboard reads: a URL opened read-only, a storage object as it is.

    A URL is opened with :func:`~hpt_async.open_storage`'s ``read_only=True``
    (for SQLite: ``mode=ro`` connections, no migration; ``open``, ``delete``
    and ``rename`` raise ``ReadOnlyStorageError``).  A
    :class:`~hpt_async.contracts.Storage` object is used as it is (for
    example the ``MemoryStorage`` a tuner of the same program writes to).
    """
    from ..studies import open_storage

    if isinstance(storage, str):
        return open_storage(storage, read_only=True)
    return storage


def _check_address(host: str, port: int) -> None:
    if not isinstance(host, str) or not host:
        raise ValueError(f"host is a non-empty string, got {host!r}")
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise ValueError(f"port is an integer in [0, 65535] (0 picks a free port), got {port!r}")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host.strip("[]"), port))
    except OSError as exc:
        sock.close()
        raise OSError(exc.errno, f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.set_inheritable(True)
    return sock


async def serve(
    storage: str | Storage,
    *,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    interval: float = 0.5,
    task_status: TaskStatus[str] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Serve the dashboard of ``storage`` on ``host:port`` until cancelled.

    ``storage`` is a URL (``"sqlite:///tuning.db"``, opened read-only) or a
    storage object.  ``port=0`` picks a free port.  With ``await
    tg.start(serve, ...)`` the caller gets the dashboard's address (e.g.
    ``"http://127.0.0.1:8080/"``) once it listens.  ``interval`` is how often,
    in seconds, each study's reader asks for changes.  The server binds
    127.0.0.1 unless told otherwise; bound to a loopback address, it answers
    only requests addressed to localhost.  It installs no signal handler
    (cancel the task to stop it; the ``hpt-async dashboard`` command stops
    on Ctrl-C and SIGTERM).  :class:`DashboardUnavailable` when Starlette or
    uvicorn is not installed.
    """
    _check_address(host, port)
    try:
        import starlette  # noqa: F401
        import uvicorn
    except ImportError as exc:
        raise DashboardUnavailable(
            f"the dashboard needs Starlette and uvicorn ({exc}): pip install 'hpt-async[dashboard]'"
        ) from None
    from ._app import create_app
    from ._hub import Hub

    store = open_read_only(storage)
    from ._readonly import tidy_side_files

    path = getattr(store, "path", None) if isinstance(storage, str) else None
    label = getattr(store, "url", None) or getattr(store, "name", "storage")
    hub = Hub(store, interval=interval)
    sock = _bind(host, port)
    bound_port = sock.getsockname()[1]
    shown = f"[{host.strip('[]')}]" if ":" in host else host
    address = f"http://{shown}:{bound_port}/"
    app = create_app(hub, storage_label=str(label), loopback_only=_is_loopback(host))
    config = uvicorn.Config(
        app,
        log_level="warning",
        access_log=False,
        lifespan="off",
        timeout_graceful_shutdown=1,
        ws="none",
    )

    class _Server(uvicorn.Server):
        def install_signal_handlers(self) -> None:  # uvicorn < 0.29
            pass

        def capture_signals(self) -> Any:  # uvicorn >= 0.29: the caller (a tuner, the CLI) owns the signals
            import contextlib

            return contextlib.nullcontext()

    server = _Server(config)
    stopped = anyio.Event()
    try:
        async with anyio.create_task_group() as tg:
            await tg.start(hub.run)

            async def run_server() -> None:
                try:
                    # Shielded: a cancelled dashboard stops the server through should_exit, so that uvicorn
                    # closes its connections (open event streams last at most timeout_graceful_shutdown).
                    with anyio.CancelScope(shield=True):
                        await server.serve(sockets=[sock])
                finally:
                    stopped.set()
                    tg.cancel_scope.cancel()

            tg.start_soon(run_server)
            while not server.started:
                if stopped.is_set():
                    raise HptError(f"the dashboard's server did not start on {address}")
                await anyio.sleep(0.01)
            task_status.started(address)
            try:
                await anyio.sleep_forever()
            finally:
                server.should_exit = True
    finally:
        sock.close()
        with anyio.CancelScope(shield=True):
            closer = getattr(store, "aclose", None)
            if closer is not None:
                await closer()
            if isinstance(path, str):
                # A read-only connection can neither remove the -wal and -shm files SQLite makes for it nor
                # let a writer that closes meanwhile remove its own: with no one else left on the file, they go.
                await anyio.to_thread.run_sync(tidy_side_files, path)


def main_serve(storage: str, host: str, port: int) -> int:
    """Run :func:`serve` for the command line, printing the address; stop on Ctrl-C or SIGTERM."""
    import signal

    async def run() -> None:
        # The receiver stays open until the server has stopped, so a second Ctrl-C cannot cut the cleanup short.
        with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async with anyio.create_task_group() as tg:
                address = await tg.start(functools.partial(serve, storage, host=host, port=port))
                print(f"hpt-async dashboard: {address}  (read-only; Ctrl-C stops it)", flush=True)
                async for _ in signals:
                    break
                tg.cancel_scope.cancel()

    try:
        anyio.run(run, backend="asyncio")
    except KeyboardInterrupt:
        pass
    except BaseExceptionGroup as group:
        # One error (a port in use, an unreadable file) comes out of the task groups wrapped: unwrap it
        # so that the command prints it on one line.
        error: BaseException = group
        while isinstance(error, BaseExceptionGroup) and len(error.exceptions) == 1:
            error = error.exceptions[0]
        raise error from None
    print("hpt-async dashboard: stopped", file=sys.stderr, flush=True)
    return 0
