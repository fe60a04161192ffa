"""The six charts of a report, each built from a :class:`StudyData` into a :class:`Figure`."""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape

from ..trial import TrialRecord, TrialState
from ._data import Param, StudyData, value_label
from ._importance import MIN_TRIALS, ImportanceUnavailable, compute_importance
from ._svg import (
    BEST,
    GRID,
    INK,
    MUTED,
    STATE_COLOURS,
    TIME_RAMP,
    VALUE_RAMP,
    Band,
    Figure,
    Linear,
    Log,
    Scale,
    fmt,
    ramp,
)

__all__ = ["CHARTS", "history", "importance", "intermediate", "parallel", "slices", "timeline"]

WIDTH = 960


# -- shared pieces -----------------------------------------------------------------------


def _log_axis(values: Sequence[float]) -> bool:
    return bool(values) and min(values) > 0 and max(values) / min(values) >= 100


def _value_scale(values: Sequence[float], a: float, b: float) -> tuple[Scale, str]:
    """A scale for objective values: logarithmic when all are positive and span two decades."""
    if _log_axis(values):
        return Log(min(values), max(values), a, b, pad=0.05), "objective value (log scale)"
    lo, hi = (min(values), max(values)) if values else (0.0, 1.0)
    return Linear(lo, hi, a, b, pad=0.06), "objective value"


def _param_scale(p: Param, values: Sequence[float], a: float, b: float, pad: float = 0.0) -> Scale:
    """A scale for a parameter's axis: categories, log or linear over the space's bounds and the values seen."""
    if p.categorical:
        return Band(p.labels, a, b)
    lo, hi = p.low, p.high
    if values:
        lo, hi = min(lo, *values), max(hi, *values)
    if p.log and lo > 0:
        return Log(lo, hi, a, b, pad=pad)
    return Linear(lo, hi, a, b, pad=pad, integer=p.kind == "int")


def _tip(t: TrialRecord, data: StudyData, *, params: bool = True) -> str:
    lines = [f"trial {t.number} · {t.state.value}"]
    if t.value is not None:
        lines.append(f"value {fmt(t.value, 6)}" + (" (last report)" if t.state is TrialState.PRUNED else ""))
    if t.duration is not None:
        lines.append(f"{fmt(t.duration, 3)} s")
    if params:
        shown = list(t.params.items())[:10]
        lines += [f"{k} = {value_label(v)}" for k, v in shown]
    if data.best is not None and t.number == data.best.number:
        lines[0] += " · best"
    return "\n".join(lines)


def _goodness(data: StudyData, trials: Sequence[TrialRecord]) -> dict[int, float]:
    """Each trial's rank among ``trials`` in ``[0, 1]``, 1 for the best."""
    order = sorted(trials, key=lambda t: t.value if data.maximize else -t.value)  # type: ignore[operator]
    n = max(1, len(order) - 1)
    return {t.number: i / n for i, t in enumerate(order)}


def _fade(count: int, opacity: float) -> float:
    """A line opacity that falls as lines multiply, so a crowd of them still shows where they gather."""
    return round(opacity if count <= 100 else max(0.12, opacity * math.sqrt(100 / count)), 3)


def _is_best(data: StudyData, t: TrialRecord) -> bool:
    return data.best is not None and t.number == data.best.number


# -- optimisation history -------------------------------------------------------------------


def history(data: StudyData) -> Figure:
    """Each complete trial's value by trial number, with the best value so far."""
    fig = Figure(
        "history",
        "Optimisation history",
        WIDTH,
        330,
        caption="Each dot is a complete trial's value; the line is the best value found so far. "
        "Ticks along the bottom mark trials that ended without a value (pruned, failed).",
    )
    complete = data.complete()
    if not complete:
        fig.show_message("No complete trial yet: the history appears once a trial has completed.")
        return fig
    left, right, top, bottom = 76, WIDTH - 24, 34, 330 - 48
    numbers = [t.number for t in data.trials]
    xs = Linear(min(numbers), max(numbers), left, right, pad=0.02, integer=True)
    values = [t.value for t in complete]
    ys, ylabel = _value_scale(values, bottom, top)  # type: ignore[arg-type]
    fig.y_axis(ys, left, ylabel, grid_to=right)
    fig.x_axis(xs, bottom, "trial number", grid_to=top)
    rug = [t for t in data.trials if t.state in (TrialState.PRUNED, TrialState.FAILED, TrialState.LOST)]
    for t in rug:
        x = xs(t.number)
        fig.line(x, bottom - 8, x, bottom - 1, STATE_COLOURS[t.state.value], stroke_width=2)
        fig.rect(x - 3, bottom - 10, 6, 10, "transparent", tip=_tip(t, data, params=True))
    best: float | None = None
    steps: list[tuple[float, float]] = []
    for t in complete:
        v = t.value
        assert v is not None
        if best is None or (v > best if data.maximize else v < best):
            best = v
            if steps:
                steps.append((xs(t.number), steps[-1][1]))
            steps.append((xs(t.number), ys(best)))
    steps.append((xs(max(numbers)), steps[-1][1]))
    for t in complete:
        fig.circle(xs(t.number), ys(t.value), 3.6, STATE_COLOURS["complete"], tip=_tip(t, data), fill_opacity=0.75)
    fig.polyline(steps, BEST, stroke_width=2.2, stroke_linejoin="round")
    if data.best is not None and data.best.value is not None:
        bx, by = xs(data.best.number), ys(data.best.value)
        fig.circle(bx, by, 7, "none", tip=_tip(data.best, data), stroke=BEST, stroke_width=2.5)
        label = f"best {fmt(data.best.value, 5)} (trial {data.best.number})"
        anchor = "end" if bx > (left + right) / 2 else "start"
        dy = -12 if by > top + 24 else 20
        fig.text(
            bx + (-10 if anchor == "end" else 10), by + dy, label, anchor=anchor, weight="600", fill=BEST, halo=True
        )
    items = [("dot", STATE_COLOURS["complete"], "complete trial"), ("line", BEST, "best so far")]
    for state in ("pruned", "failed", "lost"):
        if any(t.state.value == state for t in rug):
            items.append(("bar", STATE_COLOURS[state], f"{state} (tick)"))
    fig.legend(items, left, 12)
    return fig


# -- parallel coordinates ----------------------------------------------------------------------


def parallel(data: StudyData) -> Figure:
    """One line per complete trial through an axis per parameter and one for the value."""
    fig = Figure(
        "parallel",
        "Parallel coordinates",
        WIDTH,
        390,
        caption="One line per complete trial, crossing each parameter's axis at its value and ending at the "
        "objective value; darker lines are better trials, the highlighted one is the best. "
        "Conditional parameters sit on 'n/a' when inactive.",
    )
    complete = data.complete()
    if not complete:
        fig.show_message("No complete trial yet: parallel coordinates appear once a trial has completed.")
        return fig
    if not data.params:
        fig.show_message("This study has no parameters.")
        return fig
    left, right, top, bottom = 70, WIDTH - 86, 44, 390 - 66
    n_axes = len(data.params) + 1
    gap = (right - left) / max(1, n_axes - 1)
    axis_x = [left + i * gap for i in range(n_axes)]
    scales: list[Scale] = []
    na_y = bottom + 20
    has_na: list[bool] = []
    for p in data.params:
        seen = [pos for t in complete if p.name in t.params and (pos := p.position(t.params[p.name])) is not None]
        scales.append(_param_scale(p, [] if p.categorical else seen, bottom, top))
        has_na.append(any(p.name not in t.params for t in complete))
    values = [t.value for t in complete]
    vscale, _ = _value_scale(values, bottom, top)  # type: ignore[arg-type]
    rank = _goodness(data, complete)
    lines = sorted(complete, key=lambda t: rank[t.number])
    fade = _fade(len(complete), 0.7)
    for t in lines:
        pts = []
        for x, p, scale in zip(axis_x, data.params, scales, strict=False):
            pos = p.position(t.params[p.name]) if p.name in t.params else None
            pts.append((x, na_y if pos is None else scale(pos)))
        pts.append((axis_x[-1], vscale(t.value)))
        if _is_best(data, t):
            continue
        fig.polyline(pts, ramp(VALUE_RAMP, rank[t.number]), tip=_tip(t, data), stroke_width=1.4, stroke_opacity=fade)
    best = data.best
    if best is not None and best.value is not None:
        pts = []
        for x, p, scale in zip(axis_x, data.params, scales, strict=False):
            pos = p.position(best.params[p.name]) if p.name in best.params else None
            pts.append((x, na_y if pos is None else scale(pos)))
        pts.append((axis_x[-1], vscale(best.value)))
        fig.polyline(pts, BEST, tip=_tip(best, data), stroke_width=3, stroke_linejoin="round")
    names = [*(p.name for p in data.params), "value"]
    for i, (x, name) in enumerate(zip(axis_x, names, strict=True)):
        scale = scales[i] if i < len(scales) else vscale
        fig.line(x, top, x, bottom, INK, stroke_width=1.2)
        for py, label in scale.ticks(5):
            fig.line(x - 3, py, x + 3, py, INK)
            fig.text(x - 6, py + 3.5, label[:14], size=10, anchor="end", fill=INK, halo=True)
        heading = name if len(name) <= 16 else name[:15] + "…"
        if i < len(data.params) and data.params[i].log:
            heading += " (log)"
        fig.text(x, top - 14, heading, size=11.5, anchor="middle", weight="600", tip=name)
        if i < len(has_na) and has_na[i]:
            fig.line(x, bottom + 8, x, na_y, GRID, stroke_dasharray="3 3")
            fig.text(x - 6, na_y + 3.5, "n/a", size=10, anchor="end", fill=MUTED, halo=True)
    fig.gradient("ramp", VALUE_RAMP, left, 390 - 16, 140, "worse", "better")
    fig.legend([("line", BEST, f"best (trial {best.number})" if best else "best")], left + 260, 390 - 16)
    return fig


# -- importance -------------------------------------------------------------------------------


def importance(data: StudyData) -> Figure:
    """How much of the value's variation each parameter explains on its own."""
    fig = Figure(
        "importance",
        "Hyperparameter importance",
        WIDTH,
        66 + 30 * max(1, len(data.params)),
        caption="The share of the variation in the objective that each parameter explains on its own "
        "(functional-ANOVA main effects of a random forest fitted on the complete trials).",
    )
    try:
        result = compute_importance(data)
    except ImportanceUnavailable as exc:
        fig.show_message(str(exc))
        return fig
    left, right, top = 190, WIDTH - 90, 12
    row = 30
    bottom = top + row * len(result.shares)
    xs = Linear(0, max(0.05, max(result.shares.values())), left, right)
    xs.lo = 0.0
    fig.x_axis(
        Linear(0, xs.hi * 100, left, right),
        bottom + 4,
        "share of variance explained alone (%)",
        grid_to=top - 6,
    )
    for i, (name, share) in enumerate(result.shares.items()):
        y = top + i * row
        fig.text(left - 10, y + row / 2 + 4, name if len(name) <= 26 else name[:25] + "…", anchor="end", tip=name)
        tip = f"{name}\n{share * 100:.1f}% of the variance on its own"
        fig.rect(left, y + 5, xs(share) - left, row - 10, "#4f6db8", tip=tip, rx=3)
        fig.text(xs(share) + 6, y + row / 2 + 4, f"{share * 100:.1f}%", size=11, fill=MUTED)
    rest = max(0.0, 1.0 - result.explained)
    note = (
        f"Fitted on {result.n_trials} complete trials"
        + (" (on the log of the value)" if result.log_values else "")
        + f"; main effects explain {min(result.explained, 1.0) * 100:.0f}% together, interactions and noise "
        f"{rest * 100:.0f}%."
    )
    if result.n_trials < 3 * MIN_TRIALS:
        note += " With this few trials the estimate is rough."
    fig.notes.append(note)
    return fig


# -- slices -------------------------------------------------------------------------------------


def _jitter(number: int) -> float:
    """A fixed offset in ``[-1, 1]`` per trial number, so category slices do not stack dots."""
    h = (number * 2654435761) & 0xFFFFFFFF
    return (h / 0xFFFFFFFF) * 2 - 1


def slices(data: StudyData) -> Figure:
    """The value against each parameter, one panel per parameter, for the trials where it is active."""
    n = len(data.params)
    cols = 3 if n >= 3 else max(1, n)
    rows = max(1, math.ceil(n / cols))
    panel_w, panel_h = WIDTH / cols, 250
    fig = Figure(
        "slices",
        "Slices: value against each parameter",
        WIDTH,
        int(28 + rows * panel_h),
        caption="The objective value of each complete trial against one parameter at a time (log axes for "
        "log parameters, one column per choice, conditional parameters only where active); "
        "darker dots are later trials, the ringed one is the best.",
    )
    complete = data.complete()
    if not complete or not data.params:
        fig.show_message(
            "No complete trial yet: slices appear once a trial has completed."
            if not complete
            else "This study has no parameters."
        )
        return fig
    last = max(t.number for t in data.trials) or 1
    values = [t.value for t in complete]
    for k, p in enumerate(data.params):
        ox, oy = (k % cols) * panel_w, 28 + (k // cols) * panel_h
        fig.add(f'<g class="panel" data-param="{escape(p.name, quote=True)}">')
        left, right, top, bottom = ox + 62, ox + panel_w - 14, oy + 10, oy + panel_h - 56
        active = [t for t in complete if p.name in t.params and p.position(t.params[p.name]) is not None]
        positions = [p.position(t.params[p.name]) for t in active]
        xs = _param_scale(p, [] if p.categorical else positions, left, right, pad=0.04)  # type: ignore[arg-type]
        ys, ylabel = _value_scale(values, bottom, top)  # type: ignore[arg-type]
        fig.y_axis(ys, left, ylabel if k % cols == 0 else "", grid_to=right, count=4)
        label = p.name + (" (log scale)" if p.log else "")
        fig.x_axis(xs, bottom, label, grid_to=top, count=4)
        if p.when:
            fig.text(
                right,
                top + 2,
                f"active in {len(active)} of {len(complete)}",
                size=10,
                anchor="end",
                fill=MUTED,
                halo=True,
            )
        band = xs.step * 0.28 if isinstance(xs, Band) else 0.0
        best_mark = None
        for t, pos in zip(active, positions, strict=True):
            x = xs(pos) + band * _jitter(t.number)
            y = ys(t.value)
            colour = ramp(TIME_RAMP, t.number / last)
            fig.circle(x, y, 3.4, colour, tip=_tip(t, data), fill_opacity=0.85)
            if _is_best(data, t):
                best_mark = (x, y, t)
        if best_mark is not None:
            x, y, t = best_mark
            fig.circle(x, y, 6.5, "none", tip=_tip(t, data), stroke=BEST, stroke_width=2.2)
        fig.add("</g>")
    fig.gradient("time", TIME_RAMP, 62, 12, 110, "earlier", "later trials")
    fig.legend([("dot", BEST, "best (ringed)")], 330, 12)
    return fig


# -- intermediate values ---------------------------------------------------------------------------


_CURVE_ORDER = {"failed": 0, "cancelled": 1, "lost": 1, "complete": 2, "running": 3, "pruned": 4}


def intermediate(data: StudyData) -> Figure:
    """Every trial's reported values by step (learning curves); where pruned trials stopped."""
    fig = Figure(
        "intermediate",
        "Intermediate values",
        WIDTH,
        360,
        caption="The values each trial reported step by step, coloured by how the trial ended; "
        "a cross marks the step where a pruned trial was stopped.",
    )
    reported = [t for t in data.trials if t.reports]
    if not reported:
        fig.show_message("No trial reported intermediate values: call trial.report(value, step=...) in the objective.")
        return fig
    left, right, top, bottom = 76, WIDTH - 24, 34, 360 - 48
    steps = [s for t in reported for s in t.reports]
    values = [v for t in reported for v in t.reports.values() if math.isfinite(v)]
    if not values:
        fig.show_message("Every reported value is infinite or NaN: nothing to draw.")
        return fig
    xs = Linear(min(steps), max(steps), left, right, pad=0.02, integer=True)
    ys, ylabel = _value_scale(values, bottom, top)
    fig.y_axis(ys, left, ylabel.replace("objective value", "reported value"), grid_to=right)
    fig.x_axis(xs, bottom, "step", grid_to=top)
    best = None
    opacity = _fade(len(reported), 0.55)
    for t in sorted(reported, key=lambda t: (_CURVE_ORDER.get(t.state.value, 1), t.number)):
        pts = [(xs(s), ys(v)) for s, v in sorted(t.reports.items()) if math.isfinite(v)]
        if not pts:
            continue
        if _is_best(data, t):
            best = (t, pts)
            continue
        colour = STATE_COLOURS[t.state.value]
        tip = _tip(t, data)
        if len(pts) == 1:
            fig.circle(pts[0][0], pts[0][1], 2.5, colour, tip=tip, fill_opacity=0.8)
        else:
            fig.polyline(pts, colour, tip=tip, stroke_width=1.3, stroke_opacity=opacity)
        if t.state is TrialState.PRUNED:
            fig.cross(pts[-1][0], pts[-1][1], 3.5, colour, tip=tip, stroke_width=1.8)
    if best is not None:
        t, pts = best
        fig.polyline(pts, BEST, tip=_tip(t, data), stroke_width=2.6)
        fig.circle(pts[-1][0], pts[-1][1], 3.5, BEST, tip=_tip(t, data))
    items = []
    for state in ("complete", "pruned", "paused", "running", "failed", "cancelled", "lost"):
        if any(t.state.value == state for t in reported):
            kind, label = ("cross", "pruned (cross where stopped)") if state == "pruned" else ("line", state)
            items.append((kind, STATE_COLOURS[state], label))
    if best is not None:
        items.append(("line", BEST, f"best (trial {best[0].number})"))
    fig.legend(items, left, 12)
    return fig


# -- timeline ---------------------------------------------------------------------------------------


def _time_unit(span: float) -> tuple[float, str]:
    if span <= 180:
        return 1.0, "s"
    if span <= 3 * 3600:
        return 60.0, "min"
    return 3600.0, "h"


def timeline(data: StudyData) -> Figure:
    """One bar per trial from its start to its end over wall time, and how many ran at once."""
    timed = [t for t in data.trials if t.started > 0]
    n = len(timed)
    bars_h = float(min(560, max(120, 12 * n)))
    row = bars_h / max(1, n)
    conc_h = 96.0
    height = int(40 + conc_h + 30 + bars_h + 52)
    fig = Figure(
        "timeline",
        "Timeline of trials",
        WIDTH,
        height,
        caption="Top: how many trials were running at each moment. Bottom: one bar per trial from its start "
        "to its end, coloured by state (a running trial's bar reaches the moment the study was read).",
    )
    if not timed:
        fig.show_message("No trial has a start time yet: the timeline appears once a trial has started.")
        return fig
    t0 = min(t.started for t in timed)
    ends = {t.number: (t.ended if t.ended is not None else max(data.read_at, t.started)) for t in timed}
    t1 = max(ends.values())
    unit, unit_name = _time_unit(t1 - t0)
    left, right = 76, WIDTH - 24
    xs = Linear(0, max((t1 - t0) / unit, 1e-6), left, right, pad=0.01)
    # How many run at once: +1 at each start, -1 at each end, ends first at equal times.
    events = sorted([(t.started, 1) for t in timed] + [(e, -1) for e in ends.values()], key=lambda e: (e[0], e[1]))
    level, peak, area, last_t = 0, 0, 0.0, t0
    pts: list[tuple[float, float]] = []
    c_top, c_bottom = 40.0, 40.0 + conc_h
    levels: list[tuple[float, int]] = [(t0, 0)]
    for when, delta in events:
        area += level * (when - last_t)
        last_t = when
        level += delta
        peak = max(peak, level)
        levels.append((when, level))
    cy = Linear(0, max(1, peak), c_bottom, c_top, integer=True)
    prev = 0
    pts.append((xs(0), cy(0)))
    for when, lev in levels:
        x = xs((when - t0) / unit)
        pts.append((x, cy(prev)))
        pts.append((x, cy(lev)))
        prev = lev
    pts.append((xs((t1 - t0) / unit), cy(prev)))
    pts.append((xs((t1 - t0) / unit), cy(0)))
    d = "M" + "L".join(f"{x:.1f},{y:.1f}" for x, y in pts) + "Z"
    mean = area / (t1 - t0) if t1 > t0 else float(peak)
    b_top = c_bottom + 30
    b_bottom = b_top + bars_h
    numbers = [t.number for t in timed]
    ys = Linear(min(numbers) - 0.5, max(numbers) + 0.5, b_top, b_bottom, integer=True)
    fig.x_axis(xs, b_bottom, f"wall time since the first trial started ({unit_name})", grid_to=c_top)
    fig.y_axis(cy, left, "", grid_to=right, count=4)
    fig.y_axis(ys, left, "trial number", count=6)
    fig.text(left - 40, (c_top + c_bottom) / 2, "running", size=11.5, anchor="middle", rotate=-90)
    fig.path(
        d,
        "#475569",
        fill="#94a3b8",
        fill_opacity=0.45,
        stroke_width=1.2,
        tip=f"at most {peak} trials at once; {mean:.2f} on average",
    )
    fig.line(left, c_bottom, right, c_bottom, MUTED)
    fig.text(right, c_top - 8, f"peak {peak} at once · mean {mean:.2f}", size=11, anchor="end", fill=MUTED)
    h = max(0.8, row * 0.72)
    for t in timed:
        x0 = xs((t.started - t0) / unit)
        x1 = xs((ends[t.number] - t0) / unit)
        y = ys(t.number) - h / 2
        extra = {"stroke": BEST, "stroke_width": 1.2} if _is_best(data, t) else {}
        fig.rect(x0, y, max(1.5, x1 - x0), h, STATE_COLOURS[t.state.value], tip=_tip(t, data), **extra)
    states = [s for s in STATE_COLOURS if any(t.state.value == s for t in timed)]
    items = [("bar", STATE_COLOURS[s], s) for s in states]
    if data.best is not None:
        items.append(("line", BEST, "best (outlined)"))
    fig.legend(items, left, 12)
    skipped = len(data.trials) - n
    if skipped:
        fig.notes.append(f"{skipped} trials have no start time and are not shown.")
    return fig


CHARTS = {
    "history": history,
    "parallel": parallel,
    "importance": importance,
    "slices": slices,
    "intermediate": intermediate,
    "timeline": timeline,
}
"""Every chart of a report, in the report's order."""
