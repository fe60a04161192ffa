"""Vectorised encoding of a search space for model-based strategies.

Two views of a configuration are used:

* *unit coordinates* ``u`` (one per parameter, the space's own
  ``to_unit``/``from_unit`` encoding; NaN for an inactive parameter), and
* *features* ``z`` (what a model sees): a numeric parameter is one column
  holding its unit coordinate, a Choice of ``k`` values is ``k`` one-hot
  columns.  An inactive numeric parameter is filled with 0.5 and an inactive
  Choice with zeros, so that its parent's columns alone tell the subspaces
  apart.

:meth:`Encoder.snap` rounds many unit points at once exactly as
``Space.from_unit`` would (Int and stepped Float to their values, Choice to
its index) and works out which parameters are active, so candidates can be
made and scored in bulk and only the winner is decoded to a configuration.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from ..space import Choice, Float, Int, Space

__all__ = ["Encoder"]

_INACTIVE_FILL = 0.5


class _Param:
    """What the encoder needs to know about one parameter."""

    __slots__ = ("col", "conds", "dom", "index", "kind", "lo", "n", "name", "width")

    def __init__(self, index: int, name: str, dom: Any, col: int) -> None:
        self.index = index
        self.name = name
        self.dom = dom
        self.col = col
        self.conds: list[tuple[int, np.ndarray]] = []
        self.lo = 0.0
        self.n = 0
        if isinstance(dom, Choice):
            self.kind = "choice"
            self.n = len(dom.values)
            self.width = self.n
        elif isinstance(dom, Int):
            self.width = 1
            if dom.log:
                self.kind = "intlog"
                self.lo = math.log(dom.low - 0.5)
                self.n = 0
            else:
                self.kind = "steps"
                self.n = (dom.high - dom.low) // dom.step + 1
        elif isinstance(dom, Float):
            self.width = 1
            if dom.step is not None:
                self.kind = "steps"
                self.n = math.floor((dom.high - dom.low) / dom.step + 1e-9) + 1
            else:
                self.kind = "float"
        else:  # pragma: no cover - the space admits only these domains
            raise TypeError(f"unsupported domain {dom!r}")

    def values(self, u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Snapped unit coordinates of ``u`` and the values conditions compare (Choice: index)."""
        dom = self.dom
        if self.kind == "choice":
            idx = np.minimum((u * self.n).astype(np.int64), self.n - 1)
            return (idx + 0.5) / self.n, idx.astype(float)
        if self.kind == "steps":
            k = np.minimum((u * self.n).astype(np.int64), self.n - 1)
            value = np.minimum(dom.low + k * dom.step, dom.high).astype(float)
            return (k + 0.5) / self.n, value
        if self.kind == "intlog":
            lo, hi = self.lo, math.log(dom.high + 0.5)
            value = np.clip(np.round(np.exp(lo + u * (hi - lo))), dom.low, dom.high)
            return np.clip((np.log(value) - lo) / (hi - lo), 0.0, 1.0), value
        # Plain float: the coordinate is the value's encoding already.
        uu = np.clip(u, 0.0, 1.0)
        if dom.log:
            a, b = math.log(dom.low), math.log(dom.high)
            value = np.clip(np.exp(a + uu * (b - a)), dom.low, dom.high)
        else:
            value = np.clip(dom.low + uu * (dom.high - dom.low), dom.low, dom.high)
        return uu, value


class Encoder:
    """Maps configurations, unit coordinates and model features onto each other."""

    def __init__(self, space: Space) -> None:
        self.space = space
        self.params: list[_Param] = []
        col = 0
        for i, (name, dom) in enumerate(space.items()):
            p = _Param(i, name, dom, col)
            col += p.width
            self.params.append(p)
        self.dim = col
        self.n_params = len(self.params)
        index = {p.name: p.index for p in self.params}
        for p in self.params:
            for parent, allowed in p.dom.when.items():
                q = self.params[index[parent]]
                if q.kind == "choice":
                    codes = np.array([float(q.dom.index(v)) for v in allowed])
                else:
                    codes = np.array([float(v) for v in allowed])
                p.conds.append((q.index, codes))
        self.conditional = space.conditional
        #: Feature columns that hold a numeric parameter (refinable by gradient).
        self.numeric_cols = np.array([p.col for p in self.params if p.kind != "choice"], dtype=np.int64)
        #: For each feature column, the index of its parameter.
        self.col_param = np.concatenate([np.full(p.width, p.index) for p in self.params]).astype(np.int64)

    # -- bulk -------------------------------------------------------------------

    def snap(self, u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Round unit points ``u`` (n x params) to the space's values; return them and the activity mask.

        The returned coordinates are what ``to_unit(from_unit(u))`` gives,
        NaN where a parameter is inactive.
        """
        u = np.asarray(u, dtype=float)
        out = np.empty_like(u)
        codes = np.empty_like(u)
        active = np.ones(u.shape, dtype=bool)
        for p in self.params:
            out[:, p.index], codes[:, p.index] = p.values(np.nan_to_num(u[:, p.index], nan=0.5))
            for parent, allowed in p.conds:
                active[:, p.index] &= active[:, parent] & np.isin(codes[:, parent], allowed)
        out[~active] = np.nan
        return out, active

    def features(self, u: np.ndarray) -> np.ndarray:
        """Model features of unit points (NaN = inactive), n x :attr:`dim`."""
        u = np.atleast_2d(np.asarray(u, dtype=float))
        z = np.zeros((u.shape[0], self.dim))
        for p in self.params:
            col = u[:, p.index]
            on = ~np.isnan(col)
            if p.kind == "choice":
                idx = np.minimum((np.where(on, col, 0.0) * p.n).astype(np.int64), p.n - 1)
                rows = np.nonzero(on)[0]
                z[rows, p.col + idx[rows]] = 1.0
            else:
                z[:, p.col] = np.where(on, col, _INACTIVE_FILL)
        return z

    def unit_of_features(self, z: np.ndarray) -> np.ndarray:
        """Unit coordinates of features (a one-hot block becomes its arg-max value); not snapped."""
        z = np.atleast_2d(z)
        u = np.empty((z.shape[0], self.n_params))
        for p in self.params:
            if p.kind == "choice":
                u[:, p.index] = (np.argmax(z[:, p.col : p.col + p.n], axis=1) + 0.5) / p.n
            else:
                u[:, p.index] = z[:, p.col]
        return u

    # -- single configurations ----------------------------------------------------

    def unit(self, params: Mapping[str, Any]) -> np.ndarray:
        """Unit coordinates of one configuration (NaN for inactive parameters)."""
        return np.array(self.space.to_unit(params), dtype=float)

    def decode(self, u: np.ndarray) -> dict[str, Any]:
        """The configuration of one unit point."""
        return self.space.from_unit(np.nan_to_num(np.asarray(u, dtype=float), nan=0.5).tolist())
