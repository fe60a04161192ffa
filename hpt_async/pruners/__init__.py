"""Pruners: decide at each report whether a trial goes on."""

from ._halving import Rung
from .asha import ASHAPruner
from .base import Decision, Pruner
from .hyperband import HyperbandPruner
from .median import MedianPruner

__all__ = ["ASHAPruner", "Decision", "HyperbandPruner", "MedianPruner", "Pruner", "Rung"]
