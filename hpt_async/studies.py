"""Reading a stored study outside a tuner: :func:`load_study` and its table export.

>>> study = load_study("sqlite:///tuning.db", "resnet")          # doctest: +SKIP
>>> study.best.params, study.best.value                            # doctest: +SKIP
>>> study.to_csv("resnet.csv")                                     # doctest: +SKIP

Give the study's :class:`~hpt_async.Space` to get Choice values back as the
very objects (tuples, enums, ``None``); without it a backend that stores a
Choice by index gives each value's JSON description (``{"repr": "..."}`` for
values that are not JSON scalars).
"""

from __future__ import annotations

import asyncio
import csv
import functools
import io
import json
import math
import os
from collections.abc import Mapping
from typing import Any

import anyio

from ._csv import guard_cell
from ._pareto import best_record, pareto_front
from .contracts.storage import Direction, Storage, StudyNotFound, parse_storage_url
from .plugins import get_registry
from .result import SeveralObjectivesError
from .space import Space, as_space
from .trial import TrialRecord, TrialState

__all__ = ["LoadedStudy", "StudyNotFound", "describe_settings", "load_study", "load_study_async", "open_storage"]


def open_storage(storage: str | Storage, *, read_only: bool = False) -> Storage:
    """The :class:`Storage` of a URL (``"sqlite:///tuning.db"``, ``"memory"``), or ``storage`` itself.

    With ``read_only=True`` it is the storage's :meth:`Storage.as_read_only`:
    nothing is written, created or migrated (an SQLite file is opened with
    ``mode=ro`` and leaves no ``-wal``/``-shm`` file behind; it works on a
    read-only file in a read-only directory).  This is how the read-only
    commands of ``hpt-async`` open storage, and how a dashboard should.
    """
    if isinstance(storage, str):
        backend = get_registry().create("storage", parse_storage_url(storage), storage)
    elif not callable(getattr(storage, "load", None)):
        raise TypeError(f"expected a storage URL or a Storage, got {storage!r}")
    else:
        backend = storage
    if read_only:
        as_read_only = getattr(backend, "as_read_only", None)
        if callable(as_read_only):
            backend = as_read_only()
    return backend


def _spec_text(spec: Any) -> str:
    """A component's spec as text: ``{"name": "bayes", "n_initial": 8}`` -> ``bayes(n_initial=8)``."""
    if isinstance(spec, Mapping):
        options = {k: v for k, v in spec.items() if k != "name"}
        name = str(spec.get("name", ""))
        args = ", ".join(
            f"{k}={_spec_text(v) if isinstance(v, Mapping) else json.dumps(v)}" for k, v in options.items()
        )
        return f"{name}({args})" if args or not name else name
    if spec is None:
        return "-"
    return spec if isinstance(spec, str) else json.dumps(spec)


def describe_settings(settings: Mapping[str, Any]) -> list[tuple[str, str]]:
    """A study's stored settings as ``(key, text)`` pairs, the seed first.

    >>> describe_settings({"seed": 3, "strategy": {"name": "bayes", "n_initial": 8}, "pruner": None})
    [('seed', '3'), ('strategy', 'bayes(n_initial=8)'), ('pruner', '-')]
    """
    out = [("seed", _spec_text(settings["seed"]))] if "seed" in settings else []
    out.extend((key, _spec_text(value)) for key, value in settings.items() if key != "seed")
    return out


def _flat(value: Any) -> Any:
    """A described value ``{"repr": r}`` as ``r``; anything else as itself."""
    if isinstance(value, Mapping) and len(value) == 1 and "repr" in value:
        return value["repr"]
    return value


def _finite(value: Any) -> Any:
    return None if isinstance(value, float) and not math.isfinite(value) else value


def _json_value(obj: Any) -> Any:
    item = getattr(obj, "item", None)
    if callable(item) and type(obj).__module__ == "numpy":
        return item()
    return repr(obj)


def _cell(value: Any) -> Any:
    """A CSV cell: numbers as they are, containers as JSON, ``None`` as empty; text guarded against formulas.

    A text cell that a spreadsheet would run as a formula gets a ``'``
    prepended (see :func:`hpt_async._csv.guard_cell`; readers undo it with
    :func:`hpt_async._csv.unguard_cell`).
    """
    if value is None:
        return ""
    if isinstance(value, (int, float)):
        return value
    if isinstance(value, str):
        return guard_cell(value)
    if isinstance(value, (Mapping, list, tuple)):
        return guard_cell(json.dumps(value, default=_json_value, ensure_ascii=False))
    return guard_cell(repr(value))


class LoadedStudy:
    """A stored study as read at one moment.

    ``trials`` holds every :class:`~hpt_async.TrialRecord` ordered by number,
    ``best`` the best feasible COMPLETE one for ``direction`` (the earliest
    on ties) or ``None``; ``space`` is the description the study was
    created with; ``settings`` the study's stored settings (seed, component
    specs, ``metric_names``).  ``direction`` is a tuple for a study with
    several objectives; ``best`` then raises
    :class:`~hpt_async.SeveralObjectivesError` and :attr:`best_trials` is
    its Pareto front of feasible COMPLETE trials.
    """

    def __init__(
        self,
        name: str,
        direction: Direction,
        trials: list[TrialRecord],
        space: Mapping[str, Any] | None = None,
        created: float | None = None,
        settings: Mapping[str, Any] | None = None,
    ) -> None:
        self.name = name
        self.direction = direction
        self.trials: tuple[TrialRecord, ...] = tuple(trials)
        self.space: Mapping[str, Any] = dict(space or {})
        self.created = created
        self.settings: Mapping[str, Any] = dict(settings or {})
        self.directions: tuple[str, ...] = (direction,) if isinstance(direction, str) else tuple(direction)
        names = self.settings.get("metric_names")
        #: The objectives' names (from the study's settings), or ``None``.
        self.metric_names: tuple[str, ...] | None = (
            tuple(names) if isinstance(names, list) and len(names) == len(self.directions) else None
        )
        self._best = best_record(self.trials, self.directions[0]) if len(self.directions) == 1 else None

    @property
    def best(self) -> TrialRecord | None:
        """The best feasible COMPLETE trial, or ``None``; raises for a study with several objectives."""
        if len(self.directions) > 1:
            raise SeveralObjectivesError(
                f"study {self.name!r} has {len(self.directions)} objectives and no single best trial: "
                "use best_trials (the Pareto front of its feasible COMPLETE trials)"
            )
        return self._best

    @property
    def best_trials(self) -> list[TrialRecord]:
        """The feasible COMPLETE trials no other feasible one beats in every objective, by number.

        With one objective, the best feasible trial (or none).
        """
        if len(self.directions) == 1:
            return [] if self._best is None else [self._best]
        return pareto_front(self.trials, self.directions)

    def value_names(self) -> list[str]:
        """The column suffix of each objective: its metric name, else its index (``"0"``, ``"1"``, ...)."""
        return list(self.metric_names) if self.metric_names else [str(i) for i in range(len(self.directions))]

    def __repr__(self) -> str:
        if len(self.directions) > 1:
            best = f"best_trials={len(self.best_trials)}"
        else:
            b = self._best
            best = "best=None" if b is None else f"best=trial {b.number} value={b.value!r}"
        return f"LoadedStudy(name={self.name!r}, direction={self.direction!r}, trials={len(self.trials)}, {best})"

    def count(self, state: TrialState | str) -> int:
        """How many trials are in ``state``."""
        st = TrialState(state)
        return sum(1 for t in self.trials if t.state is st)

    # -- table export -----------------------------------------------------------

    def _param_names(self) -> list[str]:
        names = list(self.space)
        seen = set(names)
        for record in self.trials:
            for name in record.params:
                if name not in seen:
                    seen.add(name)
                    names.append(name)
        return names

    def _attr_names(self) -> list[str]:
        names: dict[str, None] = {}
        for record in self.trials:
            for key in record.user_attrs:
                names.setdefault(key, None)
        return list(names)

    def to_rows(self) -> list[dict[str, Any]]:
        """One dict per trial, ordered by number.

        Keys: ``number``, ``state``, ``value``, ``started``, ``ended``,
        ``duration``, ``retry_of``, ``error``, ``traceback``, then
        ``params_<name>`` for every parameter (``None`` when inactive),
        ``user_attrs_<key>`` for every user attribute, and ``reports``
        (``{step: value}``).  A study with several objectives has, after
        ``value``, one ``values_<name>`` column per objective (its metric
        name, else its index: ``values_0``, ``values_1``, ...).  When some
        trial set constraints, ``constraints_0``, ``constraints_1``, ... and
        ``feasible`` follow ``error``/``traceback``.  When some trial's
        hyperparameters changed while it ran (population-based training), a
        last key ``schedule`` lists them as ``{"step", "params", "donor"}``
        dicts (empty for the others).
        """
        params, attrs = self._param_names(), self._attr_names()
        schedules = any(r.schedule for r in self.trials)
        several = self.value_names() if len(self.directions) > 1 else []
        n_constraints = max((len(r.constraints) for r in self.trials if r.constraints is not None), default=0)
        rows = []
        for r in self.trials:
            row: dict[str, Any] = {
                "number": r.number,
                "state": r.state.value,
                "value": r.value,
                **{
                    f"values_{name}": (r.values[i] if r.values is not None and i < len(r.values) else None)
                    for i, name in enumerate(several)
                },
                "started": r.started,
                "ended": r.ended,
                "duration": r.duration,
                "retry_of": r.retry_of,
                "error": r.error,
                "traceback": r.traceback,
            }
            if n_constraints:
                for i in range(n_constraints):
                    c = r.constraints
                    row[f"constraints_{i}"] = c[i] if c is not None and i < len(c) else None
                row["feasible"] = r.feasible if r.state is TrialState.COMPLETE else None
            for name in params:
                row[f"params_{name}"] = _flat(r.params[name]) if name in r.params else None
            for key in attrs:
                row[f"user_attrs_{key}"] = r.user_attrs.get(key)
            row["reports"] = dict(r.reports)
            if schedules:
                row["schedule"] = [
                    {"step": e.step, "params": {k: _flat(v) for k, v in e.params.items()}, "donor": e.donor}
                    for e in r.schedule
                ]
            rows.append(row)
        return rows

    def to_dataframe(self) -> Any:
        """The rows of :meth:`to_rows` as a pandas DataFrame indexed by ``number``."""
        try:
            import pandas as pd
        except ImportError:
            raise ImportError(
                "LoadedStudy.to_dataframe() needs pandas, which is not installed: pip install pandas "
                "(to_rows(), to_csv() and to_json() work without it)"
            ) from None
        rows = self.to_rows()
        columns = list(rows[0]) if rows else ["number", "state", "value"]
        return pd.DataFrame(rows, columns=columns).set_index("number")

    def _csv_text(self) -> str:
        rows = self.to_rows()
        out = io.StringIO()
        columns = list(rows[0]) if rows else ["number", "state", "value"]
        writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: _cell(v) for k, v in row.items()})
        return out.getvalue()

    def _json_text(self) -> str:
        rows = []
        for row in self.to_rows():
            row = {k: _finite(v) for k, v in row.items()}
            row["reports"] = {str(s): _finite(v) for s, v in row["reports"].items()}
            rows.append(row)
        return json.dumps(rows, default=_json_value, ensure_ascii=False, allow_nan=False, indent=1) + "\n"

    def to_csv(self, path: str | os.PathLike[str] | None = None) -> str | None:
        """Write :meth:`to_rows` as CSV to ``path`` (UTF-8), or return the text when ``path`` is ``None``.

        Containers (reports, list attributes) are JSON text; ``None`` is an empty cell.
        """
        text = self._csv_text()
        if path is None:
            return text
        with open(path, "w", encoding="utf-8", newline="") as f:
            f.write(text)
        return None

    def to_json(self, path: str | os.PathLike[str] | None = None) -> str | None:
        """Write :meth:`to_rows` as a JSON array to ``path``, or return the text when ``path`` is ``None``.

        Non-finite numbers become ``null``; report steps become string keys.
        """
        text = self._json_text()
        if path is None:
            return text
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        return None


async def load_study_async(
    storage: str | Storage, study: str, space: Space | Mapping[str, Any] | None = None
) -> LoadedStudy:
    """The stored ``study`` (async form of :func:`load_study`)."""
    backend = open_storage(storage)
    sp = None if space is None else as_space(space)
    summary = await backend.summary(study)
    if sp is not None:
        diffs = sp.differences(summary.space)
        if diffs:
            raise ValueError(f"study {study!r} was created with another space: " + "; ".join(diffs))
    trials = await backend.load(study, space=sp)
    return LoadedStudy(
        summary.name, summary.direction, trials, summary.space, summary.created, getattr(summary, "settings", None)
    )


def load_study(storage: str | Storage, study: str, space: Space | Mapping[str, Any] | None = None) -> LoadedStudy:
    """The stored ``study`` with its trials, best trial and table export.

    ``storage`` is a URL (``"sqlite:///tuning.db"``) or a :class:`Storage`.
    Raises :class:`~hpt_async.contracts.StudyNotFound` when there is no
    such study, ``ValueError`` when ``space`` is not the study's.  Runs its
    own event loop; inside async code await :func:`load_study_async`.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
        raise RuntimeError("load_study() cannot run inside an event loop: use 'await load_study_async(...)'")
    return anyio.run(functools.partial(load_study_async, storage, study, space), backend="asyncio")
