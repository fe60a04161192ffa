"""What the model-based strategies share: their record of results, encoded, by trial number."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from ..trial import TrialState
from ._encoding import Encoder
from .base import Strategy
from .sobol import SobolStrategy

if TYPE_CHECKING:
    from ..space import Space
    from ..study import StudyView
    from ..trial import TrialRecord

__all__ = ["ModelStrategy"]

_AVOIDED = (TrialState.FAILED, TrialState.PRUNED)


class ModelStrategy(Strategy):
    """Keeps the study's results where a model can use them.

    ``_obs`` maps a COMPLETE trial's number to its encoded configuration and
    value; ``_failed`` maps a FAILED or PRUNED trial's number to its encoded
    configuration (never its value).  Both are rebuilt from the study when the
    space changes (a new study) and kept current by :meth:`tell`.  Before a
    model has enough to go on, subclasses ask ``_design`` (Sobol points).
    """

    check_output = False

    def __init__(self) -> None:
        self._design = SobolStrategy()
        self._space: Space | None = None
        self._enc: Encoder | None = None
        self._obs: dict[int, tuple[np.ndarray, float]] = {}
        self._failed: dict[int, np.ndarray] = {}

    def _reset(self) -> None:
        """Forget model state derived from the results (a subclass's fitted parameters)."""

    def _bind(self, study: StudyView) -> Encoder:
        if self._enc is None or self._space is not study.space:
            self._space = study.space
            self._enc = Encoder(study.space)
            self._obs.clear()
            self._failed.clear()
            self._reset()
            for record in study.finished():
                self._learn(record)
        return self._enc

    def _learn(self, record: TrialRecord) -> None:
        enc = self._enc
        assert enc is not None
        number = record.number
        self._obs.pop(number, None)
        self._failed.pop(number, None)
        value = record.value
        if record.state is TrialState.COMPLETE and value is not None and math.isfinite(value):
            self._obs[number] = (enc.unit(record.params), float(value))
        elif record.state in _AVOIDED and record.params:
            self._failed[number] = enc.unit(record.params)

    def _observed(self, study: StudyView) -> tuple[np.ndarray, np.ndarray]:
        """Encoded configurations and losses (``sign * value``) of the COMPLETE trials, by number."""
        numbers = sorted(self._obs)
        u_obs = np.array([self._obs[n][0] for n in numbers])
        sign = study.sign()
        return u_obs, np.array([sign * self._obs[n][1] for n in numbers])

    async def start(self, study: StudyView) -> None:
        self._enc = None
        self._bind(study)

    async def tell(self, study: StudyView, record: TrialRecord) -> None:
        self._bind(study)
        self._learn(record)
