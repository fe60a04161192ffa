"""The charts of a study with several objectives: its Pareto front, and its hypervolume over time."""

from __future__ import annotations

import math
from itertools import combinations

from .._pareto import default_reference_point, hypervolume, losses
from ..trial import TrialRecord, TrialState
from ._data import StudyData, value_label
from ._svg import BEST, INK, MUTED, STATE_COLOURS, Figure, Linear, fmt

__all__ = ["MO_CHARTS", "hypervolume_history", "pareto"]

WIDTH = 960
INFEASIBLE = "#dc2626"
DOMINATED = "#94a3b8"


def _finite(t: TrialRecord, n: int) -> bool:
    return t.values is not None and len(t.values) == n and all(math.isfinite(v) for v in t.values)


def _tip(t: TrialRecord, data: StudyData, on_front: bool) -> str:
    names = data.objective_names()
    lines = [f"trial {t.number} · " + ("Pareto front" if on_front else "feasible" if t.feasible else "infeasible")]
    lines += [f"{name} {fmt(v, 6)}" for name, v in zip(names, t.values or (), strict=False)]
    if t.constraints is not None:
        lines.append("constraints " + ", ".join(fmt(c, 4) for c in t.constraints))
    lines += [f"{k} = {value_label(v)}" for k, v in list(t.params.items())[:8]]
    return "\n".join(lines)


def pareto(data: StudyData) -> Figure:
    """Every complete trial in the plane of each pair of objectives, the feasible Pareto front highlighted."""
    n = len(data.directions)
    pairs = list(combinations(range(n), 2))[:3]
    height = 380
    fig = Figure(
        "pareto",
        "Pareto front",
        WIDTH,
        height,
        caption="Each complete trial in the plane of two objectives (each pair, up to three). Highlighted dots "
        "are the Pareto front: the feasible trials no other feasible trial beats in every objective, joined in "
        "order; crosses are infeasible trials (a constraint above 0); grey dots are dominated.",
    )
    complete = [t for t in data.trials if t.state is TrialState.COMPLETE and _finite(t, n)]
    if not complete:
        fig.show_message("No complete trial yet: the Pareto front appears once a trial has completed.")
        return fig
    front = {t.number for t in data.front()}
    names = data.objective_names()
    gap = 56
    panel = (WIDTH - 24 - gap * len(pairs)) / len(pairs)
    top, bottom = 40, height - 52
    for k, (i, j) in enumerate(pairs):
        left = gap + k * (panel + gap)
        right = left + panel
        xs_values = [t.values[i] for t in complete]  # type: ignore[index]
        ys_values = [t.values[j] for t in complete]  # type: ignore[index]
        xs = Linear(min(xs_values), max(xs_values), left, right, pad=0.06)
        ys = Linear(min(ys_values), max(ys_values), bottom, top, pad=0.06)
        fig.x_axis(xs, bottom, f"{names[i]} ({data.directions[i][:3]})", grid_to=top)
        fig.y_axis(ys, left, f"{names[j]} ({data.directions[j][:3]})", grid_to=right)
        for t in complete:
            if t.number in front:
                continue
            x, y = xs(t.values[i]), ys(t.values[j])  # type: ignore[index]
            if t.feasible:
                fig.circle(x, y, 3.4, DOMINATED, tip=_tip(t, data, False), fill_opacity=0.7)
            else:
                fig.cross(x, y, 3.6, INFEASIBLE, tip=_tip(t, data, False), stroke_width=1.6)
        ranked = sorted((t for t in complete if t.number in front), key=lambda t: (t.values[i], t.values[j]))  # type: ignore[index]
        if n == 2:
            fig.polyline([(xs(t.values[i]), ys(t.values[j])) for t in ranked], BEST, stroke_width=1.6)  # type: ignore[index]
        for t in ranked:
            fig.circle(xs(t.values[i]), ys(t.values[j]), 5, BEST, tip=_tip(t, data, True), fill_opacity=0.9)  # type: ignore[index]
    items = [("dot", BEST, f"Pareto front ({len(front)})"), ("dot", DOMINATED, "dominated")]
    if any(not t.feasible for t in complete):
        items.append(("line", INFEASIBLE, f"infeasible ({sum(1 for t in complete if not t.feasible)}, crosses)"))
    fig.legend(items, gap, 14)
    return fig


def hypervolume_history(data: StudyData) -> Figure:
    """The hypervolume of the feasible front after each complete trial, against a fixed reference point."""
    n = len(data.directions)
    fig = Figure(
        "hypervolume",
        "Hypervolume over time",
        WIDTH,
        320,
        caption="The hypervolume the feasible Pareto front dominates after each trial, by trial number: it grows "
        "as the front improves. The reference point is fixed for the whole chart: the worst value of each "
        "objective on the final front plus 10% of the front's range.",
    )
    feasible = [
        t for t in sorted(data.trials, key=lambda t: t.number)
        if t.state is TrialState.COMPLETE and t.feasible and _finite(t, n)
    ]  # fmt: skip
    if not feasible:
        fig.show_message("No feasible complete trial yet: the hypervolume appears once one has completed.")
        return fig
    front = data.front()
    ref = default_reference_point([losses(t, data.directions) for t in front])  # type: ignore[misc]
    points: list[tuple[int, float]] = []
    seen: list[tuple[float, ...]] = []
    for t in feasible:
        seen.append(losses(t, data.directions))  # type: ignore[arg-type]
        points.append((t.number, hypervolume(seen, ref)))
    left, right, top, bottom = 76, WIDTH - 24, 34, 320 - 48
    numbers = [t.number for t in data.trials]
    xs = Linear(min(numbers), max(numbers), left, right, pad=0.02, integer=True)
    top_hv = max(v for _, v in points)
    ys = Linear(0.0, top_hv if top_hv > 0 else 1.0, bottom, top, pad=0.05)
    fig.y_axis(ys, left, "hypervolume", grid_to=right)
    fig.x_axis(xs, bottom, "trial number", grid_to=top)
    steps: list[tuple[float, float]] = []
    for number, v in points:
        if steps:
            steps.append((xs(number), steps[-1][1]))
        steps.append((xs(number), ys(v)))
    steps.append((xs(max(numbers)), steps[-1][1]))
    fig.polyline(steps, BEST, stroke_width=2.2, stroke_linejoin="round")
    for number, v in points:
        fig.circle(xs(number), ys(v), 3.2, STATE_COLOURS["complete"], tip=f"trial {number}\nhypervolume {fmt(v, 6)}")
    signs = [1.0 if d == "minimize" else -1.0 for d in data.directions]
    ref_text = ", ".join(fmt(s * r, 4) for s, r in zip(signs, ref, strict=True))
    fig.text(right, top - 8, f"final {fmt(points[-1][1], 5)} · reference point ({ref_text})", size=11,
             anchor="end", fill=MUTED)  # fmt: skip
    fig.legend([("line", BEST, "hypervolume of the front so far"), ("dot", INK, "feasible complete trial")], left, 12)
    return fig


MO_CHARTS = {"pareto": pareto, "hypervolume": hypervolume_history}
"""The charts a report adds for a study with several objectives, in order."""
