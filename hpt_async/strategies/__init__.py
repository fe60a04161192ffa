"""Search strategies: what configuration to try next."""

from .base import Strategy
from .grid import GridStrategy
from .random import RandomStrategy
from .sobol import SobolStrategy

__all__ = ["GridStrategy", "RandomStrategy", "SobolStrategy", "Strategy"]
