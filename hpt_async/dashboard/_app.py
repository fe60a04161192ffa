"""The dashboard's web application (Starlette): pages, JSON, server-sent events; read-only."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from importlib.resources import files
from typing import Any

import anyio
import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response, StreamingResponse
from starlette.routing import Route

from ..trial import TrialState
from . import _pages
from ._figures import chart_keys, prepare, render
from ._hub import Hub
from ._model import SORT_KEYS, StudyModel, StudyUnreadable, TableQuery, row

__all__ = ["CONTENT_SECURITY_POLICY", "create_app"]

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
"""Sent with every response: nothing is loaded from outside the server, and no inline script runs."""

#: Seconds a drawn chart is served again while the study changes (it is redrawn after).
CHART_MAX_AGE = 2.0
#: Rows of changed trials sent in one live update at most (beyond, the page is told to refetch).
LIVE_ROWS = 100
#: Most rows a table page may hold.
MAX_PAGE = 500

_LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]"}

Scope = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]], Awaitable[None]]


def _json(data: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(data), status_code=status, media_type="application/json")


def _static(name: str) -> bytes:
    return files(__package__).joinpath("static", name).read_bytes()


class _Guard:
    """Adds the security headers to every response; refuses other Host headers when bound to loopback.

    The Host check stops a web page elsewhere from reaching a dashboard on
    127.0.0.1 through a DNS name it controls (DNS rebinding).
    """

    def __init__(self, app: ASGIApp, *, loopback_only: bool) -> None:
        self.app = app
        self.loopback_only = loopback_only

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self.loopback_only:
            host = dict(scope.get("headers") or []).get(b"host", b"").decode("latin-1")
            name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
            if name.lower() not in _LOOPBACK:
                response = Response("this dashboard answers to localhost only", status_code=421)
                await response(scope, receive, send)
                return

        async def with_headers(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers += [
                    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
                    (b"x-content-type-options", b"nosniff"),
                    (b"referrer-policy", b"no-referrer"),
                    (b"x-frame-options", b"DENY"),
                    (b"cache-control", b"no-store"),
                ]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, with_headers)


def create_app(hub: Hub, *, storage_label: str, loopback_only: bool = True) -> ASGIApp:
    """The ASGI application serving ``hub``'s studies (read-only: every route is a GET)."""
    charts: dict[tuple[str, str], tuple[float, dict[str, Any]]] = {}
    chart_locks: dict[tuple[str, str], anyio.Lock] = {}
    css = _pages.CSS.encode()
    script = _static("dashboard.js")

    async def model_of(request: Request) -> StudyModel | Response:
        name = request.query_params.get("s")
        if name is None:
            return _json({"error": "give the study as ?s=NAME"}, 400)
        if not hub.listed.is_set():
            await hub.listed.wait()
        model = hub.models.get(name)
        if model is None:
            await hub.refresh_list()
            model = hub.models.get(name)
        if model is None:
            return _json({"error": f"no study named {name!r}"}, 404)
        if not model.loaded:
            await model.loaded_event.wait()
        return model

    async def studies_page(request: Request) -> Response:
        if not hub.listed.is_set():
            await hub.listed.wait()
        return HTMLResponse(_pages.studies_page(hub.studies(), storage=storage_label, error=hub.list_error))

    async def study_page(request: Request) -> Response:
        model = await model_of(request)
        if isinstance(model, Response):
            return HTMLResponse(_pages.not_found_page(_message(model)), status_code=model.status_code)
        return HTMLResponse(_pages.study_page(model, chart_keys(model)))

    async def trial_page(request: Request) -> Response:
        model = await model_of(request)
        if isinstance(model, Response):
            return HTMLResponse(_pages.not_found_page(_message(model)), status_code=model.status_code)
        number = _int(request.query_params.get("n"))
        record = None
        if number is not None and number in model.trials:
            try:
                record = (await model.records_of([number])).get(number)
            except StudyUnreadable as exc:
                return HTMLResponse(_pages.not_found_page(str(exc)), status_code=503)
        if record is None:
            text = f"study {model.info.name!r} has no trial {request.query_params.get('n')!r}"
            return HTMLResponse(_pages.not_found_page(text), status_code=404)
        if request.query_params.get("part") == "main":
            return HTMLResponse(_pages.trial_main(model, record))
        return HTMLResponse(_pages.trial_page(model, record))

    async def api_studies(request: Request) -> Response:
        if not hub.listed.is_set():
            await hub.listed.wait()
        return _json({"studies": hub.studies(), "error": hub.list_error})

    async def api_study(request: Request) -> Response:
        model = await model_of(request)
        if isinstance(model, Response):
            return model
        return _json({"summary": model.summary(), "charts": chart_keys(model), "space": model.info.space})

    async def api_chart(request: Request) -> Response:
        model = await model_of(request)
        if isinstance(model, Response):
            return model
        key = request.query_params.get("c", "")
        if key not in chart_keys(model):
            return _json({"error": f"no chart {key!r}; the charts are {chart_keys(model)}"}, 404)
        slot = (model.info.name, key)
        async with chart_locks.setdefault(slot, anyio.Lock()):
            cached = charts.get(slot)
            fresh = cached is not None and (
                cached[1]["version"] == model.version or time.monotonic() - cached[0] < CHART_MAX_AGE
            )
            if not fresh:
                try:
                    prepared = await prepare(model, key)
                except StudyUnreadable as exc:
                    model.first_chart.set()
                    return _json({"error": str(exc)}, 503)
                drawn = await anyio.to_thread.run_sync(render, prepared)
                cached = charts[slot] = (time.monotonic(), drawn)
        assert cached is not None
        model.first_chart.set()
        return _json(cached[1])

    async def api_trials(request: Request) -> Response:
        model = await model_of(request)
        if isinstance(model, Response):
            return model
        q = request.query_params
        sort = q.get("sort", "number")
        if sort not in SORT_KEYS and not sort.startswith("param:"):
            return _json({"error": f"sort must be one of {list(SORT_KEYS)} or param:NAME, got {sort!r}"}, 400)
        states = frozenset(s for s in q.get("state", "").split(",") if s)
        unknown = states - {s.value for s in TrialState}
        if unknown:
            return _json({"error": f"unknown state(s) {sorted(unknown)}"}, 400)
        offset, limit = _int(q.get("offset", "0")), _int(q.get("limit", "50"))
        if offset is None or offset < 0 or limit is None or not 1 <= limit <= MAX_PAGE:
            return _json({"error": f"offset is an integer >= 0 and limit one in [1, {MAX_PAGE}]"}, 400)
        query = TableQuery(sort, q.get("desc") == "1", states, q.get("q", "").strip()[:200], offset, limit)
        if not model.complete:
            await model.complete_event.wait()  # the table shows configurations: brief summaries lack them
        total, rows = model.table(query)
        return _json({"total": total, "offset": offset, "rows": rows, "version": model.version, "n": len(model.trials)})

    async def api_events(request: Request) -> Response:
        model = await model_of(request)
        if isinstance(model, Response):
            return model
        since = _int(request.query_params.get("v", "")) or 0
        return StreamingResponse(_study_events(model, since), media_type="text/event-stream")

    async def api_studies_events(request: Request) -> Response:
        return StreamingResponse(_studies_events(hub), media_type="text/event-stream")

    async def static_css(request: Request) -> Response:
        return Response(css, media_type="text/css")

    async def static_js(request: Request) -> Response:
        return Response(script, media_type="text/javascript")

    app = Starlette(
        routes=[
            Route("/", studies_page),
            Route("/study", study_page),
            Route("/trial", trial_page),
            Route("/api/studies", api_studies),
            Route("/api/studies/events", api_studies_events),
            Route("/api/study", api_study),
            Route("/api/chart", api_chart),
            Route("/api/trials", api_trials),
            Route("/api/events", api_events),
            Route("/static/dashboard.css", static_css),
            Route("/static/dashboard.js", static_js),
        ]
    )
    return _Guard(app, loopback_only=loopback_only)


def _message(response: Response) -> str:
    try:
        return str(orjson.loads(response.body)["error"])
    except (ValueError, KeyError, TypeError):
        return "not found"


def _int(text: str | None) -> int | None:
    if text is None:
        return None
    try:
        return int(text)
    except ValueError:
        return None


def _event(name: str, data: Any) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


async def _study_events(model: StudyModel, since: int) -> AsyncIterator[bytes]:
    """Server-sent events of one study: its header, and the trials changed since the page's version."""
    yield b"retry: 2000\n\n"
    version = since
    first = True
    while True:
        if not first:
            with anyio.move_on_after(15):
                await model.wait_change(version)
        if model.version == version and not first:
            yield b": still here\n\n"
            continue
        numbers = model.changed_since(version) if version else []
        best = model.best.number if model.best is not None else None
        rows = [] if numbers is None else [row(model.trials[n], best) for n in numbers[:LIVE_ROWS] if n in model.trials]
        yield _event(
            "change",
            {
                "summary": model.summary(),
                "rows": rows,
                "changed": None if numbers is None else len(numbers),
                "resync": numbers is None,
                "from": version,
            },
        )
        version = model.version
        first = False
        await anyio.sleep(0.25)  # a burst of changes goes out as one update


async def _studies_events(hub: Hub) -> AsyncIterator[bytes]:
    """Server-sent events of the studies list: every study's summary, when any changed."""
    yield b"retry: 2000\n\n"
    last = b""
    quiet = 0.0
    while True:
        payload = orjson.dumps({"studies": hub.studies(), "error": hub.list_error})
        if payload != last:
            last = payload
            quiet = 0.0
            yield b"event: studies\ndata: " + payload + b"\n\n"
        elif quiet >= 15:
            quiet = 0.0
            yield b": still here\n\n"
        await anyio.sleep(1.0)
        quiet += 1.0
