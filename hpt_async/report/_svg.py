"""The drawing kit of the report: figures, scales, ticks, colours, SVG elements.

Charts are plain SVG text built here, without any plotting library, so that a
report is small and opens anywhere.  Marks carry an SVG ``<title>``: a viewer
shows it as a tooltip, and the report page turns it into a styled one.
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Iterable, Sequence
from html import escape
from typing import Any

__all__ = [
    "BEST",
    "STATE_COLOURS",
    "Band",
    "Figure",
    "Linear",
    "Log",
    "Scale",
    "fmt",
    "ramp",
]

_BIGGEST = sys.float_info.max

# -- colours -------------------------------------------------------------------------

STATE_COLOURS: dict[str, str] = {
    "complete": "#4c78a8",
    "pruned": "#f58518",
    "failed": "#e45756",
    "running": "#54a24b",
    "cancelled": "#9d9d9d",
    "lost": "#9d755d",
    "paused": "#b279a2",
}
"""One colour per trial state, the same in every chart."""

BEST = "#c026d3"
"""The colour of the best trial and of the best value so far."""

INK = "#1f2937"
MUTED = "#6b7280"
GRID = "#e5e7eb"
AXIS = "#9ca3af"

VALUE_RAMP = ("#fcd34d", "#4fb3bf", "#1e3a8a")
"""Worse to better objective values (parallel coordinates)."""

TIME_RAMP = ("#cbd5e1", "#0f766e")
"""Earlier to later trials (slices)."""


def _hex(colour: str) -> tuple[int, int, int]:
    return int(colour[1:3], 16), int(colour[3:5], 16), int(colour[5:7], 16)


def ramp(stops: Sequence[str], t: float) -> str:
    """The colour at ``t`` in ``[0, 1]`` on a piecewise-linear ramp through ``stops``."""
    t = 0.0 if not math.isfinite(t) else min(1.0, max(0.0, t))
    pos = t * (len(stops) - 1)
    i = min(int(pos), len(stops) - 2)
    frac = pos - i
    a, b = _hex(stops[i]), _hex(stops[i + 1])
    r, g, bl = (round(x + (y - x) * frac) for x, y in zip(a, b, strict=True))
    return f"#{r:02x}{g:02x}{bl:02x}"


# -- numbers ---------------------------------------------------------------------------


def fmt(value: float, digits: int = 4) -> str:
    """A short label for a number: ``0.0123``, ``1.5e-05`` as ``1.5e-5``, ``12000``, ``3``."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return str(value)
    if not math.isfinite(value):
        return str(value)
    if value == 0:
        return "0"
    mag = abs(value)
    if 1e-3 <= mag < 1e6:
        text = f"{value:.{digits}g}"
        if "e" not in text:
            return text
    text = f"{value:.{max(1, digits - 1)}e}"
    mantissa, exponent = text.split("e")
    if "." in mantissa:
        mantissa = mantissa.rstrip("0").rstrip(".")
    return f"{mantissa}e{int(exponent)}"


def _nice_step(span: float, count: int) -> float:
    raw = span / max(1, count)
    power = 10 ** math.floor(math.log10(raw))
    for m in (1, 2, 2.5, 5, 10):
        if raw <= m * power:
            return m * power
    return 10 * power


def _linear_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    if hi <= lo:
        return [lo]
    span = hi - lo
    # Values near the ends of the float range (+-1e308) overflow a plain difference; halves never do.
    step = _nice_step(span, count) if math.isfinite(span) else 2 * _nice_step(hi / 2 - lo / 2, count)
    step = float(step)
    first = math.ceil(lo / step - 1e-9) * step
    limit = hi + step * 1e-9
    if not math.isfinite(limit):
        limit = hi
    ticks = []
    k = 0
    while k <= 4 * count + 4:  # a nice step gives at most about 2 * count ticks; the bound guards rounding
        v = first + k * step
        if not v <= limit:
            break
        ticks.append(0.0 if abs(v) < step * 1e-9 else round(v, 12))
        k += 1
    return ticks


# -- scales ----------------------------------------------------------------------------


class Scale:
    """Maps data values onto a pixel range ``[a, b]``."""

    a: float
    b: float

    def __call__(self, value: Any) -> float:
        raise NotImplementedError

    def ticks(self, count: int = 5) -> list[tuple[float, str]]:
        """``(pixel, label)`` pairs for the axis."""
        raise NotImplementedError


class Linear(Scale):
    """A linear scale over ``[lo, hi]`` (widened when empty), optionally padded."""

    def __init__(self, lo: float, hi: float, a: float, b: float, *, pad: float = 0.0, integer: bool = False) -> None:
        if hi < lo:
            lo, hi = hi, lo
        if hi == lo:
            width = abs(lo) * 0.1 or 1.0
            lo, hi = lo - width, hi + width
        half = hi / 2 - lo / 2  # half the span: finite even where the span itself overflows
        self.lo = max(-_BIGGEST, lo - half * (2 * pad))
        self.hi = min(_BIGGEST, hi + half * (2 * pad))
        self._half = self.hi / 2 - self.lo / 2
        self.a, self.b = a, b
        self.integer = integer

    def __call__(self, value: Any) -> float:
        return self.a + (float(value) / 2 - self.lo / 2) / self._half * (self.b - self.a)

    def ticks(self, count: int = 5) -> list[tuple[float, str]]:
        values = _linear_ticks(self.lo, self.hi, count)
        if self.integer:
            values = sorted({round(v) for v in values if abs(v - round(v)) < 1e-9})
            if not values:
                values = sorted({round(self.lo), round(self.hi)})
        return [(self(v), fmt(v)) for v in values]


class Log(Scale):
    """A base-10 logarithmic scale over positive ``[lo, hi]``."""

    def __init__(self, lo: float, hi: float, a: float, b: float, *, pad: float = 0.0) -> None:
        lo, hi = math.log10(lo), math.log10(hi)
        if hi == lo:
            lo, hi = lo - 0.5, hi + 0.5
        span = hi - lo
        self.lo, self.hi = lo - span * pad, hi + span * pad
        self.a, self.b = a, b

    def __call__(self, value: Any) -> float:
        v = float(value)
        lv = math.log10(v) if v > 0 else self.lo
        return self.a + (lv - self.lo) / (self.hi - self.lo) * (self.b - self.a)

    def ticks(self, count: int = 5) -> list[tuple[float, str]]:
        first, last = math.ceil(self.lo - 1e-9), math.floor(self.hi + 1e-9)
        decades = list(range(first, last + 1))
        if len(decades) > count + 1:
            stride = math.ceil(len(decades) / count)
            decades = decades[::stride]
        values = [10.0**d for d in decades]
        if len(values) < 3:
            extra = [
                m * 10.0**d
                for d in range(math.floor(self.lo), math.ceil(self.hi) + 1)
                for m in (2, 5)
                if self.lo - 1e-9 <= math.log10(m) + d <= self.hi + 1e-9
            ]
            values = sorted(set(values) | set(extra))
        if len(values) < 2:
            values = [10**v for v in _linear_ticks(self.lo, self.hi, count)]
        return [(self(v), fmt(v, 3)) for v in values]


class Band(Scale):
    """Evenly spaced categories; ``__call__`` takes a category's index."""

    def __init__(self, labels: Sequence[str], a: float, b: float) -> None:
        self.labels = list(labels)
        self.a, self.b = a, b
        self.step = (b - a) / max(1, len(self.labels))

    def __call__(self, value: Any) -> float:
        return self.a + (float(value) + 0.5) * self.step

    def ticks(self, count: int = 5) -> list[tuple[float, str]]:
        return [(self(i), label) for i, label in enumerate(self.labels)]


# -- figures -----------------------------------------------------------------------------


def _n(x: float) -> str:
    """A coordinate with one decimal, trailing zeros dropped."""
    text = f"{x:.1f}"
    return text[:-2] if text.endswith(".0") else text


def _attrs(attrs: dict[str, Any]) -> str:
    out = []
    for key, value in attrs.items():
        if value is None:
            continue
        name = key.rstrip("_").replace("_", "-")
        text = _n(value) if isinstance(value, float) else str(value)
        out.append(f' {name}="{escape(text, quote=True)}"')
    return "".join(out)


def _title(tip: str | None) -> str:
    return f"<title>{escape(tip)}</title>" if tip else ""


class Figure:
    """One chart: a title, a caption, and SVG drawn by the report's own code.

    ``to_svg()`` gives a standalone SVG document (with a title line unless
    ``title=False``); ``save(path)`` writes it; notebooks display a figure
    directly.  A figure that has nothing to draw carries a ``message``
    saying why and draws that text instead.
    """

    def __init__(self, key: str, title: str, width: int, height: int, *, caption: str = "") -> None:
        self.key = key
        self.title = title
        self.caption = caption
        self.width = width
        self.height = height
        self.message: str | None = None
        self.notes: list[str] = []
        self._parts: list[str] = []
        self._defs: list[str] = []

    def __repr__(self) -> str:
        state = f"message={self.message!r}" if self.message else f"{len(self._parts)} elements"
        return f"Figure({self.key!r}, {self.title!r}, {self.width}x{self.height}, {state})"

    @property
    def empty(self) -> bool:
        """True when the figure draws only its message."""
        return self.message is not None

    # -- elements ------------------------------------------------------------------

    def add(self, markup: str) -> None:
        """Append raw SVG markup."""
        self._parts.append(markup)

    def define(self, markup: str) -> None:
        """Append markup to the figure's ``<defs>``."""
        self._defs.append(markup)

    def line(self, x1: float, y1: float, x2: float, y2: float, stroke: str = AXIS, **attrs: Any) -> None:
        """A straight line."""
        self.add(f"<line{_attrs({'x1': x1, 'y1': y1, 'x2': x2, 'y2': y2, 'stroke': stroke, **attrs})}/>")

    def rect(self, x: float, y: float, w: float, h: float, fill: str, tip: str | None = None, **attrs: Any) -> None:
        """A rectangle, optionally with a tooltip."""
        a = _attrs({"x": x, "y": y, "width": max(w, 0.0), "height": max(h, 0.0), "fill": fill, **attrs})
        self.add(f"<rect{a}>{_title(tip)}</rect>" if tip else f"<rect{a}/>")

    def circle(self, cx: float, cy: float, r: float, fill: str, tip: str | None = None, **attrs: Any) -> None:
        """A circle, optionally with a tooltip."""
        a = _attrs({"cx": cx, "cy": cy, "r": r, "fill": fill, **attrs})
        self.add(f"<circle{a}>{_title(tip)}</circle>" if tip else f"<circle{a}/>")

    def path(self, d: str, stroke: str, tip: str | None = None, fill: str = "none", **attrs: Any) -> None:
        """A path given its ``d`` data."""
        a = _attrs({"d": d, "stroke": stroke, "fill": fill, **attrs})
        self.add(f"<path{a}>{_title(tip)}</path>" if tip else f"<path{a}/>")

    def polyline(
        self, points: Iterable[tuple[float, float]], stroke: str, tip: str | None = None, **attrs: Any
    ) -> None:
        """A path through ``points`` (nothing when fewer than one)."""
        pts = list(points)
        if not pts:
            return
        d = "M" + "L".join(f"{_n(x)},{_n(y)}" for x, y in pts)
        self.path(d, stroke, tip, **attrs)

    def cross(self, x: float, y: float, size: float, stroke: str, tip: str | None = None, **attrs: Any) -> None:
        """An ``x`` mark centred on ``(x, y)``."""
        s = size
        d = f"M{_n(x - s)},{_n(y - s)}L{_n(x + s)},{_n(y + s)}M{_n(x - s)},{_n(y + s)}L{_n(x + s)},{_n(y - s)}"
        self.path(d, stroke, tip, **attrs)

    def text(
        self,
        x: float,
        y: float,
        content: str,
        *,
        size: float = 11,
        anchor: str = "start",
        fill: str = INK,
        weight: str | None = None,
        rotate: float | None = None,
        baseline: str | None = None,
        tip: str | None = None,
        halo: bool = False,
    ) -> None:
        """A line of text; ``halo`` outlines it in white so it stays legible over marks."""
        transform = f"rotate({_n(rotate)} {_n(x)} {_n(y)})" if rotate else None
        a = _attrs(
            {
                "x": x,
                "y": y,
                "font-size": size,
                "text-anchor": anchor if anchor != "start" else None,
                "fill": fill,
                "font-weight": weight,
                "transform": transform,
                "dominant-baseline": baseline,
                "stroke": "#ffffff" if halo else None,
                "stroke-width": 3 if halo else None,
                "paint-order": "stroke" if halo else None,
                "stroke-linejoin": "round" if halo else None,
            }
        )
        self.add(f"<text{a}>{escape(content)}{_title(tip)}</text>")

    # -- axes and legends ------------------------------------------------------------

    def x_axis(self, scale: Scale, y: float, label: str, *, grid_to: float | None = None, count: int = 6) -> None:
        """Ticks and labels below ``y``; grid lines up to ``grid_to`` when given."""
        lo, hi = sorted((scale.a, scale.b))
        self.line(lo, y, hi, y, AXIS)
        ticks = scale.ticks(count)
        rotate = isinstance(scale, Band) and (
            max((len(t) for _, t in ticks), default=0) * 6.5 > (hi - lo) / max(1, len(ticks))
        )
        for px, tick in ticks:
            if grid_to is not None and not isinstance(scale, Band):
                self.line(px, grid_to, px, y, GRID)
            self.line(px, y, px, y + 4, AXIS)
            if rotate:
                self.text(px + 3, y + 12, _clip(tick, 13), size=10, anchor="end", fill=MUTED, rotate=-30)
            else:
                self.text(px, y + 15, _clip(tick, 18), size=10, anchor="middle", fill=MUTED)
        if label:
            self.text((lo + hi) / 2, y + (54 if rotate else 32), label, size=11.5, anchor="middle", fill=INK)

    def y_axis(self, scale: Scale, x: float, label: str, *, grid_to: float | None = None, count: int = 5) -> None:
        """Ticks and labels left of ``x``; grid lines across to ``grid_to`` when given."""
        lo, hi = sorted((scale.a, scale.b))
        self.line(x, lo, x, hi, AXIS)
        for py, tick in scale.ticks(count):
            if grid_to is not None:
                self.line(x, py, grid_to, py, GRID)
            self.line(x - 4, py, x, py, AXIS)
            self.text(x - 6, py + 3.5, _clip(tick, 12), size=10, anchor="end", fill=MUTED)
        if label:
            self.text(x - 48, (lo + hi) / 2, label, size=11.5, anchor="middle", rotate=-90)

    def legend(self, items: Sequence[tuple[str, str, str]], x: float, y: float) -> float:
        """Swatches left to right from ``(x, y)``: ``(kind, colour, label)``, kind one of dot, line, bar, cross.

        Returns the x where the legend ends.
        """
        for kind, colour, label in items:
            if kind == "line":
                self.line(x, y, x + 16, y, colour, stroke_width=2.5)
                x += 20
            elif kind == "cross":
                self.cross(x + 5, y, 3.5, colour, stroke_width=2)
                x += 14
            elif kind == "bar":
                self.rect(x, y - 5, 14, 10, colour, rx=2)
                x += 18
            else:
                self.circle(x + 5, y, 4.5, colour)
                x += 14
            self.text(x, y + 4, label, size=11, fill=INK)
            x += 6.3 * len(label) + 16
        return x

    def gradient(self, ident: str, stops: Sequence[str], x: float, y: float, w: float, left: str, right: str) -> None:
        """A horizontal colour bar from ``stops[0]`` to ``stops[-1]`` labelled at both ends."""
        gid = f"{self.key}-{ident}"
        offsets = "".join(f'<stop offset="{i / (len(stops) - 1):.2f}" stop-color="{c}"/>' for i, c in enumerate(stops))
        self.define(f'<linearGradient id="{escape(gid)}">{offsets}</linearGradient>')
        self.text(x, y + 4, left, size=10.5, fill=MUTED)
        bx = x + 7 * len(left) + 6
        self.rect(bx, y - 5, w, 10, f"url(#{gid})", rx=2)
        self.text(bx + w + 6, y + 4, right, size=10.5, fill=MUTED)

    def show_message(self, message: str) -> None:
        """Replace the drawing with ``message`` (the figure has nothing to show)."""
        self.message = message
        self._parts = []
        self._defs = []
        self.height = min(self.height, 120)
        self.rect(0.5, 0.5, self.width - 1, self.height - 1, "#f9fafb", stroke=GRID, rx=6)
        lines = _wrap(message, max(20, self.width // 7))
        top = self.height / 2 - 8 * (len(lines) - 1)
        for i, text in enumerate(lines):
            self.text(self.width / 2, top + 16 * i + 4, text, size=13, anchor="middle", fill=MUTED)

    # -- output ------------------------------------------------------------------------

    def to_svg(self, *, title: bool = True, standalone: bool = True) -> str:
        """The figure as SVG text.

        ``title`` adds the title above the drawing; ``standalone`` adds the XML
        namespace and a white background so the file stands on its own.
        """
        head = 28 if title else 0
        width, height = self.width, self.height + head
        ns = ' xmlns="http://www.w3.org/2000/svg"' if standalone else ""
        out = [
            f'<svg{ns} class="chart" data-chart="{escape(self.key)}" viewBox="0 0 {width} {height}" '
            f'width="{width}" height="{height}" role="img" aria-label="{escape(self.title)}" '
            'font-family="system-ui, -apple-system, Segoe UI, Roboto, Helvetica, Arial, sans-serif">'
        ]
        if self._defs:
            out.append("<defs>" + "".join(self._defs) + "</defs>")
        if standalone:
            out.append(f'<rect width="{width}" height="{height}" fill="#ffffff"/>')
        if title:
            out.append(f'<text x="8" y="19" font-size="15" font-weight="600" fill="{INK}">{escape(self.title)}</text>')
            out.append(f'<g transform="translate(0 {head})">')
        out.extend(self._parts)
        if title:
            out.append("</g>")
        out.append("</svg>")
        return "".join(out)

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write :meth:`to_svg` to ``path``."""
        with open(path, "w", encoding="utf-8") as f:
            f.write(self.to_svg())

    def _repr_svg_(self) -> str:
        return self.to_svg()


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _wrap(text: str, width: int) -> list[str]:
    lines: list[str] = []
    current = ""
    for word in text.split():
        if current and len(current) + 1 + len(word) > width:
            lines.append(current)
            current = word
        else:
            current = f"{current} {word}".strip()
    if current:
        lines.append(current)
    return lines or [""]
