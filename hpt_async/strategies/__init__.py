"""Search strategies: what configuration to try next."""

from .base import Strategy
from .bayes import BayesStrategy
from .grid import GridStrategy
from .random import RandomStrategy
from .sobol import SobolStrategy
from .tpe import TPEStrategy

__all__ = ["BayesStrategy", "GridStrategy", "RandomStrategy", "SobolStrategy", "Strategy", "TPEStrategy"]
