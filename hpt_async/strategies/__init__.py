"""Search strategies: what configuration to try next."""

from ..contracts import Strategy
from .bayes import BayesStrategy
from .evolution import EvolutionStrategy
from .grid import GridStrategy
from .random import RandomStrategy
from .sobol import SobolStrategy
from .tpe import TPEStrategy

__all__ = [
    "BayesStrategy",
    "EvolutionStrategy",
    "GridStrategy",
    "RandomStrategy",
    "SobolStrategy",
    "Strategy",
    "TPEStrategy",
]
