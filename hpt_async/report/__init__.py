"""A study as pictures: one self-contained HTML report, or the figures one by one.

>>> from hpt_async import load_study
>>> from hpt_async.report import figures, write_report
>>> study = load_study("sqlite:///tuning.db", "resnet")            # doctest: +SKIP
>>> write_report(study, "resnet.html")                              # doctest: +SKIP
>>> figures(study)["history"].save("history.svg")                   # doctest: +SKIP

The report holds the optimisation history, parallel coordinates,
hyperparameter importance, slices of the value against each parameter, the
intermediate values, and a timeline of the trials over wall time; a study
with several objectives adds its Pareto front (each pair of objectives, the
feasible front highlighted, infeasible trials marked) and its hypervolume
over time, and its other charts show the first objective.  Charts are
SVG drawn by hpt-async itself; the page loads nothing from the network.  A
study still running can be reported on at any time: the report shows it as
read at that moment.  Importance needs scikit-learn (``pip install
'hpt-async[report]'``); without it that chart says so and the rest is drawn.
"""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path
from typing import Any

from ..contracts.storage import Storage
from ._charts import CHARTS
from ._data import StudyData, study_data
from ._importance import Importance, ImportanceUnavailable, compute_importance
from ._mo_charts import MO_CHARTS
from ._page import page
from ._svg import BEST, STATE_COLOURS, Figure

__all__ = [
    "BEST",
    "CHART_NAMES",
    "MO_CHART_NAMES",
    "STATE_COLOURS",
    "Figure",
    "Importance",
    "ImportanceUnavailable",
    "figures",
    "param_importance",
    "render_report",
    "write_report",
]

CHART_NAMES: tuple[str, ...] = tuple(CHARTS)
"""The keys of :func:`figures`, in the report's order (a study with several objectives adds :data:`MO_CHART_NAMES`)."""

MO_CHART_NAMES: tuple[str, ...] = tuple(MO_CHARTS)
"""The charts a study with several objectives adds: its Pareto front and its hypervolume over time."""


def _builders(data: StudyData) -> dict[str, Any]:
    return {**MO_CHARTS, **CHARTS} if data.several else dict(CHARTS)


def _data(study: Any, storage: str | Storage | None) -> StudyData:
    if isinstance(study, StudyData):
        return study
    if isinstance(study, str):
        if storage is None:
            raise ValueError(f"to report on study {study!r} by name, give its storage: storage='sqlite:///...'")
        from ..studies import load_study

        study = load_study(storage, study)
    if not hasattr(study, "trials"):
        raise TypeError(f"expected a LoadedStudy, a StudyResult, a StudyView or a study name, got {study!r}")
    return study_data(study)


def figures(study: Any, *, storage: str | Storage | None = None) -> dict[str, Figure]:
    """Every chart of the report as a :class:`Figure`, keyed by :data:`CHART_NAMES`.

    ``study`` is a :class:`~hpt_async.LoadedStudy` (from
    :func:`~hpt_async.load_study`), a :class:`~hpt_async.StudyResult`, a
    live :class:`~hpt_async.StudyView` (``tuner.study``, e.g. from a
    plugin), or a study's name together with ``storage``.  A chart with nothing to show
    yet is a figure whose ``message`` says why.
    """
    data = _data(study, storage)
    return {name: build(data) for name, build in _builders(data).items()}


def param_importance(study: Any, *, storage: str | Storage | None = None) -> Importance:
    """Each parameter's share of the value's variance, as the importance chart shows it.

    Raises :class:`ImportanceUnavailable` when there are fewer than eight
    complete trials, nothing varies, or scikit-learn is not installed.
    """
    return compute_importance(_data(study, storage))


def render_report(study: Any, *, storage: str | Storage | None = None, title: str | None = None) -> str:
    """The report as the text of one HTML document (see :func:`write_report`)."""
    from .. import __version__

    data = _data(study, storage)
    figs = {name: build(data) for name, build in _builders(data).items()}
    return page(data, figs, title=title, version=__version__)


def _file_mode(path: Path) -> int:
    """The mode a written file gets, as for the study database: 0666 less the umask, or the mode it had."""
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        pass
    umask = os.umask(0o022)
    os.umask(umask)
    return 0o666 & ~umask


def write_report(
    study: Any,
    path: str | os.PathLike[str],
    *,
    storage: str | Storage | None = None,
    title: str | None = None,
) -> Path:
    """Write the study's report to ``path`` as one self-contained HTML file and return the path.

    ``study`` is taken as by :func:`figures`.  A regular file is written
    whole or not at all (through a temporary file beside it, then renamed),
    so a report being refreshed is never seen half-written; a symbolic link
    keeps pointing at the new file; a pipe or device (``/dev/stdout``) is
    written through.  ``OSError`` when the directory does not exist or the
    file cannot be written.  The file's mode follows the rule of the study
    database: a new file is made ``0666`` less the umask (``0600`` under
    ``umask 077``), a replaced one keeps its mode.
    """
    text = render_report(study, storage=storage, title=title)
    target = Path(path)
    if target.is_dir():
        raise IsADirectoryError(f"cannot write the report to {str(target)!r}: it is a directory")
    try:
        mode = os.stat(target).st_mode
    except FileNotFoundError:
        mode = None
    if mode is not None and not stat.S_ISREG(mode):
        # A pipe, a terminal or a device (``/dev/stdout``): write through it, never replace it.
        with open(target, "w", encoding="utf-8") as f:
            f.write(text)
        return target
    # A regular file is replaced whole; behind a symbolic link, the file the link points to.
    real = Path(os.path.realpath(target)) if target.is_symlink() else target
    directory = real.parent if str(real.parent) else Path(".")
    fd, tmp = tempfile.mkstemp(prefix=f".{real.name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(tmp, _file_mode(real))
        os.replace(tmp, real)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return target
