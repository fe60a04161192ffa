"""Every exception hpt-async exposes derives from HptError and keeps its builtin base."""

from __future__ import annotations

import importlib
import pkgutil
from types import ModuleType

import pytest
from common import installed_plugin

import hpt_async as hpt


def public_exceptions() -> list[type[BaseException]]:
    """Every exception class named in ``hpt_async.__all__``."""
    out = []
    for name in hpt.__all__:
        obj = getattr(hpt, name)
        if isinstance(obj, type) and issubclass(obj, BaseException):
            out.append(obj)
    return out


def test_hpt_error_is_public_and_an_exception() -> None:
    assert "HptError" in hpt.__all__
    assert issubclass(hpt.HptError, Exception)
    assert hpt.HptError is hpt.exceptions.HptError


@pytest.mark.parametrize("kind", public_exceptions(), ids=lambda kind: kind.__name__)
def test_every_public_exception_derives_from_hpt_error(kind: type[BaseException]) -> None:
    assert issubclass(kind, hpt.HptError)


@pytest.mark.parametrize(
    ("kind", "builtin"),
    [
        (hpt.SpaceError, ValueError),
        (hpt.StudyError, RuntimeError),
        (hpt.PluginError, RuntimeError),
        (hpt.PluginNotFound, LookupError),
        (hpt.TrialPaused, hpt.TrialPruned),
    ],
)
def test_the_builtin_base_is_kept(kind: type[BaseException], builtin: type[BaseException]) -> None:
    assert issubclass(kind, builtin)


def test_a_bad_space_is_caught_as_an_hpt_error() -> None:
    with pytest.raises(hpt.HptError, match="'x'"):
        hpt.Space({"x": hpt.Float(0.0, 1.0, step=2.0)})


def test_plugin_not_found_still_prints_its_message() -> None:
    assert str(hpt.PluginNotFound("no strategy 'nope'")) == "no strategy 'nope'"


# -- every exception class the project defines ----------------------------------------


def defined_exceptions(package: ModuleType) -> list[type[BaseException]]:
    """Every exception class defined at the top level of ``package`` or of any module under it."""
    modules = [package]
    for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
        modules.append(importlib.import_module(info.name))
    found = []
    for module in modules:
        for obj in vars(module).values():
            if isinstance(obj, type) and issubclass(obj, BaseException) and obj.__module__ == module.__name__:
                found.append(obj)
    return found


def qualified(kind: type) -> str:
    """``module.Name`` of a class."""
    return f"{kind.__module__}.{kind.__qualname__}"


def test_every_exception_class_in_the_package_derives_from_hpt_error() -> None:
    kinds = defined_exceptions(hpt)
    names = {qualified(kind) for kind in kinds}
    # The walk reaches subpackages, not only the top-level modules.
    assert {"hpt_async.executors.process.WorkerCrashed", "hpt_async.report._importance.ImportanceUnavailable"} <= names
    outside = sorted(qualified(kind) for kind in kinds if not issubclass(kind, hpt.HptError))
    assert outside == []


@pytest.mark.parametrize(
    ("dist", "entry_point", "module"),
    [
        ("hpt-async-dask", "dask", "hpt_async_dask"),
        ("hpt-async-mlflow", "mlflow", "hpt_async_mlflow"),
        ("hpt-async-example", "example", "hpt_async_example"),
    ],
)
def test_every_exception_class_in_a_plugin_distribution_derives_from_hpt_error(
    dist: str, entry_point: str, module: str
) -> None:
    package = installed_plugin(dist, entry_point, module)
    outside = sorted(qualified(kind) for kind in defined_exceptions(package) if not issubclass(kind, hpt.HptError))
    assert outside == []


def builtin_bases() -> list[tuple[str, type[BaseException]]]:
    """``(module.Name, builtin base it keeps)`` for the exceptions outside ``hpt_async.exceptions``."""
    return [
        ("hpt_async.executors.process.WorkerCrashed", RuntimeError),
        ("hpt_async.executors.process.WorkerStartError", RuntimeError),
        ("hpt_async.checkpoints.CheckpointError", ValueError),
        ("hpt_async.specs.ComponentSpecError", TypeError),
        ("hpt_async.contracts.storage.StudyNotFound", LookupError),
        ("hpt_async.storage.sqlite.StorageFileError", ValueError),
        ("hpt_async.storage.sqlite.StorageBusyError", RuntimeError),
        ("hpt_async.executors.remote.RemoteError", Exception),
        ("hpt_async.report._importance.ImportanceUnavailable", Exception),
    ]


@pytest.mark.parametrize(("name", "builtin"), builtin_bases(), ids=lambda v: v if isinstance(v, str) else v.__name__)
def test_module_exceptions_are_hpt_errors_with_their_builtin_base(name: str, builtin: type[BaseException]) -> None:
    module, _, attr = name.rpartition(".")
    kind = getattr(importlib.import_module(module), attr)
    assert issubclass(kind, hpt.HptError)
    assert issubclass(kind, builtin)


def test_remote_error_is_an_ordinary_exception_and_an_hpt_error() -> None:
    from hpt_async.executors.remote import RemoteError, _pack_exception, _unpack_exception

    # SystemExit cannot unwind the tuner: it comes back as a RemoteError, which `except Exception` catches.
    exc = _unpack_exception(_pack_exception(SystemExit(3)))
    assert type(exc) is RemoteError
    assert str(exc) == "SystemExit: 3"
    assert isinstance(exc, Exception) and isinstance(exc, hpt.HptError)
    # An objective's own exception that unpickles is re-raised as itself, not wrapped.
    again = _unpack_exception(_pack_exception(KeyError("k")))
    assert type(again) is KeyError


@pytest.mark.parametrize(
    ("dist", "entry_point", "module", "name", "builtin"),
    [
        ("hpt-async-dask", "dask", "hpt_async_dask", "executor.WorkerLost", RuntimeError),
        ("hpt-async-mlflow", "mlflow", "hpt_async_mlflow", "logger.MlflowLoggingError", RuntimeError),
    ],
)
def test_plugin_exceptions_keep_their_builtin_base(
    dist: str, entry_point: str, module: str, name: str, builtin: type[BaseException]
) -> None:
    installed_plugin(dist, entry_point, module)
    submodule, _, attr = name.rpartition(".")
    kind = getattr(importlib.import_module(f"{module}.{submodule}"), attr)
    assert issubclass(kind, hpt.HptError)
    assert issubclass(kind, builtin)
