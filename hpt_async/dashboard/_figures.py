"""The dashboard's charts: the report's own (its Pareto front and hypervolume too), drawn from a bounded sample."""

from __future__ import annotations

import math
from typing import Any

from ..report._charts import CHARTS, WIDTH, _value_scale
from ..report._mo_charts import MO_CHARTS
from ..report._svg import BEST, STATE_COLOURS, Figure, Linear, fmt
from ..trial import TrialRecord
from ._model import StudyModel, chart_data

__all__ = ["chart_keys", "prepare", "render", "trial_curve"]


def _builders(model: StudyModel) -> dict[str, Any]:
    several = len(model.info.directions) > 1
    return {**MO_CHARTS, **CHARTS} if several else dict(CHARTS)


def chart_keys(model: StudyModel) -> list[str]:
    """The charts of a study's page, in the report's order (with several objectives, the Pareto front first)."""
    return list(_builders(model))


async def prepare(model: StudyModel, key: str) -> dict[str, Any]:
    """What :func:`render` needs of ``model`` for chart ``key``: the sample's records (read when not kept)."""
    version, total = model.version, len(model.trials)
    return {
        "key": key,
        "data": await chart_data(model, key),
        "directions": model.info.directions,
        "total": total,
        "version": version,
    }


def render(prepared: dict[str, Any]) -> dict[str, Any]:
    """Draw a prepared chart (in a worker thread): its SVG, title, caption and notes, JSON-ready."""
    key, data, total, directions = prepared["key"], prepared["data"], prepared["total"], prepared["directions"]
    builders = {**MO_CHARTS, **CHARTS}
    fig = builders[key](data)
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
    if len(directions) > 1 and key not in MO_CHARTS and not fig.empty:
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
