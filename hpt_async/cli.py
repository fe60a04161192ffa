"""The ``hpt-async`` command."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from . import __version__
from .exceptions import PluginError
from .plugins import KINDS, get_registry

__all__ = ["main"]

EPILOG = """examples:
  hpt-async plugins               list every registered strategy, pruner, storage, logger and executor
  hpt-async plugins --kind strategy
  hpt-async --version
"""


def _cmd_plugins(args: argparse.Namespace) -> int:
    registry = get_registry()
    kinds = [args.kind] if args.kind else list(KINDS)
    for kind in kinds:
        print(f"{kind}:")
        if not registry.names(kind):
            print("  (none registered)")
        for name in registry.names(kind):
            print(f"  {name:<16} {registry.owner(kind, name)}")
    return 0


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
    except (PluginError, LookupError, ValueError, OSError) as exc:
        print(f"hpt-async: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
