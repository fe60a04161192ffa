"""A throwaway PostgreSQL server for tests and benchmarks.

>>> with TemporaryPostgres() as url:          # doctest: +SKIP
...     tuner = Tuner(..., storage=url, study="s")

:class:`TemporaryPostgres` runs ``initdb`` into a new temporary directory,
starts ``postgres`` on a free port of 127.0.0.1 (trust authentication, for
the local user only) and stops it and removes the directory on exit.  The
server binaries are found on ``PATH`` or in Debian's
``/usr/lib/postgresql/<version>/bin`` (package ``postgresql``).  PostgreSQL
refuses to run as root: run as root, the server runs as the user ``nobody``
(through ``runuser``), which owns the temporary directory.

:func:`postgres_url_for_tests` is what the test suite uses: the URL in
``HPT_ASYNC_TEST_POSTGRES_URL`` when it is set, else a throwaway server
(``None`` when no server binaries are installed).
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from ..exceptions import HptError

__all__ = ["URL_ENV", "PostgresUnavailable", "TemporaryPostgres", "find_pg_bin", "postgres_url_for_tests"]

#: The environment variable naming a server for the tests (a ``postgresql://`` URL); the
#: suite then starts none.
URL_ENV = "HPT_ASYNC_TEST_POSTGRES_URL"


class PostgresUnavailable(HptError, RuntimeError):
    """No PostgreSQL server binaries were found, or the server did not start."""


def find_pg_bin() -> Path | None:
    """The directory holding ``initdb`` and ``pg_ctl``, or ``None`` when there is none."""
    found = shutil.which("initdb")
    if found:
        # Resolved, so that the server's other programs (postgres, createdb) are found beside it.
        return Path(found).resolve().parent
    versions = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0,
    )
    return Path(versions[-1]).parent if versions else None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class TemporaryPostgres:
    """A PostgreSQL server in a temporary directory, for as long as the ``with`` block lasts.

    ``settings`` are extra server settings (``{"synchronous_commit": "on"}``),
    passed as ``-c name=value``.  The block's value is the URL of database
    ``postgres`` (user ``postgres``); :meth:`url` gives the URL of another
    database, :meth:`create_database` makes one.
    """

    def __init__(self, *, settings: dict[str, str] | None = None, startup_timeout: float = 60.0) -> None:
        self.settings = dict(settings or {})
        self.startup_timeout = startup_timeout
        self.port: int | None = None
        self.dir: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._bin: Path | None = None
        self._as_user: list[str] = []

    def url(self, database: str = "postgres") -> str:
        """The URL of ``database`` on this server."""
        if self.port is None:
            raise RuntimeError("the server is not running")
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def _run(self, *argv: str) -> None:
        proc = subprocess.run([*self._as_user, *argv], capture_output=True, text=True, check=False, timeout=120)
        if proc.returncode != 0:
            raise PostgresUnavailable(f"{Path(argv[0]).name} failed: {(proc.stderr or proc.stdout).strip()[-2000:]}")

    def start(self) -> str:
        """Start the server; its URL."""
        pg_bin = find_pg_bin()
        if pg_bin is None:
            raise PostgresUnavailable(
                "no PostgreSQL server binaries (initdb, pg_ctl): install Debian's 'postgresql' package"
            )
        self._bin = pg_bin
        self.dir = Path(tempfile.mkdtemp(prefix="hpt-pg-"))
        if os.geteuid() == 0:
            # The server refuses root: the directory goes to nobody, who runs initdb and the server.
            import pwd

            user = pwd.getpwnam("nobody")
            os.chown(self.dir, user.pw_uid, user.pw_gid)
            self._as_user = ["runuser", "-u", "nobody", "--"]
        data = self.dir / "data"
        self._run(
            str(pg_bin / "initdb"),
            "-D",
            str(data),
            "-U",
            "postgres",
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--no-sync",
            "--no-instructions",
        )
        self.port = _free_port()
        options = {
            "listen_addresses": "127.0.0.1",
            "port": str(self.port),
            "unix_socket_directories": str(self.dir),
            "max_connections": "300",
            "fsync": "on",
            **self.settings,
        }
        argv = [*self._as_user, str(pg_bin / "postgres"), "-D", str(data)]
        for key, value in options.items():
            argv += ["-c", f"{key}={value}"]
        log = open(self.dir / "server.log", "ab")
        self._proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        deadline = time.monotonic() + self.startup_timeout
        while True:
            if self._proc.poll() is not None:
                text = (self.dir / "server.log").read_text(errors="replace")[-2000:]
                self.stop()
                raise PostgresUnavailable(f"the PostgreSQL server exited at start: {text}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), timeout=1):
                if (data / "postmaster.pid").exists() and "ready" in (data / "postmaster.pid").read_text():
                    break
            if time.monotonic() > deadline:
                self.stop()
                raise PostgresUnavailable(f"the PostgreSQL server did not start within {self.startup_timeout:g} s")
            time.sleep(0.05)
        return self.url()

    def create_database(self, name: str) -> str:
        """Create database ``name`` on this server; its URL."""
        assert self._bin is not None
        self._run(str(self._bin / "createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", name)
        return self.url(name)

    def stop(self) -> None:
        """Stop the server (a fast shutdown) and remove its directory."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            # SIGINT to the postmaster itself (not to runuser, which does not pass it on): a fast shutdown.
            target = proc.pid
            with contextlib.suppress(OSError, ValueError, IndexError, TypeError):
                assert self.dir is not None
                target = int((self.dir / "data" / "postmaster.pid").read_text().split()[0])
            with contextlib.suppress(ProcessLookupError):
                os.kill(target, signal.SIGINT)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None
        self.port = None

    def __enter__(self) -> str:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextlib.contextmanager
def postgres_url_for_tests() -> Iterator[str | None]:
    """``HPT_ASYNC_TEST_POSTGRES_URL`` when set, else a throwaway server's URL, else ``None``."""
    given = os.environ.get(URL_ENV)
    if given:
        yield given
        return
    if find_pg_bin() is None:
        yield None
        return
    with TemporaryPostgres() as url:
        yield url
