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

from .contracts.storage import Direction, Storage, StudyNotFound, parse_storage_url
from .plugins import get_registry
from .space import Space, as_space
from .study import better
from .trial import TrialRecord, TrialState

__all__ = ["LoadedStudy", "StudyNotFound", "describe_settings", "load_study", "load_study_async", "open_storage"]


def open_storage(storage: str | Storage) -> Storage:
    """A :class:`Storage` from a URL (``"sqlite:///tuning.db"``) or the object itself."""
    if isinstance(storage, str):
        return get_registry().create("storage", parse_storage_url(storage), storage)
    if not callable(getattr(storage, "load", None)):
        raise TypeError(f"expected a storage URL or a Storage, got {storage!r}")
    return storage


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
    """A CSV cell: numbers and strings as they are, containers as JSON, ``None`` as empty."""
    if value is None:
        return ""
    if isinstance(value, (str, int, float)):
        return value
    if isinstance(value, (Mapping, list, tuple)):
        return json.dumps(value, default=_json_value, ensure_ascii=False)
    return repr(value)


class LoadedStudy:
    """A stored study as read at one moment.

    ``trials`` holds every :class:`~hpt_async.TrialRecord` ordered by number,
    ``best`` the best COMPLETE one for ``direction`` (the earliest on ties)
    or ``None``; ``space`` is the description the study was created with;
    ``settings`` the study's stored settings (seed and component specs).
    ``direction`` is a tuple for a study with several objectives; ``best``
    then ranks trials by the first objective (their ``value``).
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
        first = direction if isinstance(direction, str) else direction[0]
        best: TrialRecord | None = None
        for record in self.trials:
            if record.state is TrialState.COMPLETE and record.value is not None:
                if best is None or better(first, record.value, best.value):  # type: ignore[arg-type]
                    best = record
        self.best = best

    def __repr__(self) -> str:
        best = "None" if self.best is None else f"trial {self.best.number} value={self.best.value!r}"
        return f"LoadedStudy(name={self.name!r}, direction={self.direction!r}, trials={len(self.trials)}, best={best})"

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
        (``{step: value}``).  When some trial's hyperparameters changed while
        it ran (population-based training), a last key ``schedule`` lists
        them as ``{"step", "params", "donor"}`` dicts (empty for the others).
        """
        params, attrs = self._param_names(), self._attr_names()
        schedules = any(r.schedule for r in self.trials)
        rows = []
        for r in self.trials:
            row: dict[str, Any] = {
                "number": r.number,
                "state": r.state.value,
                "value": r.value,
                "started": r.started,
                "ended": r.ended,
                "duration": r.duration,
                "retry_of": r.retry_of,
                "error": r.error,
                "traceback": r.traceback,
            }
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
