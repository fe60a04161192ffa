"""hpt-async: asynchronous, event-driven hyperparameter tuning.

>>> import hpt_async as hpt
>>> space = hpt.Space({"lr": hpt.Float(1e-5, 1e-1, log=True), "layers": hpt.Int(1, 4)})
>>> async def objective(trial):
...     return trial.params["lr"] * trial.params["layers"]
>>> result = anyio.run(hpt.Tuner(objective, space, max_trials=20, loggers=[]).run)  # doctest: +SKIP
"""

from .events import StudyEnded, StudyStarted, TrialCreated, TrialEnded, TrialReported, TrialStarted
from .exceptions import (
    HptError,
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
from .pruners.base import Exploit
from .result import StopReason, StudyResult
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
    BayesStrategy,
    EvolutionStrategy,
    GridStrategy,
    RandomStrategy,
    SobolStrategy,
    Strategy,
    TPEStrategy,
)
from .strategies.pbt import PBTReplayStrategy, PBTStrategy
from .studies import LoadedStudy, load_study, load_study_async
from .study import StudyView
from .trial import ScheduleEntry, SyncTrial, Trial, TrialRecord, TrialState
from .tuner import Tuner

__version__ = "0.1.0"

__all__ = [
    "BayesStrategy",
    "EvolutionStrategy",
    "Exploit",
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
    "Choice",
    "ConsoleLogger",
    "JsonlLogger",
    "Decision",
    "Domain",
    "Executor",
    "Float",
    "GridStrategy",
    "HptError",
    "Int",
    "MemoryStorage",
    "ObjectiveError",
    "PluginError",
    "PluginNotFound",
    "Pruner",
    "RandomStrategy",
    "SobolStrategy",
    "Space",
    "SpaceError",
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
    "register_plugin",
]
