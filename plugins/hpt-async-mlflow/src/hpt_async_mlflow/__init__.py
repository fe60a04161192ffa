"""Log hpt-async studies to MLflow: ``loggers=["mlflow"]`` or ``loggers=[MlflowLogger(...)]``.

Each study becomes an MLflow run and each of its trials a run nested under
it.  Installing the distribution registers the name through the entry-point
group ``hpt_async``; :mod:`hpt_async_mlflow.plugin` is the module it names.
"""

from .logger import EXPERIMENT_ENV, STATUS, TRACKING_URI_ENV, MlflowLogger, MlflowLoggingError

__version__ = "0.1.0"

__all__ = ["EXPERIMENT_ENV", "STATUS", "TRACKING_URI_ENV", "MlflowLogger", "MlflowLoggingError", "__version__"]
