"""Search strategies: what configuration to try next."""

from ..contracts import Strategy
from .auto import AutoStrategy
from .bayes import BayesStrategy
from .cmaes import CmaEsStrategy
from .evolution import EvolutionStrategy
from .grid import GridStrategy
from .random import RandomStrategy
from .sobol import SobolStrategy
from .tpe import TPEStrategy

__all__ = [
    "AutoStrategy",
    "BayesStrategy",
    "CmaEsStrategy",
    "EvolutionStrategy",
    "GridStrategy",
    "RandomStrategy",
    "SobolStrategy",
    "Strategy",
    "TPEStrategy",
]
