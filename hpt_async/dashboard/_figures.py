"""The dashboard's charts: the report's own, drawn from a bounded sample, plus the Pareto front and a trial's curve."""

from __future__ import annotations

import math
from typing import Any

from ..report._charts import CHARTS, WIDTH, _tip, _value_scale
from ..report._data import StudyData
from ..report._svg import BEST, STATE_COLOURS, Figure, Linear, fmt
from ..trial import TrialRecord, TrialState
from ._model import StudyModel, chart_sample

__all__ = ["chart_keys", "pareto", "prepare", "render", "trial_curve"]


def chart_keys(model: StudyModel) -> list[str]:
    """The charts of a study's page, in order (the Pareto front only with several objectives)."""
    keys = list(CHARTS)
    if len(model.info.directions) > 1:
        keys.insert(1, "pareto")
    return keys


def pareto(data: StudyData, directions: tuple[str, ...], front: list[TrialRecord]) -> Figure:
    """The first two objectives of the sampled complete trials, the whole Pareto front joined and highlighted."""
    fig = Figure(
        "pareto",
        "Pareto front",
        WIDTH,
        400,
        caption="Each complete trial by its first two objectives; the highlighted trials are the Pareto front "
        "(no other trial is at least as good in every objective and better in one).",
    )
    points = [t for t in data.trials if t.state is TrialState.COMPLETE and t.values and len(t.values) >= 2]
    points = [t for t in points if all(math.isfinite(v) for v in t.values[:2])]  # type: ignore[index]
    front = [t for t in front if t.values and all(math.isfinite(v) for v in t.values[:2])]
    if not points and not front:
        fig.show_message("No complete trial yet: the Pareto front appears once a trial has completed.")
        return fig
    left, right, top, bottom = 80, WIDTH - 24, 34, 400 - 52
    xs_values = [t.values[0] for t in [*points, *front]]  # type: ignore[index]
    ys_values = [t.values[1] for t in [*points, *front]]  # type: ignore[index]
    xs, xlabel = _value_scale(xs_values, left, right)
    ys, ylabel = _value_scale(ys_values, bottom, top)
    fig.x_axis(xs, bottom, xlabel.replace("objective value", f"objective 1 ({directions[0]})"), grid_to=top)
    fig.y_axis(ys, left, ylabel.replace("objective value", f"objective 2 ({directions[1]})"), grid_to=right)
    on_front = {t.number for t in front}
    for t in points:
        if t.number not in on_front:
            fig.circle(
                xs(t.values[0]),
                ys(t.values[1]),
                3.2,
                STATE_COLOURS["complete"],
                tip=_tip(t, data),  # type: ignore[index]
                fill_opacity=0.55,
            )
    line = sorted(front, key=lambda t: t.values[0])  # type: ignore[index]
    fig.polyline(
        [(xs(t.values[0]), ys(t.values[1])) for t in line],
        BEST,
        stroke_width=1.6,  # type: ignore[index]
        stroke_dasharray="4 3",
    )
    for t in line:
        tip = _tip(t, data) + "\nvalues " + ", ".join(fmt(v, 6) for v in t.values)  # type: ignore[union-attr]
        fig.circle(xs(t.values[0]), ys(t.values[1]), 5, BEST, tip=tip)  # type: ignore[index]
    fig.legend(
        [("dot", STATE_COLOURS["complete"], "complete trial"), ("dot", BEST, f"Pareto front ({len(front)})")], left, 12
    )
    if len(directions) > 2:
        fig.notes.append(f"The study has {len(directions)} objectives; the chart shows the first two.")
    return fig


def prepare(model: StudyModel, key: str) -> dict[str, Any]:
    """What :func:`render` needs of ``model`` for chart ``key``, taken on the event loop (cheap, no drawing)."""
    return {
        "key": key,
        "data": chart_sample(model, key),
        "front": model.pareto() if key == "pareto" else [],
        "directions": model.info.directions,
        "total": len(model.records),
        "version": model.version,
    }


def render(prepared: dict[str, Any]) -> dict[str, Any]:
    """Draw a prepared chart (in a worker thread): its SVG, title, caption and notes, JSON-ready."""
    key, data, total, directions = prepared["key"], prepared["data"], prepared["total"], prepared["directions"]
    fig = pareto(data, directions, prepared["front"]) if key == "pareto" else CHARTS[key](data)
    shown = len(data.trials)
    if shown < total and not fig.empty:
        if key == "timeline":
            fig.notes.append(f"The {shown:,} most recent of {total:,} trials.")
        elif key == "importance":
            fig.notes.append(f"Fitted on an even spread of the complete trials ({total:,} trials in all).")
        elif key == "intermediate":
            fig.notes.append(f"The curves of {shown:,} of {total:,} trials, spread over the study (the best kept).")
        else:
            fig.notes.append(
                f"Drawn from {shown:,} of {total:,} trials: every trial that improved the best so far, the best "
                "trials, running trials and an even spread of the rest."
            )
    if len(directions) > 1 and key != "pareto" and not fig.empty:
        fig.notes.append("The study has several objectives: this chart shows the first.")
    return {
        "key": key,
        "title": fig.title,
        "caption": fig.caption,
        "notes": list(fig.notes) if not fig.empty else [],
        "empty": fig.empty,
        "svg": fig.to_svg(title=False, standalone=True),
        "version": prepared["version"],
    }


def trial_curve(record: TrialRecord) -> Figure:
    """One trial's reported values by step."""
    fig = Figure(
        "curve", f"Reports of trial {record.number}", WIDTH, 300, caption="The values the trial reported at each step."
    )
    points = sorted((s, v) for s, v in record.reports.items() if math.isfinite(v))
    if not points:
        fig.show_message("This trial reported no intermediate value.")
        return fig
    left, right, top, bottom = 76, WIDTH - 24, 20, 300 - 48
    xs = Linear(points[0][0], points[-1][0], left, right, pad=0.02, integer=True)
    ys, ylabel = _value_scale([v for _, v in points], bottom, top)
    fig.y_axis(ys, left, ylabel.replace("objective value", "reported value"), grid_to=right)
    fig.x_axis(xs, bottom, "step", grid_to=top)
    colour = STATE_COLOURS.get(record.state.value, BEST)
    fig.polyline([(xs(s), ys(v)) for s, v in points], colour, stroke_width=2)
    for s, v in points:
        fig.circle(xs(s), ys(v), 3, colour, tip=f"step {s}\nvalue {fmt(v, 6)}")
    return fig
