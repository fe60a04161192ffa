"""Finished trials from elsewhere, checked against a space: what :meth:`Tuner.add_trials` takes in.

:func:`read_trials` turns a source into :class:`~hpt_async.TrialRecord`
objects whose configurations fit the tuner's space:

* :class:`~hpt_async.TrialRecord` objects, or anything with ``trials``
  holding them (a :class:`~hpt_async.LoadedStudy` from
  :func:`~hpt_async.load_study`, a :class:`~hpt_async.StudyResult`);
* a pandas DataFrame with the columns of
  :meth:`LoadedStudy.to_dataframe <hpt_async.LoadedStudy.to_dataframe>`;
* the path of a CSV file as :meth:`LoadedStudy.to_csv
  <hpt_async.LoadedStudy.to_csv>` and ``hpt-async export --format csv``
  write it (the export's formula-cell guard is undone, see
  :func:`unguard_cell`);
* rows, i.e. mappings with those same columns (``state``, ``value``,
  ``params_<name>``, ``reports``, ``user_attrs_<key>``, ...).

Only COMPLETE, PRUNED and FAILED trials are taken (the others are
skipped: they did not finish).  A record whose configuration has a
parameter missing, extra or out of range, or a COMPLETE one without a
finite value, is refused with a :class:`WarmStartError` naming the
parameter; with ``on_invalid="skip"`` it is left out with a warning instead.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from ._csv import unguard_cell
from .exceptions import HptError
from .space import Choice, Float, Int, Space, SpaceError
from .trial import TrialRecord, TrialState

__all__ = ["TAKEN_STATES", "WarmStartError", "read_trials", "unguard_cell"]

log = logging.getLogger("hpt_async")

#: The states of the trials a study takes in (finished ones).
TAKEN_STATES = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAILED)


class WarmStartError(HptError, ValueError):
    """A record that cannot be added to the study (the message names the record and the parameter)."""


@dataclass(frozen=True)
class _Row:
    """One record's source and its position, for messages."""

    where: str
    data: Mapping[str, Any]


def _missing(value: Any) -> bool:
    """An empty cell: ``None``, ``""``, or a float NaN (pandas' missing value)."""
    return value is None or value == "" or (isinstance(value, float) and math.isnan(value))


def _float(value: Any) -> float | None:
    if _missing(value):
        return None
    return float(value)


def _json(value: Any) -> Any:
    """A cell holding JSON text as its value; other text, and values that are not text, as they are."""
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except ValueError:
        return value


def _texts(value: Any) -> set[str]:
    """The ways an exported cell may spell a Choice value."""
    out = {str(value), repr(value)}
    try:
        out.add(json.dumps(value))
    except (TypeError, ValueError):
        pass
    return out


def _param(space: Space, name: str, cell: Any) -> Any:
    """A parameter's value from a table cell, by its domain; the cell itself when it cannot be read."""
    dom = space[name]
    if isinstance(cell, str):
        cell = unguard_cell(cell)
    if isinstance(dom, Choice):
        for value in dom.values:
            if value is cell or (type(value) is type(cell) and value == cell):
                return value
        if isinstance(cell, Mapping) and set(cell) == {"repr"}:
            cell = cell["repr"]
        for value in dom.values:
            if isinstance(cell, str) and cell in _texts(value):
                return value
            if not isinstance(cell, str) and not isinstance(value, bool) and not isinstance(cell, bool):
                try:
                    if value == cell:
                        return value
                except Exception:
                    pass
        return cell
    try:
        if isinstance(dom, Int):
            number = float(cell)
            return int(number) if number.is_integer() else number
        if isinstance(dom, Float):
            return float(cell)
    except (TypeError, ValueError):
        return cell
    return cell


def _from_row(row: _Row, space: Space) -> TrialRecord:
    """A record from a table row (CSV, DataFrame or mapping with the export's columns)."""
    data = row.data
    cells = {k: (unguard_cell(v) if isinstance(v, str) else v) for k, v in data.items()}
    try:
        state = TrialState(str(cells.get("state", "")).strip().lower())
    except ValueError:
        raise WarmStartError(f"{row.where}: state {data.get('state')!r} is not a trial state") from None
    given = {k[len("params_") :]: v for k, v in data.items() if k.startswith("params_")}
    params: dict[str, Any] = {}
    for name in space.names:
        if name in given and not _missing(given[name]) and space.is_active(name, params):
            params[name] = _param(space, name, given[name])
        elif name in given and _missing(given[name]) and space.is_active(name, params):
            dom = space[name]
            if isinstance(dom, Choice) and None in dom.values:
                params[name] = None
    extra = [n for n, v in given.items() if n not in space.names and not _missing(v)]
    for name in extra:
        params[name] = given[name]  # refused by the space's check, which names it
    inactive = [n for n in space.names if n in given and not _missing(given[n]) and n not in params]
    for name in inactive:
        params[name] = _param(space, name, given[name])  # refused too: given but inactive
    reports_cell = _json(cells.get("reports"))
    reports: dict[int, float] = {}
    if isinstance(reports_cell, Mapping):
        try:
            reports = {int(step): float(value) for step, value in reports_cell.items() if not _missing(value)}
        except (TypeError, ValueError):
            raise WarmStartError(f"{row.where}: reports {data.get('reports')!r} are not step: value pairs") from None
    elif not _missing(reports_cell):
        raise WarmStartError(f"{row.where}: reports {data.get('reports')!r} are not step: value pairs")
    attrs = {k[len("user_attrs_") :]: _json(v) for k, v in cells.items() if k.startswith("user_attrs_")}
    attrs = {k: v for k, v in attrs.items() if not _missing(v)}
    try:
        value = _float(cells.get("value"))
        started = _float(cells.get("started")) or 0.0
        ended = _float(cells.get("ended"))
    except (TypeError, ValueError) as exc:
        raise WarmStartError(f"{row.where}: {exc}") from None
    error = cells.get("error")
    tb = cells.get("traceback")
    return TrialRecord(
        number=-1,
        state=state,
        params=params,
        value=value,
        reports=MappingProxyType(reports),
        user_attrs=MappingProxyType(attrs),
        error=None if _missing(error) else str(error),
        traceback=None if _missing(tb) else str(tb),
        started=started,
        ended=ended if ended is not None else started,
    )


def _rows(source: Any) -> list[_Row | TrialRecord]:
    """The records or rows of ``source``, in order."""
    if isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        try:
            with open(path, encoding="utf-8", newline="") as f:
                return [_Row(f"{path} line {i + 2}", row) for i, row in enumerate(csv.DictReader(f))]
        except OSError as exc:
            raise WarmStartError(f"cannot read trials from {path!r}: {exc}") from None
    if isinstance(source, TrialRecord):
        return [source]
    trials = getattr(source, "trials", None)
    if trials is not None and not callable(trials):
        if isinstance(trials, Mapping):
            trials = [trials[n] for n in sorted(trials)]
        return list(trials)
    if hasattr(source, "columns") and hasattr(source, "to_dict"):  # a pandas DataFrame
        frame = source.reset_index() if "number" not in source.columns else source
        return [_Row(f"row {i}", row) for i, row in enumerate(frame.to_dict("records"))]
    if isinstance(source, Mapping):
        return [_Row("row 0", source)]
    if isinstance(source, Iterable):
        out: list[_Row | TrialRecord] = []
        for i, item in enumerate(source):
            if isinstance(item, TrialRecord):
                out.append(item)
            elif isinstance(item, Mapping):
                out.append(_Row(f"row {i}", item))
            else:
                raise TypeError(f"item {i}: expected a TrialRecord or a row mapping, got {type(item).__name__}")
        return out
    raise TypeError(
        "add_trials() takes TrialRecords, a LoadedStudy or StudyResult, a pandas DataFrame, a CSV path "
        f"or rows, got {type(source).__name__}"
    )


def _check(record: TrialRecord, space: Space, objectives: int | None, where: str) -> TrialRecord:
    """``record`` with its configuration checked (in space order), or :class:`WarmStartError`."""
    # A study loaded without its space gives Choice values as their JSON descriptions: read them back.
    names = set(space.names)
    given = {k: v if k not in names or space[k].contains(v) else _param(space, k, v) for k, v in record.params.items()}
    try:
        params = space.validate(given)
    except SpaceError as exc:
        raise WarmStartError(f"{where}: {exc}") from None
    value, values = record.value, record.values
    if objectives is not None:
        if record.state is TrialState.COMPLETE and (values is None or len(values) != objectives):
            raise WarmStartError(
                f"{where}: a study with {objectives} objectives needs one value per objective, got {values!r} "
                "(tables keep only the first value: add such trials as TrialRecords)"
            )
    elif values is not None:
        raise WarmStartError(f"{where}: it has {len(values)} objective values; this study has one objective")
    if record.state is TrialState.COMPLETE:
        checked = values if values is not None else (value,)
        if any(v is None or not math.isfinite(v) for v in checked):
            raise WarmStartError(f"{where}: a COMPLETE trial needs a finite value, got {value!r}")
    for step, v in record.reports.items():
        if not isinstance(step, int) or isinstance(step, bool) or step < 0:
            raise WarmStartError(f"{where}: report step {step!r} is not a non-negative integer")
        if not isinstance(v, (int, float)) or isinstance(v, bool):
            raise WarmStartError(f"{where}: report value {v!r} at step {step} is not a number")
    if record.state is TrialState.PRUNED and value is None and record.reports:
        value = record.reports[max(record.reports)]
    return TrialRecord(
        number=-1,
        state=record.state,
        params=MappingProxyType(params),
        value=value,
        reports=MappingProxyType(dict(record.reports)),
        user_attrs=MappingProxyType(dict(record.user_attrs)),
        error=record.error,
        traceback=record.traceback,
        started=record.started,
        ended=record.ended if record.ended is not None else record.started,
        values=values,
        report_values=MappingProxyType(dict(record.report_values)),
    )


def read_trials(
    source: Any, space: Space, *, objectives: int | None = None, on_invalid: str = "raise"
) -> list[TrialRecord]:
    """The finished trials of ``source`` (see the module), checked against ``space``.

    Returns new records numbered ``-1`` (a study gives them their numbers
    when it takes them in), in the order of ``source``.  ``objectives`` is
    the number of objectives of the study (``None`` for one).
    ``on_invalid="raise"`` (the default) raises :class:`WarmStartError`
    for the first record that does not fit, naming it and the parameter,
    so that nothing is added; ``"skip"`` leaves such records out, logging
    a warning for each.  Trials that did not finish (RUNNING, CANCELLED,
    LOST, PAUSED) are skipped in both cases.
    """
    if on_invalid not in ("raise", "skip"):
        raise ValueError(f"on_invalid must be 'raise' or 'skip', got {on_invalid!r}")
    out: list[TrialRecord] = []
    for i, item in enumerate(_rows(source)):
        try:
            if isinstance(item, TrialRecord):
                where = f"record {i} (trial {item.number})"
                record = item
            else:
                where = item.where
                number = item.data.get("number")
                if not _missing(number):
                    where += f" (trial {number})"
                record = _from_row(item, space)
            if record.state not in TAKEN_STATES:
                continue
            out.append(_check(record, space, objectives, where))
        except WarmStartError as exc:
            if on_invalid == "raise":
                raise
            log.warning("skipped a trial that does not fit the study: %s", exc)
    return out
