"""The ``hpt-async`` command: plugins, and the studies kept in a storage."""

from __future__ import annotations

import argparse
import datetime
import functools
import os
import sqlite3
import sys
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from . import __version__
from .exceptions import HptError, PluginError
from .plugins import KINDS, get_registry
from .trial import TrialState

if TYPE_CHECKING:
    # Imported where a command needs them, so that ``--help`` and parsing load
    # neither the storages (SQLite, aiosqlite) nor anyio.
    from .contracts.storage import Storage, StudySummary
    from .studies import LoadedStudy
    from .trial import TrialRecord

__all__ = ["DEFAULT_STORAGE", "STORAGE_ENV", "build_parser", "main"]

T = TypeVar("T")

STORAGE_ENV = "HPT_ASYNC_STORAGE"
"""Environment variable holding the storage URL used when ``--storage`` is not given."""

DEFAULT_STORAGE = "sqlite:///hpt.db"
"""The storage used when neither ``--storage`` nor :data:`STORAGE_ENV` is given."""

EPILOG = f"""examples:
  hpt-async plugins                                list every registered strategy, pruner, storage, ...
  hpt-async plugins --kind strategy
  hpt-async studies --storage sqlite:///tuning.db  list the studies in tuning.db with their trial counts
  hpt-async trials resnet                          every trial of study 'resnet'
  hpt-async trials resnet --state complete --limit 20
  hpt-async best resnet                            the best trial of 'resnet' with its configuration
  hpt-async export resnet --format csv -o resnet.csv
  hpt-async export resnet --format json            (to standard output)
  hpt-async report resnet -o resnet.html          an HTML report with charts (opens offline)
  hpt-async report resnet --storage sqlite:///tuning.db -o report.html
  hpt-async dashboard --storage sqlite:///tuning.db   a live web dashboard (read-only)
  hpt-async dashboard --port 0                     on a free port (the address is printed)
  hpt-async rename resnet resnet-2024
  hpt-async delete resnet-2024 --yes
  hpt-async import-optuna --from sqlite:///optuna.db --study mnist --storage hpt.db
  hpt-async migrate --storage sqlite:///old.db     bring an old file's schema up to date
  hpt-async --version

Every study command takes --storage URL; without it the URL comes from the
environment variable {STORAGE_ENV}, else it is {DEFAULT_STORAGE} (the file
hpt.db in the working directory).  Commands that read never create a file, and
open it read-only (they never migrate it).
"""


def _run(fn: Callable[[], Awaitable[T]]) -> T:
    import anyio

    return anyio.run(fn, backend="asyncio")


def _storage(args: argparse.Namespace, *, read_only: bool = False) -> Storage:
    from .studies import open_storage

    return open_storage(args.storage or os.environ.get(STORAGE_ENV) or DEFAULT_STORAGE, read_only=read_only)


def _printable(text: str) -> str:
    """``text`` with control characters (and any other unprintable ones) written as Python escapes.

    A study file from elsewhere may hold parameter names, values or
    attribute keys with terminal escape sequences; printed raw, they could
    retitle or clear the terminal.
    """
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def _say(line: str = "") -> None:
    print(_printable(line))


def _name(text: str) -> str:
    """A study name printable on one line (repr when it holds control characters)."""
    return text if text.isprintable() else repr(text)


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.6g}"


def _when(ts: float | None) -> str:
    if ts is None:
        return "-"
    return datetime.datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S")


def _value(v: Any) -> str:
    if isinstance(v, Mapping) and set(v) == {"repr"}:
        return str(v["repr"])
    if isinstance(v, float):
        return f"{v:.6g}"
    return repr(v) if isinstance(v, str) else str(v)


def _params(params: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={_value(v)}" for k, v in params.items())


def _table(header: Sequence[str], rows: list[Sequence[str]]) -> None:
    rows = [[_printable(c) for c in r] for r in rows]
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)]
    for line in (header, *rows):
        cells = [c.ljust(w) for c, w in zip(line[:-1], widths[:-1], strict=True)]
        _say("  ".join([*cells, line[-1]]).rstrip())


# -- commands -------------------------------------------------------------------


def _cmd_plugins(args: argparse.Namespace) -> int:
    registry = get_registry()
    kinds = [args.kind] if args.kind else list(KINDS)
    for kind in kinds:
        print(f"{kind}:")
        if not registry.names(kind):
            print("  (none registered)")
        for name in registry.names(kind):
            print(f"  {name:<16} {registry.plugin_info(kind, name).describe()}")
    return 0


def _cmd_studies(args: argparse.Namespace) -> int:
    from .studies import describe_settings

    storage = _storage(args, read_only=True)
    found: list[StudySummary] = _run(storage.studies)
    if not found:
        print(f"no studies in {getattr(storage, 'url', storage.name)}")
        return 0
    header = ("STUDY", "DIRECTION", "TRIALS", "COMPLETE", "PRUNED", "PAUSED", "FAILED", "RUNNING", "CREATED", "SEED")
    rows = []
    for s in found:
        c = s.counts
        counts = [str(c.get(st, 0)) for st in ("complete", "pruned", "paused", "failed", "running")]
        direction = s.direction if isinstance(s.direction, str) else ",".join(s.direction)
        described = dict(describe_settings(getattr(s, "settings", None) or {}))
        seed = described.pop("seed", "-")
        components = ", ".join(f"{key}={text}" for key, text in described.items())
        rows.append((_name(s.name), direction, str(s.n_trials), *counts, _when(s.created), seed, components or "-"))
    _table((*header, "COMPONENTS"), rows)
    return 0


def _load(args: argparse.Namespace) -> LoadedStudy:
    from .contracts.storage import StudyNotFound
    from .studies import load_study_async

    storage = _storage(args, read_only=True)
    try:
        return _run(functools.partial(load_study_async, storage, args.study))
    except StudyNotFound:
        # Say so when the reason is that the database file itself is missing.
        path = getattr(storage, "path", None)
        if isinstance(path, str) and path != ":memory:" and not os.path.exists(path):
            raise FileNotFoundError(f"no database file at {path}") from None
        raise


def _cmd_trials(args: argparse.Namespace) -> int:
    study = _load(args)
    trials: list[TrialRecord] = list(study.trials)
    if args.state:
        trials = [t for t in trials if t.state is TrialState(args.state)]
    if args.limit is not None:
        if args.limit < 0:
            raise ValueError(f"--limit takes a number >= 0, got {args.limit}")
        trials = trials[-args.limit :] if args.limit else []
    if not trials:
        print(f"study {_name(study.name)} has no trials" + (f" in state {args.state}" if args.state else ""))
        return 0
    rows = []
    for t in trials:
        retry = f" (retry of {t.retry_of})" if t.retry_of is not None else ""
        rows.append((str(t.number), t.state.value, _number(t.value), _number(t.duration), _params(t.params) + retry))
    _table(("NUMBER", "STATE", "VALUE", "SECONDS", "PARAMS"), rows)
    return 0


def _print_front(study: Any, direction: str, complete: int) -> int:
    """``hpt-async best`` for a study with several objectives: its Pareto front as a table."""
    from .studies import describe_settings

    front = study.best_trials
    if not front:
        if complete:
            print(f"study {_name(study.name)} ({direction}) has no feasible trial: none of its {complete} complete "
                  "trials satisfies every constraint (<= 0)")  # fmt: skip
        else:
            print(f"study {_name(study.name)} ({direction}) has no complete trial yet")
        return 1
    print(f"study:     {_name(study.name)} ({direction}, {len(study.trials)} trials)")
    for key, text in describe_settings({k: v for k, v in study.settings.items() if k != "metric_names"}):
        print(f"{key + ':':<10} {text}")
    print(f"Pareto front: {len(front)} trials")
    heads = [n.upper() for n in (study.metric_names or [f"VALUE {i}" for i in range(len(study.directions))])]
    constrained = any(t.constraints is not None for t in front)
    rows = []
    for t in front:
        values = t.values or ()
        row = [str(t.number), *(_number(v) for v in values)]
        if constrained:
            row.append(", ".join(_number(c) for c in t.constraints or ()))
        row.append(_params(t.params))
        rows.append(tuple(row))
    _table(("NUMBER", *heads, *(("CONSTRAINTS",) if constrained else ()), "PARAMS"), rows)
    return 0


def _cmd_best(args: argparse.Namespace) -> int:
    from .studies import describe_settings

    study = _load(args)
    names = study.metric_names
    if names:
        direction = ", ".join(f"{n}: {d}" for n, d in zip(names, study.directions, strict=True))
    else:
        direction = ", ".join(study.directions)
    complete = study.count(TrialState.COMPLETE)
    if len(study.directions) > 1:
        return _print_front(study, direction, complete)
    best = study.best
    if best is None:
        if complete:
            _say(f"study {_name(study.name)} ({direction}) has no feasible trial: none of its {complete} complete "
                  "trials satisfies every constraint (<= 0)")  # fmt: skip
        else:
            _say(f"study {_name(study.name)} ({direction}) has no complete trial yet")
        return 1
    _say(f"study:     {_name(study.name)} ({direction}, {len(study.trials)} trials)")
    for key, text in describe_settings(study.settings):
        _say(f"{key + ':':<10} {text}")
    _say(f"best:      trial {best.number}")
    _say(f"value:     {best.value!r}")
    if best.values is not None:
        _say(f"values:    {', '.join(repr(v) for v in best.values)}")
    if best.constraints is not None:
        _say(f"constraints: {', '.join(repr(c) for c in best.constraints)} (feasible)")
    _say(f"duration:  {_number(best.duration)} s")
    _say("params:")
    for key, value in best.params.items():
        _say(f"  {key} = {_value(value)}")
    if best.user_attrs:
        _say("user attrs:")
        for key, value in best.user_attrs.items():
            _say(f"  {key} = {value!r}")
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    study = _load(args)
    fmt = args.format
    if fmt is None:
        ext = os.path.splitext(args.output or "")[1].lower()
        fmt = {".csv": "csv", ".json": "json"}.get(ext, "csv")
    if args.output in (None, "-"):
        sys.stdout.write(study.to_csv() if fmt == "csv" else study.to_json())
        return 0
    (study.to_csv if fmt == "csv" else study.to_json)(args.output)
    print(f"wrote {len(study.trials)} trials of study {_name(study.name)} to {args.output} ({fmt})", file=sys.stderr)
    return 0


def _default_report_path(study: str) -> str:
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in study).strip(".") or "study"
    return f"{safe}-report.html"


def _cmd_report(args: argparse.Namespace) -> int:
    from .report import render_report

    output = args.output or _default_report_path(args.study)
    if output != "-":
        parent = os.path.dirname(os.path.abspath(output))
        if os.path.isdir(output):
            raise IsADirectoryError(f"cannot write the report to {output}: it is a directory")
        if not os.path.isdir(parent):
            raise FileNotFoundError(f"cannot write the report to {output}: no directory {parent}")
        if not os.access(parent, os.W_OK):
            raise PermissionError(f"cannot write the report to {output}: directory {parent} is not writable")
    study = _load(args)
    if output == "-":
        sys.stdout.write(render_report(study, title=args.title))
        return 0
    from .report import write_report

    try:
        write_report(study, output, title=args.title)
    except BrokenPipeError:
        raise
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise OSError(f"cannot write the report to {output}: {reason}") from None
    counts = ", ".join(
        f"{study.count(s)} {s}" for s in ("complete", "pruned", "paused", "failed", "running") if study.count(s)
    )
    print(f"wrote the report of study {_name(study.name)} ({len(study.trials)} trials: {counts or 'none'}) to {output}")
    return 0


def _cmd_migrate(args: argparse.Namespace) -> int:
    storage = _storage(args)
    migrate = getattr(storage, "migrate", None)
    if not callable(migrate):
        print(f"storage {storage.name!r} has no schema to migrate")
        return 0
    old, new = _run(migrate)
    where = getattr(storage, "path", storage.name)
    print(f"{where}: schema version {new}" + (f" (migrated from {old})" if old != new else " (up to date)"))
    return 0


def _cmd_delete(args: argparse.Namespace) -> int:
    if not args.yes:
        raise ValueError(f"deleting study {args.study!r} removes all its trials for good: add --yes to confirm")
    storage = _storage(args)
    _run(functools.partial(storage.delete, args.study))
    print(f"deleted study {_name(args.study)}")
    return 0


def _cmd_rename(args: argparse.Namespace) -> int:
    storage = _storage(args)
    _run(functools.partial(storage.rename, args.old, args.new))
    print(f"renamed study {_name(args.old)} to {_name(args.new)}")
    return 0


def _cmd_import_optuna(args: argparse.Namespace) -> int:
    from .optuna_import import OptunaNotInstalled, import_optuna

    url = args.storage or os.environ.get(STORAGE_ENV) or DEFAULT_STORAGE
    if "://" not in url and url != "memory":
        url = f"sqlite:///{url}"  # a bare file name is an SQLite file: --storage hpt.db
    try:
        summary = import_optuna(
            args.source, args.study, url, name=args.name, on_invalid="skip" if args.skip_invalid else "raise"
        )
    except OptunaNotInstalled as exc:
        print(f"hpt-async: error: {exc}", file=sys.stderr)
        return 1
    direction = summary.direction if isinstance(summary.direction, str) else ", ".join(summary.direction)
    skipped = f" ({summary.skipped} unfinished or incomplete trials skipped)" if summary.skipped else ""
    print(
        f"imported {summary.imported} trials{skipped} into study {_name(summary.study)} of {url} "
        f"({direction}; parameters: {', '.join(summary.space.names) or 'none'})"
    )
    return 0


def _cmd_dashboard(args: argparse.Namespace) -> int:
    from .dashboard import main_serve, open_read_only

    url = args.storage or os.environ.get(STORAGE_ENV) or DEFAULT_STORAGE
    open_read_only(url)  # a bad URL fails here, before the server starts
    return main_serve(url, args.host, args.port)


# -- the parser -------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``hpt-async`` (one sub-command per task)."""
    parser = argparse.ArgumentParser(
        prog="hpt-async",
        description="Asynchronous, event-driven hyperparameter tuning.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"hpt-async {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    plugins = sub.add_parser("plugins", help="list registered plugin names and the plugin that provides each")
    plugins.add_argument("--kind", choices=KINDS, help="only this kind")
    plugins.set_defaults(func=_cmd_plugins)

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--storage",
        metavar="URL",
        help=f"storage URL, e.g. sqlite:///tuning.db (default: ${STORAGE_ENV}, else {DEFAULT_STORAGE})",
    )

    def add(name: str, help_text: str, example: str) -> argparse.ArgumentParser:
        p = sub.add_parser(
            name,
            parents=[common],
            help=help_text,
            description=help_text,
            epilog=f"example:\n  {example}",
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        return p

    p = add(
        "studies",
        "list the studies in a storage with their trial counts",
        "hpt-async studies --storage sqlite:///tuning.db",
    )
    p.set_defaults(func=_cmd_studies)

    p = add("trials", "list the trials of a study", "hpt-async trials resnet --state complete --limit 20")
    p.add_argument("study", help="the study's name")
    p.add_argument("--state", choices=[s.value for s in TrialState], help="only trials in this state")
    p.add_argument("--limit", type=int, metavar="N", help="only the last N trials")
    p.set_defaults(func=_cmd_trials)

    p = add("best", "show the best trial of a study", "hpt-async best resnet")
    p.add_argument("study", help="the study's name")
    p.set_defaults(func=_cmd_best)

    p = add("export", "write a study's trials as CSV or JSON", "hpt-async export resnet --format csv -o resnet.csv")
    p.add_argument("study", help="the study's name")
    p.add_argument("--format", choices=("csv", "json"), help="default: from the -o suffix, else csv")
    p.add_argument("-o", "--output", metavar="FILE", help="file to write (default: standard output)")
    p.set_defaults(func=_cmd_export)

    p = add(
        "report",
        "write an HTML report of a study: history, importance, slices, learning curves, timeline",
        "hpt-async report resnet --storage sqlite:///tuning.db -o report.html",
    )
    p.add_argument("study", help="the study's name (it may still be running)")
    p.add_argument(
        "-o", "--output", metavar="FILE", help="HTML file to write (default: STUDY-report.html; - for stdout)"
    )
    p.add_argument("--title", help="the page title (default: the study's name)")
    p.set_defaults(func=_cmd_report)

    p = add(
        "dashboard",
        "serve a live, read-only web dashboard of the storage's studies (needs hpt-async[dashboard])",
        "hpt-async dashboard --storage sqlite:///tuning.db --port 8080",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1, this machine only)")
    p.add_argument("--port", type=int, default=8080, help="port to listen on (default: 8080; 0 picks a free one)")
    p.set_defaults(func=_cmd_dashboard)

    p = add(
        "migrate",
        "bring a storage's schema up to date (read-only commands never migrate)",
        "hpt-async migrate --storage sqlite:///tuning.db",
    )
    p.set_defaults(func=_cmd_migrate)

    p = add("delete", "delete a study and all its trials", "hpt-async delete resnet --yes")
    p.add_argument("study", help="the study's name")
    p.add_argument("--yes", action="store_true", help="confirm the deletion (required)")
    p.set_defaults(func=_cmd_delete)

    p = add("rename", "give a study a new name", "hpt-async rename resnet resnet-2024")
    p.add_argument("old", help="the study's current name")
    p.add_argument("new", help="its new name")
    p.set_defaults(func=_cmd_rename)

    p = add(
        "import-optuna",
        "copy an Optuna study (through Optuna) into a new study of the storage",
        "hpt-async import-optuna --from sqlite:///optuna.db --study mnist --storage hpt.db",
    )
    p.add_argument("--from", dest="source", required=True, metavar="URL", help="the Optuna storage URL")
    p.add_argument("--study", help="the Optuna study (needed when the storage holds several)")
    p.add_argument("--as", dest="name", metavar="NAME", help="the new study's name (default: the Optuna study's)")
    p.add_argument(
        "--skip-invalid", action="store_true", help="leave out trials that do not fit the space instead of failing"
    )
    p.set_defaults(func=_cmd_import_optuna)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``hpt-async`` console script; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args))
    except BrokenPipeError:
        # The reader went away (``hpt-async trials x | head``): stop quietly.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except (PluginError, HptError, LookupError, ValueError, TypeError, OSError, RuntimeError, sqlite3.Error) as exc:
        message = str(exc) or type(exc).__name__
        print(f"hpt-async: error: {message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("hpt-async: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
