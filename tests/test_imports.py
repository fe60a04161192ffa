"""What ``import hpt_async`` and ``hpt-async --help`` load: public names on first access only.

Each check runs in a fresh interpreter, since the test process has long
imported everything.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

import hpt_async

PACKAGE_DIR = Path(hpt_async.__file__).resolve().parent

HEAVY = (
    "numpy",
    "scipy",
    "rich",
    "aiosqlite",
    "asyncpg",
    "orjson",
    "cloudpickle",
    "sklearn",
    "optuna",
    "pandas",
    "cmaes",
)
"""Third-party modules that neither the bare package nor ``--help`` should load."""

FRAMEWORKS = ("torch", "lightning", "pytorch_lightning", "keras", "xgboost", "lightgbm", "tensorboard", "wandb")
"""The optional libraries of the integrations and tracking loggers: loaded only by the module that uses each."""


def run_fresh(code: str) -> Any:
    """Run ``code`` in a new interpreter importing this checkout's hpt_async; return what it printed, as JSON."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(PACKAGE_DIR.parent), env.get("PYTHONPATH", "")) if p)
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=PACKAGE_DIR.parent,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_the_fresh_interpreter_imports_this_checkout() -> None:
    assert run_fresh("import json, hpt_async; print(json.dumps(hpt_async.__file__))") == str(
        PACKAGE_DIR / "__init__.py"
    )


def test_import_loads_no_submodule_and_no_heavy_dependency() -> None:
    loaded = run_fresh(
        """
        import json, sys
        import hpt_async
        print(json.dumps(sorted(sys.modules)))
        """
    )
    assert [m for m in loaded if m.split(".")[0] in HEAVY + FRAMEWORKS] == []
    assert [m for m in loaded if m.startswith("hpt_async")] == ["hpt_async"]


def test_no_framework_is_loaded_by_the_registry_the_loggers_or_the_integrations_package() -> None:
    loaded = run_fresh(
        """
        import json, sys
        import hpt_async, hpt_async.integrations, hpt_async.loggers
        hpt_async.get_registry().names("logger")
        print(json.dumps(sorted(sys.modules)))
        """
    )
    assert [m for m in loaded if m.split(".")[0] in FRAMEWORKS] == []


def test_version_is_there_without_any_lookup() -> None:
    assert run_fresh("import json, hpt_async; print(json.dumps(vars(hpt_async).get('__version__')))") == "0.1.0"


def test_every_public_name_resolves_on_first_access_and_is_kept() -> None:
    found = run_fresh(
        """
        import importlib, json
        import hpt_async
        out = {}
        for name in list(hpt_async.__all__) + sorted(hpt_async._LAZY):
            value = getattr(hpt_async, name)
            if name == "__version__":
                continue
            source = importlib.import_module(hpt_async._LAZY[name], "hpt_async")
            out[name] = [value is getattr(source, name), name in vars(hpt_async)]
        print(json.dumps(out))
        """
    )
    assert set(found) == (set(hpt_async.__all__) | set(hpt_async._LAZY)) - {"__version__"}
    assert {name for name, (same, kept) in found.items() if not (same and kept)} == set()


def test_star_import_gives_every_public_name() -> None:
    got = run_fresh(
        """
        import json
        from hpt_async import *
        import hpt_async
        print(json.dumps([name for name in hpt_async.__all__ if name not in globals()]))
        """
    )
    assert got == []


def test_from_import_of_each_name_works() -> None:
    names = [n for n in hpt_async.__all__ if n != "__version__"]
    got = run_fresh(
        f"""
        import json
        from hpt_async import {", ".join(names)}
        print(json.dumps(sorted(k for k in globals() if not k.startswith("__"))))
        """
    )
    assert set(names) <= set(got)


def test_dir_lists_every_public_name_before_any_is_imported() -> None:
    listed = run_fresh("import json, hpt_async; print(json.dumps(dir(hpt_async)))")
    assert set(hpt_async.__all__) <= set(listed)
    assert listed == sorted(listed)
    assert set(dir(hpt_async)) >= set(hpt_async.__all__)


def test_an_unknown_attribute_raises_attribute_error_naming_the_module() -> None:
    with pytest.raises(AttributeError, match=r"module 'hpt_async' has no attribute 'NoSuchThing'"):
        hpt_async.NoSuchThing  # noqa: B018
    with pytest.raises(ImportError, match="NoSuchThing"):
        exec("from hpt_async import NoSuchThing", {})
    assert not hasattr(hpt_async, "no_such_thing")


def test_subpackages_are_reachable_as_attributes_after_a_bare_import() -> None:
    got = run_fresh(
        """
        import json, sys
        import hpt_async
        reached = [hpt_async.loggers.read_events.__name__, hpt_async.storage.sqlite.SQLiteStorage.__name__]
        reached.append(hpt_async.space is sys.modules["hpt_async.space"])
        print(json.dumps(reached))
        """
    )
    assert got == ["read_events", "SQLiteStorage", True]


def test_every_exported_name_has_a_source_module() -> None:
    assert set(hpt_async.__all__) - {"__version__"} <= set(hpt_async._LAZY)
    assert "HptError" in hpt_async._LAZY
    assert hpt_async.HptError is hpt_async.exceptions.HptError


def test_type_checking_imports_match_the_lazy_table() -> None:
    """Type checkers read the ``if TYPE_CHECKING:`` imports; they must name what ``__getattr__`` returns."""
    tree = ast.parse((PACKAGE_DIR / "__init__.py").read_text())
    blocks = [n for n in tree.body if isinstance(n, ast.If) and ast.unparse(n.test) == "TYPE_CHECKING"]
    assert len(blocks) == 1
    declared = {
        alias.asname or alias.name: "." * node.level + (node.module or "")
        for node in blocks[0].body
        if isinstance(node, ast.ImportFrom)
        for alias in node.names
    }
    assert declared == hpt_async._LAZY


CLI_HELP = """
    import contextlib, io, json, sys
    from hpt_async.cli import main
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        try:
            main(["--help"])
        except SystemExit as exc:
            code = exc.code
    print(json.dumps({"code": code, "help": out.getvalue(), "modules": sorted(sys.modules)}))
"""


def test_cli_help_loads_no_heavy_dependency_and_no_storage() -> None:
    got = run_fresh(CLI_HELP)
    assert got["code"] == 0 and "hpt-async" in got["help"] and "report" in got["help"]
    assert [m for m in got["modules"] if m.split(".")[0] in HEAVY] == []
    assert [m for m in got["modules"] if m.startswith(("hpt_async.storage", "hpt_async.studies", "anyio"))] == []


def test_sqlite_storage_imports_aiosqlite_only_to_connect(tmp_path: Path) -> None:
    got = run_fresh(
        f"""
        import json, sys
        import anyio
        from hpt_async.space import Float, Space
        from hpt_async.storage.sqlite import SQLiteStorage
        before = "aiosqlite" in sys.modules

        async def studies():
            storage = SQLiteStorage({"sqlite:///" + str(tmp_path / "s.db")!r})
            session = await storage.open("s", direction="minimize", space=Space({{"x": Float(0, 1)}}))
            await session.close()
            return [s.name for s in await storage.studies()]

        print(json.dumps([before, anyio.run(studies, backend="asyncio"), "aiosqlite" in sys.modules]))
        """
    )
    assert got == [False, ["s"], True]


def test_bayes_imports_threadpoolctl_only_to_fit() -> None:
    got = run_fresh(
        """
        import json, sys
        from hpt_async.strategies import _model, bayes, tpe  # noqa: F401
        before = "threadpoolctl" in sys.modules
        with _model.one_blas_thread():
            pass
        print(json.dumps([before, "threadpoolctl" in sys.modules]))
        """
    )
    assert got == [False, True]


def test_bayes_fits_without_threadpoolctl() -> None:
    got = run_fresh(
        """
        import json, sys
        sys.modules["threadpoolctl"] = None  # unimportable
        import anyio
        import hpt_async as hpt

        tuner = hpt.Tuner(lambda trial: (trial.params["x"] - 0.3) ** 2, {"x": hpt.Float(0, 1)},
                          strategy="bayes", max_trials=8, loggers=[], seed=0)
        print(json.dumps(anyio.run(tuner.run).count("complete")))
        """
    )
    assert got == 8
