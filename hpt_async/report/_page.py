"""The report page: a summary header, the charts as inline SVG, a little CSS and script, nothing fetched."""

from __future__ import annotations

import datetime
import math
from collections.abc import Mapping
from html import escape

from ._data import StudyData, value_label
from ._svg import BEST, STATE_COLOURS, Figure, fmt

__all__ = ["page"]

CSS = """
:root { --ink: #1f2937; --muted: #6b7280; --line: #e5e7eb; --best: BEST_COLOUR; }
* { box-sizing: border-box; }
body { margin: 0; background: #f3f4f6; color: var(--ink);
  font: 14px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif; }
.wrap { max-width: 1010px; margin: 0 auto; padding: 24px 16px 40px; }
header.summary { background: #fff; border-radius: 12px; padding: 22px 26px; box-shadow: 0 1px 3px #0000001a; }
.eyebrow { color: var(--muted); font-size: 12px; letter-spacing: .08em; text-transform: uppercase; }
h1 { margin: 2px 0 6px; font-size: 26px; word-break: break-all; }
.meta { color: var(--muted); }
.badge { display: inline-block; padding: 1px 9px; border-radius: 999px; font-size: 12px; font-weight: 600;
  background: #dcfce7; color: #166534; margin-left: 8px; vertical-align: middle; }
.chips { display: flex; flex-wrap: wrap; gap: 8px; margin: 14px 0 4px; }
.chip { border: 1px solid var(--line); border-radius: 999px; padding: 3px 12px 3px 9px; background: #fafafa; }
.chip b { font-variant-numeric: tabular-nums; }
.dot { display: inline-block; width: 10px; height: 10px; border-radius: 50%; margin-right: 6px; }
.best { display: grid; grid-template-columns: minmax(180px, auto) 1fr; gap: 4px 28px; margin-top: 16px;
  padding-top: 14px; border-top: 1px solid var(--line); }
.best .value { font-size: 28px; font-weight: 700; color: var(--best); font-variant-numeric: tabular-nums; }
.best .label { color: var(--muted); font-size: 12px; text-transform: uppercase; letter-spacing: .06em; }
table.params { border-collapse: collapse; font-variant-numeric: tabular-nums; }
table.params td { padding: 2px 14px 2px 0; vertical-align: top; }
table.params td:first-child { color: var(--muted); }
nav { margin: 16px 0 0; display: flex; flex-wrap: wrap; gap: 6px 16px; font-size: 13px; }
nav a { color: #1e40af; text-decoration: none; }
nav a:hover { text-decoration: underline; }
section.card { background: #fff; border-radius: 12px; padding: 18px 20px 14px; margin-top: 18px;
  box-shadow: 0 1px 3px #0000001a; }
section.card h2 { margin: 0 0 2px; font-size: 18px; }
.caption { margin: 0 0 10px; color: var(--muted); max-width: 860px; }
.note { margin: 6px 0 0; color: var(--muted); font-size: 13px; }
svg.chart { display: block; width: 100%; height: auto; max-width: 960px; overflow: visible; }
svg.chart .mark { cursor: default; }
svg.chart path.mark:hover { stroke-opacity: 1; stroke-width: 3; }
svg.chart circle.mark:hover { fill-opacity: 1; stroke: #111827; stroke-width: 1.5; }
svg.chart rect.mark:hover { opacity: .8; }
#tip { position: fixed; z-index: 10; pointer-events: none; background: #111827; color: #f9fafb;
  padding: 6px 9px; border-radius: 6px; font-size: 12px; line-height: 1.45; white-space: pre-line;
  max-width: 340px; box-shadow: 0 4px 12px #0000004d; }
table.top { border-collapse: collapse; width: 100%; font-variant-numeric: tabular-nums; font-size: 13px; }
table.top th { text-align: left; color: var(--muted); font-weight: 600; border-bottom: 1px solid var(--line);
  padding: 4px 12px 4px 0; }
table.top td { padding: 4px 12px 4px 0; border-bottom: 1px solid #f3f4f6; vertical-align: top; }
table.top .num { text-align: right; }
table.top tr.is-best td { color: var(--best); font-weight: 600; }
footer { color: var(--muted); font-size: 12px; margin-top: 22px; text-align: center; }
""".replace("BEST_COLOUR", BEST)

SCRIPT = """
(function () {
  "use strict";
  var tip = document.getElementById("tip");
  var marks = document.querySelectorAll("svg.chart title");
  for (var i = 0; i < marks.length; i++) {
    var t = marks[i], owner = t.parentNode;
    owner.setAttribute("data-tip", t.textContent);
    owner.classList.add("mark");
    owner.removeChild(t);
  }
  function place(e) {
    var x = e.clientX + 14, y = e.clientY + 14;
    var w = tip.offsetWidth, h = tip.offsetHeight;
    if (x + w > window.innerWidth - 8) { x = e.clientX - w - 14; }
    if (y + h > window.innerHeight - 8) { y = e.clientY - h - 14; }
    tip.style.left = x + "px";
    tip.style.top = y + "px";
  }
  document.addEventListener("mouseover", function (e) {
    var el = e.target.closest ? e.target.closest("[data-tip]") : null;
    if (!el) { tip.hidden = true; return; }
    tip.textContent = el.getAttribute("data-tip");
    tip.hidden = false;
    place(e);
  });
  document.addEventListener("mousemove", function (e) { if (!tip.hidden) { place(e); } });
  document.addEventListener("mouseleave", function () { tip.hidden = true; });
})();
"""


def _when(ts: float | None) -> str:
    if ts is None or ts <= 0:
        return "-"
    return datetime.datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S")


def _span(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 120:
        return f"{minutes} min {secs} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


def _summary(data: StudyData) -> str:
    counts = data.counts()
    total = len(data.trials)
    running = counts["running"]
    started = [t.started for t in data.trials if t.started > 0]
    ended = [t.ended for t in data.trials if t.ended is not None]
    if data.several:
        directions = ", ".join(f"{n} ({d})" for n, d in zip(data.objective_names(), data.directions, strict=True))
    else:
        directions = data.direction
    meta = [f"{escape(directions)}", f"{total} trial{'s' if total != 1 else ''}"]
    if started:
        last = max([*ended, *(data.read_at for t in data.trials if t.ended is None)] or [min(started)])
        meta.append(f"ran from {_when(min(started))} for {_span(max(0.0, last - min(started)))} of wall time")
    meta.append(f"read at {_when(data.read_at)}")
    badge = f'<span class="badge">in progress: {running} running</span>' if running else ""
    chips = []
    for state, colour in STATE_COLOURS.items():
        if counts[state] or state == "complete":
            chips.append(
                f'<span class="chip" data-state="{state}"><span class="dot" style="background:{colour}"></span>'
                f"{state} <b>{counts[state]}</b></span>"
            )
    best = data.best
    if data.several:
        front = data.front()
        if front:
            names = data.objective_names()
            head = "".join(f"<th>{escape(n)}</th>" for n in names)
            rows = "".join(
                f"<tr><td>{t.number}</td>" + "".join(f"<td>{escape(fmt(v, 6))}</td>" for v in t.values or ()) + "</tr>"
                for t in front[:12]
            )
            more = f'<div class="meta">and {len(front) - 12} more</div>' if len(front) > 12 else ""
            best_html = (
                '<div class="best"><div><div class="label">Pareto front</div>'
                f'<div class="value" id="front-size">{len(front)} trials</div></div>'
                f'<div><table class="params"><tr><th>trial</th>{head}</tr>{rows}</table>{more}</div></div>'
            )
        elif counts["complete"]:
            best_html = '<div class="best"><div class="meta">No feasible complete trial: no Pareto front.</div></div>'
        else:
            best_html = '<div class="best"><div class="meta">No complete trial yet.</div></div>'
    elif best is not None and best.value is not None:
        rows = "".join(
            f"<tr><td>{escape(str(k))}</td><td>{escape(_param_text(v))}</td></tr>" for k, v in best.params.items()
        )
        best_html = (
            '<div class="best"><div><div class="label">best value</div>'
            f'<div class="value" id="best-value">{escape(fmt(best.value, 6))}</div>'
            f'<div class="meta">trial {best.number}'
            + (f" · {fmt(best.duration, 3)} s" if best.duration is not None else "")
            + '</div></div><div><div class="label">its parameters</div>'
            f'<table class="params">{rows}</table></div></div>'
        )
    elif counts["complete"]:
        best_html = (
            '<div class="best"><div class="meta">No feasible complete trial (every constraint <= 0).</div></div>'
        )
    else:
        best_html = '<div class="best"><div class="meta">No complete trial yet.</div></div>'
    return (
        '<header class="summary"><div class="eyebrow">hpt-async study report</div>'
        f"<h1>{escape(data.name)}{badge}</h1>"
        f'<div class="meta">{" · ".join(meta)}</div>'
        f'<div class="chips">{"".join(chips)}</div>{best_html}</header>'
    )


def _param_text(value: object) -> str:
    if isinstance(value, float) and math.isfinite(value):
        return fmt(value, 6)
    if isinstance(value, Mapping):
        return value_label(value)
    return repr(value) if isinstance(value, str) else value_label(value)


def _top_trials(data: StudyData, count: int = 10) -> str:
    complete = sorted(data.complete(), key=lambda t: -t.value if data.maximize else t.value)  # type: ignore[operator]
    if not complete:
        return ""
    rows = []
    for rank, t in enumerate(complete[:count], 1):
        params = ", ".join(f"{k}={_param_text(v)}" for k, v in t.params.items())
        cls = ' class="is-best"' if data.best is not None and t.number == data.best.number else ""
        duration = "-" if t.duration is None else fmt(t.duration, 3)
        rows.append(
            f'<tr{cls}><td class="num">{rank}</td><td class="num">{t.number}</td>'
            f'<td class="num">{escape(fmt(t.value, 6))}</td><td class="num">{escape(duration)}</td>'
            f"<td>{escape(params)}</td></tr>"
        )
    shown = min(count, len(complete))
    return (
        f'<section class="card" id="top-trials"><h2>Best {shown} trial{"s" if shown != 1 else ""}</h2>'
        f'<p class="caption">The complete trials with the best values, best first.</p>'
        '<table class="top"><thead><tr><th class="num">rank</th><th class="num">trial</th>'
        '<th class="num">value</th><th class="num">seconds</th>'
        f"<th>parameters</th></tr></thead><tbody>{''.join(rows)}</tbody></table></section>"
    )


def _section(fig: Figure) -> str:
    notes = "".join(f'<p class="note">{escape(n)}</p>' for n in fig.notes if not fig.empty)
    return (
        f'<section class="card" id="chart-{escape(fig.key)}"><h2>{escape(fig.title)}</h2>'
        f'<p class="caption">{escape(fig.caption)}</p>'
        f"{fig.to_svg(title=False, standalone=False)}{notes}</section>"
    )


def page(data: StudyData, figures: Mapping[str, Figure], *, title: str | None, version: str) -> str:
    """The whole report as one HTML document."""
    heading = title or f"{data.name}: hpt-async report"
    nav = "".join(f'<a href="#chart-{escape(k)}">{escape(f.title)}</a>' for k, f in figures.items())
    if data.complete():
        nav += '<a href="#top-trials">Best trials</a>'
    sections = "".join(_section(f) for f in figures.values()) + _top_trials(data)
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        "style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:\">"
        f"<title>{escape(heading)}</title><style>{CSS}</style></head>"
        f'<body><div class="wrap">{_summary(data)}<nav>{nav}</nav><main>{sections}</main>'
        f"<footer>Made by hpt-async {escape(version)} on {_when(data.read_at)}. "
        "This file is self-contained: it loads nothing from the network.</footer></div>"
        f'<div id="tip" role="tooltip" hidden></div><script>{SCRIPT}</script></body></html>\n'
    )
