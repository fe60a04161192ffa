"""Pruners: decide at each report whether a trial goes on."""

from ..contracts import Decision, Pruner
from ._halving import Rung
from .asha import ASHAPruner
from .hyperband import HyperbandPruner
from .median import MedianPruner

__all__ = ["ASHAPruner", "Decision", "HyperbandPruner", "MedianPruner", "Pruner", "Rung"]
