"""What the report reads of a study: its trials and a description of each parameter."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..trial import TrialRecord, TrialState

__all__ = ["Param", "StudyData", "study_data"]


def _described(value: Any) -> Any:
    """The JSON form a stored Choice value takes: JSON scalars as themselves, anything else as its repr."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, Mapping) and set(value) == {"repr"}:
        return dict(value)
    return {"repr": repr(value)}


def value_key(value: Any) -> str:
    """A text key equal for a Choice value and its stored description."""
    return json.dumps(_described(value), sort_keys=True, default=repr)


def value_label(value: Any) -> str:
    """How a parameter value reads in a chart."""
    described = _described(value)
    if isinstance(described, dict):
        return str(described["repr"])
    if isinstance(described, float):
        return f"{described:.4g}"
    return str(described)


@dataclass
class Param:
    """One parameter as the charts place it.

    ``kind`` is ``"float"``, ``"int"`` or ``"choice"``; numbers span
    ``[low, high]`` (on a log axis when ``log``); a Choice has ``labels`` in
    the space's order.  ``when`` is the parameter's condition, if any.
    """

    name: str
    kind: str
    low: float = 0.0
    high: float = 1.0
    log: bool = False
    labels: list[str] = field(default_factory=list)
    keys: list[str] = field(default_factory=list)
    when: Mapping[str, Any] | None = None

    @property
    def categorical(self) -> bool:
        """True for a Choice."""
        return self.kind == "choice"

    def position(self, value: Any) -> float | None:
        """The value as a number on this parameter's axis: itself, or a Choice's index (``None`` if unknown)."""
        if self.categorical:
            key = value_key(value)
            try:
                return float(self.keys.index(key))
            except ValueError:
                return None
        try:
            number = float(value)
        except (TypeError, ValueError):
            return None
        if not math.isfinite(number) or (self.log and number <= 0):
            return None
        return number

    def unit(self, value: Any) -> float | None:
        """The value mapped into ``[0, 1]`` (log-scaled for log parameters), ``None`` when unknown."""
        pos = self.position(value)
        if pos is None:
            return None
        if self.categorical:
            return pos / max(1, len(self.keys) - 1)
        lo, hi, v = self.low, self.high, pos
        if self.log:
            lo, hi, v = math.log10(lo), math.log10(hi), math.log10(v)
        return 0.5 if hi == lo else (v - lo) / (hi - lo)


@dataclass
class StudyData:
    """A study as the report sees it, read at ``read_at`` (a Unix timestamp)."""

    name: str
    direction: str
    trials: tuple[TrialRecord, ...]
    params: list[Param]
    best: TrialRecord | None
    created: float | None
    read_at: float
    #: One direction per objective (``(direction,)`` for one).
    directions: tuple[str, ...] = ()
    #: The objectives' names, or ``None``.
    metric_names: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if not self.directions:
            self.directions = (self.direction,)

    @property
    def several(self) -> bool:
        """True for a study with several objectives."""
        return len(self.directions) > 1

    def objective_names(self) -> list[str]:
        """A label per objective: its metric name, else ``objective 0``, ``objective 1``, ..."""
        if self.metric_names and len(self.metric_names) == len(self.directions):
            return list(self.metric_names)
        return [f"objective {i}" for i in range(len(self.directions))]

    def front(self) -> list[TrialRecord]:
        """The feasible Pareto-optimal COMPLETE trials (the best feasible one for one objective)."""
        from .._pareto import best_record, pareto_front

        if self.several:
            return pareto_front(self.trials, self.directions)
        best = best_record(self.trials, self.direction)
        return [] if best is None else [best]

    @property
    def maximize(self) -> bool:
        """True when larger values are better."""
        return self.direction == "maximize"

    def complete(self) -> list[TrialRecord]:
        """The COMPLETE trials with a finite value."""
        return [
            t for t in self.trials if t.state is TrialState.COMPLETE and t.value is not None and math.isfinite(t.value)
        ]

    def counts(self) -> dict[str, int]:
        """Trials per state, every state present (zero when none)."""
        out = {s.value: 0 for s in TrialState}
        for t in self.trials:
            out[t.state.value] += 1
        return out


def _param_from_description(name: str, desc: Mapping[str, Any]) -> Param:
    kind = str(desc.get("type", "float"))
    when = desc.get("when") or None
    if kind == "choice":
        values = list(desc.get("values", []))
        return Param(
            name, "choice", labels=[value_label(v) for v in values], keys=[value_key(v) for v in values], when=when
        )
    low, high = float(desc.get("low", 0.0)), float(desc.get("high", 1.0))
    return Param(name, "int" if kind == "int" else "float", low, high, bool(desc.get("log")), when=when)


def _param_from_values(name: str, values: Sequence[Any]) -> Param:
    numeric = [v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
    if values and len(numeric) == len(values) and all(math.isfinite(v) for v in numeric):
        low, high = min(numeric), max(numeric)
        log = low > 0 and high / low >= 1000
        kind = "int" if all(isinstance(v, int) for v in numeric) else "float"
        return Param(name, kind, float(low), float(high), log)
    keys: list[str] = []
    labels: list[str] = []
    for v in values:
        k = value_key(v)
        if k not in keys:
            keys.append(k)
            labels.append(value_label(v))
    return Param(name, "choice", labels=labels, keys=keys)


def study_data(study: Any) -> StudyData:
    """Read what the charts need from a LoadedStudy, a StudyResult or a StudyView (``tuner.study``)."""
    records = study.trials.values() if isinstance(study.trials, Mapping) else study.trials
    trials = tuple(sorted(records, key=lambda t: t.number))
    name = getattr(study, "name", None) or getattr(study, "study", None) or "study"
    raw_direction = getattr(study, "direction", "minimize")
    directions = (str(raw_direction),) if isinstance(raw_direction, str) else tuple(str(d) for d in raw_direction)
    direction = directions[0]
    names = getattr(study, "metric_names", None)
    description: Mapping[str, Any] = getattr(study, "space", None) or {}
    if hasattr(description, "describe"):
        description = description.describe()
    params: list[Param] = []
    for pname, desc in description.items():
        if isinstance(desc, Mapping):
            params.append(_param_from_description(pname, desc))
    known = {p.name for p in params}
    extra: dict[str, list[Any]] = {}
    for t in trials:
        for pname, value in t.params.items():
            if pname not in known:
                extra.setdefault(pname, []).append(value)
    params += [_param_from_values(pname, values) for pname, values in extra.items()]
    best = getattr(study, "best", None)
    return StudyData(
        name=str(name),
        direction=direction,
        trials=trials,
        params=params,
        best=best,
        created=getattr(study, "created", None),
        read_at=time.time(),
        directions=directions,
        metric_names=tuple(names) if names else None,
    )
