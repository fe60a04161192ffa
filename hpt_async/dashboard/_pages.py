"""The dashboard's HTML: page shells drawn on the server, every study string escaped.

The pages hold no inline script or style (the content security policy
forbids them); ``/static/dashboard.js`` fills in charts and tables and
applies live updates, inserting study strings as text only.
"""

from __future__ import annotations

import datetime
import json
import math
from collections.abc import Mapping
from html import escape
from typing import Any
from urllib.parse import urlencode

from ..report._page import CSS as REPORT_CSS
from ..report._svg import STATE_COLOURS, fmt
from ..trial import TrialRecord, TrialState
from ._figures import trial_curve
from ._model import StudyModel

__all__ = ["CSS", "study_page", "studies_page", "trial_page", "not_found_page"]

CSS = (
    REPORT_CSS
    + "".join(f".s-{s} {{ background: {c}; }}\n" for s, c in STATE_COLOURS.items())
    + """
[hidden] { display: none !important; }
.wrap { max-width: 1060px; }
.crumbs { font-size: 13px; margin-bottom: 10px; }
.crumbs a, table.trials a, table.studies a { color: #1e40af; text-decoration: none; }
.crumbs a:hover, table.trials a:hover, table.studies a:hover { text-decoration: underline; }
.live { display: inline-block; font-size: 12px; color: var(--muted); margin-left: 8px; }
.live.on::before { content: ""; display: inline-block; width: 8px; height: 8px; border-radius: 50%;
  background: #22c55e; margin-right: 5px; }
.figure { min-height: 60px; }
.figure.loading { color: var(--muted); }
table.trials, table.studies, table.kv { border-collapse: collapse; width: 100%; font-size: 13px;
  font-variant-numeric: tabular-nums; }
table.trials th, table.studies th { text-align: left; color: var(--muted); font-weight: 600;
  border-bottom: 1px solid var(--line); padding: 4px 10px 4px 0; white-space: nowrap; }
table.trials th[data-sort] { cursor: pointer; }
table.trials th.sorted { color: var(--ink); }
table.trials td, table.studies td { padding: 3px 10px 3px 0; border-bottom: 1px solid #f3f4f6;
  vertical-align: top; max-width: 240px; overflow-wrap: anywhere; }
table.trials tr.is-best td { color: var(--best); font-weight: 600; }
table.kv td { padding: 3px 14px 3px 0; border-bottom: 1px solid #f3f4f6; vertical-align: top;
  overflow-wrap: anywhere; }
table.kv td:first-child { color: var(--muted); width: 200px; }
.controls { display: flex; flex-wrap: wrap; gap: 8px 14px; align-items: center; margin: 6px 0 10px; }
.controls input, .controls select, .controls button { font: inherit; padding: 3px 8px; border: 1px solid #d1d5db;
  border-radius: 6px; background: #fff; }
.pager { display: flex; gap: 10px; align-items: center; margin-top: 10px; color: var(--muted); }
pre.traceback { background: #111827; color: #f9fafb; padding: 12px; border-radius: 8px; overflow-x: auto;
  font-size: 12px; white-space: pre-wrap; overflow-wrap: anywhere; }
.state { display: inline-block; padding: 0 8px; border-radius: 999px; color: #fff; font-size: 12px; }
.error { color: #b91c1c; }
"""
)


TITLES = {
    "history": "Optimisation history",
    "pareto": "Pareto front",
    "parallel": "Parallel coordinates",
    "importance": "Hyperparameter importance",
    "slices": "Slices",
    "intermediate": "Intermediate values",
    "timeline": "Timeline of trials",
}


def when(ts: float | None) -> str:
    """A Unix time as local date and time, ``-`` when unknown."""
    if ts is None or not ts or not math.isfinite(ts) or ts <= 0:
        return "-"
    return datetime.datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S")


def _num(value: float | None, digits: int = 6) -> str:
    return "-" if value is None else fmt(value, digits)


def _shell(title: str, body: str, *, page: str, data: Mapping[str, str] | None = None) -> str:
    attrs = "".join(f' data-{k}="{escape(v, quote=True)}"' for k, v in (data or {}).items())
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<title>{escape(title)}</title><link rel="stylesheet" href="/static/dashboard.css">'
        '<link rel="icon" href="data:,"></head>'
        f'<body data-page="{escape(page)}"{attrs}><div class="wrap">{body}</div>'
        '<div id="tip" role="tooltip" hidden></div><script src="/static/dashboard.js"></script></body></html>\n'
    )


def study_href(name: str) -> str:
    """The address of a study's page."""
    return "/study?" + urlencode({"s": name})


def trial_href(name: str, number: int) -> str:
    """The address of a trial's page."""
    return "/trial?" + urlencode({"s": name, "n": number})


def _chips(counts: Mapping[str, int]) -> str:
    out = []
    for state in STATE_COLOURS:
        n = counts.get(state, 0)
        hidden = "" if n or state == "complete" else " hidden"
        out.append(
            f'<span class="chip" data-state="{state}"{hidden}><span class="dot s-{state}"></span>'
            f'{state} <b data-count="{state}">{n}</b></span>'
        )
    return '<div class="chips">' + "".join(out) + "</div>"


def studies_page(summaries: list[dict[str, Any]], *, storage: str, error: str | None) -> str:
    """The list of studies with their counts, best value, start and end, running or not."""
    rows = []
    for s in summaries:
        counts = ", ".join(f"{k} {v}" for k, v in s["counts"].items()) or "no trials"
        best = s["best"]
        rows.append(
            f'<tr data-study="{escape(s["name"], quote=True)}"><td><a href="{escape(study_href(s["name"]))}">'
            f"{escape(s['name'])}</a></td><td>{escape(' / '.join(s['direction']))}</td>"
            f'<td class="num" data-field="n">{s["n"]}</td><td data-field="counts">{escape(counts)}</td>'
            f'<td data-field="best">{escape(_num(best["value"]) if best else "-")}</td>'
            f'<td data-field="started">{escape(when(s["started"]))}</td>'
            f'<td data-field="ended">{escape(when(s["ended"]))}</td>'
            f'<td data-field="running">{"running" if s["running"] else "idle"}</td></tr>'
        )
    note = f'<p class="error">{escape(error)}</p>' if error else ""
    body = (
        '<header class="summary"><div class="eyebrow">hpt-async dashboard</div><h1>Studies</h1>'
        f'<div class="meta">in {escape(storage)} · read-only<span class="live" id="live">connecting</span></div>'
        f"{note}</header>"
        '<section class="card"><table class="studies" id="studies"><thead><tr><th>study</th><th>direction</th>'
        '<th class="num">trials</th><th>states</th><th>best</th><th>started</th><th>last ended</th>'
        f"<th>now</th></tr></thead><tbody>{''.join(rows)}</tbody></table>"
        + ("" if rows else '<p class="meta" id="no-studies">No study in this storage yet.</p>')
        + "</section>"
    )
    return _shell("hpt-async dashboard", body, page="studies")


def _header(model: StudyModel, *, eyebrow: str) -> str:
    s = model.summary()
    best = s["best"]
    directions = " / ".join(model.info.directions)
    if len(model.info.directions) > 1:
        best_html = (
            '<div class="best"><div><div class="label">Pareto front</div>'
            f'<div class="value" id="best-value">{s["front"]} trials</div></div><div></div></div>'
        )
    elif best is not None:
        rows = "".join(
            f"<tr><td>{escape(str(k))}</td><td>{escape(str(v))}</td></tr>" for k, v in best["params"].items()
        )
        best_html = (
            '<div class="best"><div><div class="label">best value</div>'
            f'<div class="value" id="best-value">{escape(_num(best["value"]))}</div>'
            f'<div class="meta" id="best-trial">trial {best["number"]}</div></div>'
            f'<div><div class="label">its parameters</div><table class="params" id="best-params">{rows}</table>'
            "</div></div>"
        )
    else:
        best_html = '<div class="best"><div class="meta" id="best-value">No complete trial yet.</div></div>'
    badge = '<span class="badge" id="running-badge"' + ("" if s["running"] else " hidden") + ">running</span>"
    return (
        f'<header class="summary"><div class="eyebrow">{escape(eyebrow)}</div>'
        f"<h1>{escape(model.info.name)}{badge}</h1>"
        f'<div class="meta">{escape(directions)} · <b id="trial-total">{s["n"]}</b> trials · started '
        f'<span id="started">{escape(when(s["started"]))}</span> · last ended '
        f'<span id="ended">{escape(when(model.last_ended))}</span>'
        '<span class="live" id="live">connecting</span></div>'
        f"{_chips(s['counts'])}{best_html}</header>"
    )


def study_page(model: StudyModel, charts: list[str]) -> str:
    """A study's page: header, chart cards (drawn by the script), the trial table."""
    cards = "".join(
        f'<section class="card chart-card" id="chart-{k}" data-chart="{k}"><h2>{escape(TITLES.get(k, k))}</h2>'
        '<p class="caption"></p><div class="figure loading">drawing…</div><div class="notes"></div></section>'
        for k in charts
    )
    nav = "".join(f'<a href="#chart-{k}">{escape(k)}</a>' for k in charts) + '<a href="#trials">trials</a>'
    param_names = [str(n) for n in model.info.space]
    states = "".join(f'<option value="{s.value}">{s.value}</option>' for s in TrialState)
    body = (
        '<div class="crumbs"><a href="/">all studies</a></div>'
        + _header(model, eyebrow="hpt-async study")
        + f"<nav>{nav}</nav><main>{cards}"
        '<section class="card" id="trials"><h2>Trials</h2>'
        '<div class="controls"><label>state <select id="filter-state"><option value="">any</option>'
        f"{states}</select></label>"
        '<label>contains <input id="filter-text" type="search" placeholder="param=value, error text, #12"></label>'
        '<label>rows <select id="page-size"><option>25</option><option selected>50</option><option>100</option>'
        "</select></label></div>"
        '<table class="trials" id="trial-table"><thead><tr></tr></thead><tbody></tbody></table>'
        '<div class="pager"><button id="prev" type="button">previous</button>'
        '<span id="page-info"></span><button id="next" type="button">next</button>'
        ' · <span><b id="trial-count">…</b> trials match</span></div></section></main>'
    )
    return _shell(
        f"{model.info.name}: hpt-async dashboard",
        body,
        page="study",
        data={"study": model.info.name, "params": json.dumps(param_names), "charts": json.dumps(charts)},
    )


def _value_text(v: Any) -> str:
    if isinstance(v, float):
        return fmt(v, 8)
    return v if isinstance(v, str) else json.dumps(v, default=repr, ensure_ascii=False)


def _kv(rows: list[tuple[str, str]]) -> str:
    return (
        '<table class="kv">'
        + "".join(f"<tr><td>{escape(k)}</td><td>{escape(v)}</td></tr>" for k, v in rows)
        + "</table>"
    )


def trial_main(model: StudyModel, record: TrialRecord) -> str:
    """The body of a trial's page (the script swaps it when the trial changes)."""
    name = model.info.name
    facts: list[tuple[str, str]] = [
        ("state", record.state.value),
        ("value", _num(record.value, 10)),
    ]
    if record.values is not None:
        facts.append(("values", ", ".join(_num(v, 10) for v in record.values)))
    facts += [
        ("started", when(record.started)),
        ("ended", when(record.ended)),
        ("duration", "-" if record.duration is None else f"{fmt(record.duration, 4)} s"),
        ("reports", str(len(record.reports))),
    ]
    if model.best is not None and model.best.number == record.number:
        facts.append(("best", "this is the study's best trial"))
    retry_links = ""
    if record.retry_of is not None:
        retry_links += (
            f'<p>Runs again the configuration of trial <a href="{escape(trial_href(name, record.retry_of))}">'
            f"{record.retry_of}</a>, which was lost.</p>"
        )
    retried = [r.number for r in model.trials.values() if r.retry_of == record.number]
    if retried:
        links = ", ".join(f'<a href="{escape(trial_href(name, n))}">{n}</a>' for n in sorted(retried))
        retry_links += f"<p>Its configuration was run again by trial {links}.</p>"
    sections = [
        f'<section class="card" id="facts"><h2>Trial {record.number}</h2>{_kv(facts)}'
        f'<div id="retries">{retry_links or "<p class=meta>No retry.</p>"}</div></section>',
        f'<section class="card" id="params"><h2>Parameters</h2>'
        f"{_kv([(str(k), _value_text(v)) for k, v in record.params.items()])}</section>",
    ]
    curve = trial_curve(record)
    sections.append(
        f'<section class="card" id="curve"><h2>Reports</h2><p class="caption">{escape(curve.caption)}</p>'
        f"{curve.to_svg(title=False, standalone=False)}</section>"
    )
    attrs = [(str(k), _value_text(v)) for k, v in record.user_attrs.items()]
    sections.append(
        '<section class="card" id="user-attrs"><h2>User attributes</h2>'
        + (_kv(attrs) if attrs else '<p class="meta">None.</p>')
        + "</section>"
    )
    if record.schedule:
        parts = []
        for entry in record.schedule:
            step = "start" if entry.step is None else str(entry.step)
            params = ", ".join(f"{k}={_value_text(v)}" for k, v in entry.params.items())
            donor = "-" if entry.donor is None else str(entry.donor)
            parts.append(f"<tr><td>{step}</td><td>{escape(params)}</td><td>{donor}</td></tr>")
        rows = "".join(parts)
        schedule = (
            '<table class="trials"><thead><tr><th>from step</th><th>parameters</th><th>taken from trial</th>'
            f"</tr></thead><tbody>{rows}</tbody></table>"
        )
    else:
        schedule = '<p class="meta">The trial kept its configuration throughout.</p>'
    sections.append(f'<section class="card" id="schedule"><h2>Schedule</h2>{schedule}</section>')
    if record.error is not None or record.traceback is not None:
        sections.append(
            '<section class="card" id="error"><h2>Error</h2>'
            f'<p class="error">{escape(record.error or "")}</p>'
            f'<pre class="traceback">{escape(record.traceback or "")}</pre></section>'
        )
    return "".join(sections)


def trial_page(model: StudyModel, record: TrialRecord) -> str:
    """A trial's page: its facts, parameters, report curve, user attributes, schedule, error, retries."""
    name = model.info.name
    body = (
        f'<div class="crumbs"><a href="/">all studies</a> &rsaquo; <a href="{escape(study_href(name))}">'
        f"{escape(name)}</a> &rsaquo; trial {record.number}"
        '<span class="live" id="live">connecting</span></div>'
        f'<main id="trial-main">{trial_main(model, record)}</main>'
    )
    return _shell(
        f"trial {record.number} of {name}: hpt-async dashboard",
        body,
        page="trial",
        data={"study": name, "trial": str(record.number)},
    )


def not_found_page(message: str) -> str:
    """A page saying what was not found."""
    body = (
        '<div class="crumbs"><a href="/">all studies</a></div>'
        f'<header class="summary"><h1>Not found</h1><p class="meta">{escape(message)}</p></header>'
    )
    return _shell("not found: hpt-async dashboard", body, page="none")
