"""An example hpt-async plugin: the ``local-search`` strategy and the ``csv`` logger.

Installing the distribution is all it takes: hpt-async finds
:mod:`hpt_async_example.plugin` through the entry-point group ``hpt_async``.
The classes can also be used directly, as objects given to a Tuner.
"""

from .csv_logger import CsvLogger
from .local_search import LocalSearchStrategy

__version__ = "0.1.0"

__all__ = ["CsvLogger", "LocalSearchStrategy", "__version__"]
