"""Bringing an Optuna study into a hpt-async storage: :func:`import_optuna`.

>>> import_optuna("sqlite:///optuna.db", "mnist", "sqlite:///hpt.db")   # doctest: +SKIP
ImportSummary(study='mnist', imported=120, skipped=2, ...)

The study is read through Optuna itself (``pip install optuna``), so any
storage Optuna opens works.  Its distributions become a
:class:`~hpt_async.Space` (``FloatDistribution`` -> :class:`Float`,
``IntDistribution`` -> :class:`Int`, with ``log`` and ``step``;
``CategoricalDistribution`` -> :class:`Choice`).  A parameter that only
some trials set becomes conditional when one categorical parameter
decides it (``when={"model": ["svm"]}``); otherwise the study cannot be
mapped and :class:`OptunaImportError` says which parameter.  Each
finished trial keeps its state (COMPLETE, PRUNED, FAIL as FAILED), its
value or values, its intermediate values as reports, its user attributes,
and its start and end times; RUNNING and WAITING trials are skipped, and
so are FAILED trials that failed before setting every parameter.  The
space comes from the COMPLETE and PRUNED trials.
``hpt-async import-optuna`` is the command-line form.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import Any

from .exceptions import HptError
from .space import Choice, Float, Int, Space
from .trial import TrialRecord, TrialState

__all__ = ["ImportSummary", "OptunaImportError", "OptunaNotInstalled", "import_optuna", "import_optuna_async"]


class OptunaNotInstalled(HptError, ImportError):
    """Importing an Optuna study needs Optuna, which is not installed."""


class OptunaImportError(HptError, ValueError):
    """The Optuna study cannot be brought in as it is (the message says why and names the parameter)."""


@dataclass(frozen=True)
class ImportSummary:
    """What :func:`import_optuna` did: the new study, its space and direction, trials imported and skipped."""

    study: str
    storage: str
    direction: str | tuple[str, ...]
    space: Space
    imported: int
    #: Trials left out: RUNNING and WAITING ones (not finished), and FAILED ones without every parameter.
    skipped: int


def _optuna() -> Any:
    try:
        import optuna
    except ImportError:
        raise OptunaNotInstalled(
            "importing an Optuna study needs Optuna: pip install optuna (or 'hpt-async[bench]')"
        ) from None
    return optuna


def _domain(name: str, dist: Any, optuna: Any, when: Mapping[str, Any] | None = None) -> Any:
    """The hpt-async domain of an Optuna distribution (``when``: its condition, if any)."""
    d = optuna.distributions
    if isinstance(dist, d.FloatDistribution):
        return Float(dist.low, dist.high, log=dist.log, step=dist.step, when=when)
    if isinstance(dist, d.IntDistribution):
        return Int(dist.low, dist.high, log=dist.log, step=dist.step, when=when)
    if isinstance(dist, d.CategoricalDistribution):
        return Choice(list(dist.choices), when=when)
    raise OptunaImportError(f"parameter {name!r}: Optuna distribution {dist!r} has no hpt-async domain")


def _conditions(names: list[str], trials: list[Any], domains: dict[str, Any]) -> dict[str, dict[str, list[Any]]]:
    """For each parameter only some trials set, the categorical parent and values that decide it."""
    when: dict[str, dict[str, list[Any]]] = {}
    for name in names:
        having = [t for t in trials if name in t.params]
        lacking = [t for t in trials if name not in t.params]
        if not lacking:
            continue
        found = None
        for parent in names:
            if parent == name or not isinstance(domains[parent], Choice) or parent in when:
                continue
            if any(parent not in t.params for t in having):
                continue
            with_values = [t.params[parent] for t in having]
            without = [t.params[parent] for t in lacking if parent in t.params]
            if len(without) != len(lacking):
                continue
            if not any(_same(v, w) for v in with_values for w in without):
                found = parent, _unique(with_values)
                break
        if found is None:
            raise OptunaImportError(
                f"parameter {name!r} is set in only some trials and no categorical parameter decides when, "
                "so the study has no hpt-async space; the trials that lack it are "
                f"{[t.number for t in lacking][:10]}"
            )
        when[name] = {found[0]: found[1]}
    return when


def _same(a: Any, b: Any) -> bool:
    return type(a) is type(b) and a == b


def _unique(values: list[Any]) -> list[Any]:
    out: list[Any] = []
    for v in values:
        if not any(_same(v, u) for u in out):
            out.append(v)
    return out


def _space(trials: list[Any], optuna: Any) -> Space:
    """The space the trials' distributions describe (parents before their children)."""
    dists: dict[str, Any] = {}
    for t in trials:
        for name, dist in t.distributions.items():
            known = dists.get(name)
            if known is None:
                dists[name] = dist
            elif known != dist:
                raise OptunaImportError(
                    f"parameter {name!r} has two distributions in the study ({known!r} and {dist!r}, "
                    f"the second in trial {t.number}): hpt-async keeps one domain per parameter"
                )
    names = list(dists)
    domains = {name: _domain(name, dists[name], optuna) for name in names}  # unconditional, to find conditions
    when = _conditions(names, trials, domains)
    ordered: list[str] = []

    def place(name: str) -> None:
        if name in ordered:
            return
        for parent in when.get(name, {}):
            place(parent)
        ordered.append(name)

    for name in names:
        place(name)
    built = {name: _domain(name, dists[name], optuna, when.get(name)) for name in ordered}
    return Space(built)


def _record(t: Any, optuna: Any, objectives: int | None) -> TrialRecord | None:
    """The finished Optuna trial ``t`` as a record (numbered -1), or ``None`` for one that did not finish."""
    states = optuna.trial.TrialState
    if t.state == states.COMPLETE:
        state = TrialState.COMPLETE
    elif t.state == states.PRUNED:
        state = TrialState.PRUNED
    elif t.state == states.FAIL:
        state = TrialState.FAILED
    else:
        return None
    reports = {int(step): float(v) for step, v in sorted(t.intermediate_values.items())}
    values = None
    value: float | None = None
    if state is TrialState.COMPLETE:
        got = tuple(float(v) for v in (t.values or ()))
        if objectives is None:
            value = got[0] if got else None
        else:
            values, value = got, (got[0] if got else None)
    elif state is TrialState.PRUNED:
        value = t.value if t.value is not None else (reports[max(reports)] if reports else None)
        if value is not None and not math.isfinite(value):
            value = None
    started = t.datetime_start.timestamp() if t.datetime_start is not None else 0.0
    ended = t.datetime_complete.timestamp() if t.datetime_complete is not None else started
    error = None
    if state is TrialState.FAILED:
        error = str(t.system_attrs.get("fail_reason") or "FAIL in Optuna (which keeps no error message)")
    return TrialRecord(
        number=-1,
        state=state,
        params=dict(t.params),
        value=value,
        reports=MappingProxyType(reports),
        user_attrs=MappingProxyType(dict(t.user_attrs)),
        error=error,
        started=started,
        ended=ended,
        values=values,
    )


async def import_optuna_async(
    source: str, study: str | None, storage: Any, *, name: str | None = None, on_invalid: str = "raise"
) -> ImportSummary:
    """The async form of :func:`import_optuna`."""
    import anyio

    from .contracts.storage import StudyNotFound
    from .studies import open_storage
    from .warm_start import read_trials

    optuna = _optuna()
    names = optuna.study.get_all_study_names(storage=source)
    if study is None:
        if len(names) != 1:
            raise OptunaImportError(f"name the Optuna study to import (--study): {source} holds {sorted(names)}")
        study = names[0]
    elif study not in names:
        raise OptunaImportError(f"no Optuna study named {study!r} in {source}; it holds {sorted(names)}")
    loaded = optuna.load_study(study_name=study, storage=source)
    trials = loaded.get_trials(deepcopy=False)
    directions = [d.name.lower() for d in loaded.directions]
    direction: str | tuple[str, ...] = directions[0] if len(directions) == 1 else tuple(directions)
    objectives = None if isinstance(direction, str) else len(direction)
    states = optuna.trial.TrialState
    ran = [t for t in trials if t.state in (states.COMPLETE, states.PRUNED)]
    space = _space(ran or [t for t in trials if t.state == states.FAIL], optuna)
    records = [r for r in (_record(t, optuna, objectives) for t in trials) if r is not None]
    failed = [r for r in records if r.state is TrialState.FAILED]
    others = [r for r in records if r.state is not TrialState.FAILED]
    # A failed trial may have failed before suggesting every parameter: such ones are left out, with a warning.
    checked = read_trials(others, space, objectives=objectives, on_invalid=on_invalid)
    checked += read_trials(failed, space, objectives=objectives, on_invalid="skip")
    checked.sort(key=lambda r: r.started)
    skipped = len(trials) - len(checked)
    target = name or study
    backend = open_storage(storage)
    try:
        await backend.summary(target)
    except StudyNotFound:
        pass
    else:
        raise OptunaImportError(f"storage {storage!r} already holds a study named {target!r}: choose another name")
    session = await backend.open(target, direction=direction, space=space)
    try:
        for record in checked:
            number = await session.reserve()
            await session.trial_ended(_numbered(record, number))
    finally:
        with anyio.CancelScope(shield=True):
            await session.close()
    url = storage if isinstance(storage, str) else getattr(backend, "name", "storage")
    return ImportSummary(target, url, direction, space, len(checked), skipped)


def _numbered(record: TrialRecord, number: int) -> TrialRecord:
    return replace(record, number=number)


def import_optuna(
    source: str, study: str | None, storage: Any, *, name: str | None = None, on_invalid: str = "raise"
) -> ImportSummary:
    """Copy the Optuna study ``study`` from the Optuna storage URL ``source`` into ``storage``.

    ``storage`` is a hpt-async storage URL (``"sqlite:///hpt.db"``) or a
    :class:`~hpt_async.Storage`; the new study is named ``name`` (default:
    the Optuna study's name) and must not exist yet.  ``study`` may be
    ``None`` when ``source`` holds one study.  ``on_invalid="skip"`` leaves
    out trials whose parameters do not fit the space (with a warning)
    instead of refusing the import.  Run a :class:`~hpt_async.Tuner` on the
    new study with the returned ``space`` and ``direction`` to go on from
    there (the imported trials count toward its ``max_trials``).  Raises
    :class:`OptunaNotInstalled` without Optuna and
    :class:`OptunaImportError` for a study that cannot be mapped.  Runs
    its own event loop; in async code await :func:`import_optuna_async`.
    """
    import functools

    import anyio

    fn = functools.partial(import_optuna_async, source, study, storage, name=name, on_invalid=on_invalid)
    return anyio.run(fn)
