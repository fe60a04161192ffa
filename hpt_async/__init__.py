"""hpt-async: asynchronous, event-driven hyperparameter tuning.

>>> import hpt_async as hpt
>>> space = hpt.Space({"lr": hpt.Float(1e-5, 1e-1, log=True), "layers": hpt.Int(1, 4)})
>>> async def objective(trial):
...     return trial.params["lr"] * trial.params["layers"]
>>> result = anyio.run(hpt.Tuner(objective, space, max_trials=20, loggers=[]).run)  # doctest: +SKIP

The public names are imported on first access: ``import hpt_async`` loads
none of the submodules, so a command or worker that needs only a few of them
does not pay for numpy, scipy, SQLite or the console renderer.
"""

from __future__ import annotations

from importlib import import_module as _import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._pareto import hypervolume
    from .contracts import Exploit
    from .convergence import Convergence, RegretBound
    from .events import StudyEnded, StudyStarted, TrialCreated, TrialEnded, TrialReported, TrialStarted
    from .exceptions import (
        HptError,
        MissingDependency,
        ObjectiveError,
        PluginError,
        PluginNotFound,
        StrategyExhausted,
        StudyError,
        StudyFailed,
        TrialCancelled,
        TrialPaused,
        TrialPruned,
    )
    from .executors import AsyncExecutor, Executor, ProcessExecutor, ThreadExecutor
    from .hookspecs import hookimpl
    from .loggers import ConsoleLogger, JsonlLogger
    from .plugins import get_registry, register_plugin
    from .pruners import ASHAPruner, Decision, HyperbandPruner, MedianPruner, Pruner
    from .result import SeveralObjectivesError, StopReason, StudyResult
    from .retry import RetryPolicy
    from .space import Choice, Domain, Float, Int, Space, SpaceError
    from .storage import (
        MemoryStorage,
        SQLiteStorage,
        Storage,
        StorageBusyError,
        StorageFileError,
        StudyNotFound,
        StudySession,
        StudySummary,
    )
    from .strategies import (
        AutoStrategy,
        BayesStrategy,
        CmaEsStrategy,
        EvolutionStrategy,
        GridStrategy,
        RandomStrategy,
        SobolStrategy,
        Strategy,
        TPEStrategy,
    )
    from .strategies.pbt import PBTReplayStrategy, PBTStrategy
    from .studies import LoadedStudy, load_study, load_study_async, open_storage
    from .study import StudyView
    from .trial import ScheduleEntry, SyncTrial, Trial, TrialRecord, TrialState
    from .tuner import Tuner

__version__ = "0.1.0"

__all__ = [
    "BayesStrategy",
    "EvolutionStrategy",
    "Exploit",
    "HptError",
    "MissingDependency",
    "ObjectiveError",
    "PBTReplayStrategy",
    "PBTStrategy",
    "ScheduleEntry",
    "TPEStrategy",
    "ASHAPruner",
    "HyperbandPruner",
    "MedianPruner",
    "ProcessExecutor",
    "LoadedStudy",
    "SQLiteStorage",
    "StorageBusyError",
    "StorageFileError",
    "StudyNotFound",
    "StudySession",
    "StudySummary",
    "load_study",
    "load_study_async",
    "AsyncExecutor",
    "AutoStrategy",
    "CmaEsStrategy",
    "Choice",
    "Convergence",
    "RegretBound",
    "ConsoleLogger",
    "JsonlLogger",
    "Decision",
    "Domain",
    "Executor",
    "Float",
    "GridStrategy",
    "Int",
    "MemoryStorage",
    "PluginError",
    "PluginNotFound",
    "Pruner",
    "RandomStrategy",
    "RetryPolicy",
    "SobolStrategy",
    "Space",
    "SpaceError",
    "SeveralObjectivesError",
    "StopReason",
    "Storage",
    "Strategy",
    "StrategyExhausted",
    "StudyEnded",
    "StudyError",
    "StudyFailed",
    "StudyResult",
    "StudyStarted",
    "StudyView",
    "SyncTrial",
    "ThreadExecutor",
    "Trial",
    "TrialCancelled",
    "TrialCreated",
    "TrialEnded",
    "TrialPaused",
    "TrialPruned",
    "TrialRecord",
    "TrialReported",
    "TrialStarted",
    "TrialState",
    "Tuner",
    "__version__",
    "get_registry",
    "hookimpl",
    "hypervolume",
    "open_storage",
    "register_plugin",
]

# Each public name and the submodule it is imported from on first access.
# It matches the imports under TYPE_CHECKING above (tests/test_imports.py checks).
_LAZY: dict[str, str] = {
    **dict.fromkeys(
        ["StudyEnded", "StudyStarted", "TrialCreated", "TrialEnded", "TrialReported", "TrialStarted"], ".events"
    ),
    **dict.fromkeys(
        [
            "HptError",
            "MissingDependency",
            "ObjectiveError",
            "PluginError",
            "PluginNotFound",
            "StrategyExhausted",
            "StudyError",
            "StudyFailed",
            "TrialCancelled",
            "TrialPaused",
            "TrialPruned",
        ],
        ".exceptions",
    ),
    **dict.fromkeys(["AsyncExecutor", "Executor", "ProcessExecutor", "ThreadExecutor"], ".executors"),
    "hookimpl": ".hookspecs",
    **dict.fromkeys(["ConsoleLogger", "JsonlLogger"], ".loggers"),
    **dict.fromkeys(["get_registry", "register_plugin"], ".plugins"),
    **dict.fromkeys(["ASHAPruner", "Decision", "HyperbandPruner", "MedianPruner", "Pruner"], ".pruners"),
    "Exploit": ".contracts",
    **dict.fromkeys(["Convergence", "RegretBound"], ".convergence"),
    **dict.fromkeys(["SeveralObjectivesError", "StopReason", "StudyResult"], ".result"),
    "hypervolume": "._pareto",
    **dict.fromkeys(["Choice", "Domain", "Float", "Int", "Space", "SpaceError"], ".space"),
    **dict.fromkeys(
        [
            "MemoryStorage",
            "SQLiteStorage",
            "Storage",
            "StorageBusyError",
            "StorageFileError",
            "StudyNotFound",
            "StudySession",
            "StudySummary",
        ],
        ".storage",
    ),
    **dict.fromkeys(
        [
            "AutoStrategy",
            "BayesStrategy",
            "CmaEsStrategy",
            "EvolutionStrategy",
            "GridStrategy",
            "RandomStrategy",
            "SobolStrategy",
            "Strategy",
            "TPEStrategy",
        ],
        ".strategies",
    ),
    **dict.fromkeys(["PBTReplayStrategy", "PBTStrategy"], ".strategies.pbt"),
    **dict.fromkeys(["LoadedStudy", "load_study", "load_study_async", "open_storage"], ".studies"),
    "RetryPolicy": ".retry",
    "StudyView": ".study",
    **dict.fromkeys(["ScheduleEntry", "SyncTrial", "Trial", "TrialRecord", "TrialState"], ".trial"),
    "Tuner": ".tuner",
}

# Submodules that the package used to import at once, so that ``hpt_async.storage``
# and the like work after a bare ``import hpt_async`` as they always did.
_SUBMODULES = frozenset(
    {
        "contracts",
        "events",
        "exceptions",
        "executors",
        "hookspecs",
        "loggers",
        "plugins",
        "pruners",
        "result",
        "retry",
        "space",
        "storage",
        "strategies",
        "studies",
        "study",
        "trial",
        "tuner",
    }
)


def __getattr__(name: str) -> Any:
    """Import the submodule defining the public ``name`` on first access (PEP 562)."""
    if name in _SUBMODULES:
        return _import_module(f"{__name__}.{name}")
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(_import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    """The module's attributes with every public name, imported or not yet."""
    return sorted(set(globals()) | set(__all__) | set(_LAZY))
