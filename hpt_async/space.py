"""Search spaces: domains, conditions, sampling and the unit-cube encoding.

A :class:`Space` is an ordered mapping from parameter names to domains
(:class:`Float`, :class:`Int`, :class:`Choice`).  A domain may carry a
condition, ``when={"layers": [3, 4]}``: the parameter exists only when every
named parent is itself active and has one of the listed values.  An inactive
parameter is absent from a configuration.

Every domain maps the unit interval onto its values (:meth:`Domain.from_unit`)
and back (:meth:`Domain.to_unit`), so random, quasi-random and model-based
strategies all work on ``[0, 1]^d`` and share one decoding path.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Hashable, Iterable, Iterator, Mapping, Sequence
from typing import Any

from .exceptions import HptError

__all__ = [
    "Choice",
    "Domain",
    "Float",
    "Int",
    "Space",
    "SpaceError",
    "as_space",
    "unit_uniforms",
]

_STEP_RESOLUTION = 4e6
"""The smallest Float step, in units in the last place of the larger bound."""

_MASK64 = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15


class SpaceError(HptError, ValueError):
    """A search space or a configuration does not fit its definition."""


def _mix64(x: int) -> int:
    """SplitMix64 finaliser: a bijective, well-avalanching 64-bit hash."""
    x = (x + _GOLDEN) & _MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
    return x ^ (x >> 31)


def unit_uniforms(seed: int, number: int, count: int) -> list[float]:
    """``count`` uniforms in ``[0, 1)`` that depend only on ``(seed, number)``.

    Counter-based (SplitMix64 outputs keyed by the seed and the trial
    number): no generator state is carried between trials, so trial
    ``number`` gets the same values whichever process or order asks for it.
    """
    state = _mix64((seed & _MASK64) ^ _mix64(number & _MASK64))
    out = []
    for i in range(1, count + 1):
        x = (state + i * _GOLDEN) & _MASK64
        x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
        x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
        out.append(((x ^ (x >> 31)) >> 11) * 2.0**-53)
    return out


def unit_uniforms_block(seed: int, first: int, n: int, count: int) -> list[list[float]]:
    """``[unit_uniforms(seed, number, count) for number in range(first, first + n)]``, computed with numpy.

    The same values bit for bit: numpy's uint64 arithmetic wraps modulo
    2**64 as the masks above do, and ``x >> 11`` is below 2**53, so its
    conversion to a float is exact.  Cheaper per number than
    :func:`unit_uniforms` when many consecutive numbers are wanted.
    """
    import numpy as np

    golden = np.uint64(_GOLDEN)
    m1, m2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)
    s30, s27, s31, s11 = np.uint64(30), np.uint64(27), np.uint64(31), np.uint64(11)

    def finish(x: Any) -> Any:
        x = (x ^ (x >> s30)) * m1
        x = (x ^ (x >> s27)) * m2
        return x ^ (x >> s31)

    numbers = np.arange(first, first + n, dtype=np.uint64)
    state = finish((np.uint64(seed & _MASK64) ^ finish(numbers + golden)) + golden)
    steps = np.arange(1, count + 1, dtype=np.uint64) * golden
    x = finish(state[:, None] + steps[None, :])
    return ((x >> s11).astype(np.float64) * 2.0**-53).tolist()  # type: ignore[no-any-return]


class _Allowed(tuple):  # type: ignore[type-arg]
    """The allowed values of one condition, once normalised (a tuple value stays one value)."""

    __slots__ = ()


def _normalise_condition(name: str, when: Mapping[str, Any] | None) -> dict[str, tuple[Any, ...]]:
    if when is None:
        return {}
    if not isinstance(when, Mapping):
        raise SpaceError(f"condition of {name!r} must be a mapping of parameter -> allowed values, got {when!r}")
    out: dict[str, Any] = {}
    for parent, allowed in when.items():
        if isinstance(allowed, (list, set, frozenset, _Allowed)):
            values = _Allowed(allowed)
        else:
            values = _Allowed((allowed,))
        if not values:
            raise SpaceError(f"condition of {name!r} on {parent!r} allows no value")
        out[parent] = values
    return out


class Domain:
    """Base of every parameter domain.

    Subclasses implement :meth:`from_unit`, :meth:`to_unit`, :meth:`contains`
    and :meth:`grid`.  ``when`` holds the condition (parent -> allowed values).
    """

    __slots__ = ("name", "when")

    def __init__(self, when: Mapping[str, Any] | None = None) -> None:
        self.name = ""
        self.when: dict[str, tuple[Any, ...]] = when  # type: ignore[assignment]  # normalised by _bind

    def _bind(self, name: str) -> None:
        """Give the domain its name and check its definition (called by :class:`Space`)."""
        self.name = name
        self.when = _normalise_condition(name, self.when)
        self._validate()

    def _validate(self) -> None:
        """Raise :class:`SpaceError` naming the parameter if the definition is bad."""

    def from_unit(self, u: float) -> Any:
        """Map ``u`` in ``[0, 1]`` to a value of the domain."""
        raise NotImplementedError

    def to_unit(self, value: Any) -> float:
        """Map a value of the domain to ``[0, 1]`` (inverse of :meth:`from_unit`)."""
        raise NotImplementedError

    def contains(self, value: Any) -> bool:
        """True when ``value`` is a value this domain can produce."""
        raise NotImplementedError

    def grid(self, points: int) -> list[Any]:
        """At most ``points`` values spread over the domain (all of a Choice)."""
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        """A JSON-serialisable description (what storage keeps to check a resumed space)."""
        out = self._describe()
        if self.when:
            out["when"] = {p: [_describe_value(v) for v in vals] for p, vals in self.when.items()}
        return out

    def _describe(self) -> dict[str, Any]:
        raise NotImplementedError

    def _fail(self, message: str) -> SpaceError:
        return SpaceError(f"parameter {self.name or '?'!r}: {message}")


def _check_number(dom: Domain, value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise dom._fail(f"{what} must be a number, got {value!r}")
    if not math.isfinite(value):
        raise dom._fail(f"{what} must be finite, got {value!r}")
    return float(value)


class Float(Domain):
    """A real parameter in ``[low, high]``.

    ``log=True`` samples uniformly in log space (``low`` must be > 0).
    ``step`` restricts values to ``low + k * step``; ``high`` is lowered to the
    last such value.  ``log`` and ``step`` cannot be combined.

    The bounds must be finite and ``high - low`` a finite float; a step must
    leave at least two values when ``low < high`` and be coarse enough for
    its values to be exact floats.  A bad definition raises
    :class:`SpaceError` naming the parameter when the :class:`Space` is built.
    """

    __slots__ = ("_a", "_b", "_n", "high", "log", "low", "step")

    def __init__(
        self,
        low: float,
        high: float,
        *,
        log: bool = False,
        step: float | None = None,
        when: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(when)
        self.low, self.high, self.log, self.step = low, high, bool(log), step

    def _validate(self) -> None:
        self.low = _check_number(self, self.low, "low")
        self.high = _check_number(self, self.high, "high")
        if self.step is not None:
            self.step = _check_number(self, self.step, "step")
        if self.low > self.high:
            raise self._fail(f"low ({self.low}) is greater than high ({self.high})")
        if self.log and self.low <= 0:
            raise self._fail(f"log scale needs low > 0, got low={self.low}")
        width = self.high - self.low
        if not math.isfinite(width):
            # Sampling scales the unit interval by the width: it must be a finite float.
            raise self._fail(f"the range from {self.low} to {self.high} is wider than the largest float")
        if self.step is not None:
            if self.log:
                raise self._fail("log and step cannot be combined")
            if self.step <= 0:
                raise self._fail(f"step must be > 0, got {self.step}")
            # A lattice value low + k * step carries a rounding error of a few units in the last
            # place of the bounds; contains() allows 1e-6 of a step, so the step must dwarf it.
            if self.step < _STEP_RESOLUTION * math.ulp(max(abs(self.low), abs(self.high))):
                raise self._fail(
                    f"step ({self.step}) is too fine for the float precision at the bounds "
                    f"({self.low} to {self.high}); its values would not be exact"
                )
            self._n = math.floor(width / self.step + 1e-9)
            if width > 0 and self._n == 0:
                raise self._fail(
                    f"step ({self.step}) is larger than the range from {self.low} to {self.high}; "
                    "the only value would be low"
                )
            # The last reachable value, never above the given high (rounding may overshoot it).
            self.high = min(self.low + self._n * self.step, self.high)
        else:
            self._n = 0
        if self.log:
            self._a, self._b = math.log(self.low), math.log(self.high)
        else:
            self._a, self._b = self.low, self.high

    def from_unit(self, u: float) -> float:
        if self.step is not None:
            k = min(int(u * (self._n + 1)), self._n)
            return min(self.low + k * self.step, self.high)
        x = self._a + u * (self._b - self._a)
        if self.log:
            # Rounding may carry x past log(high), and exp(x) past the largest float.
            x = math.exp(min(max(x, self._a), self._b))
        return min(max(x, self.low), self.high)

    def to_unit(self, value: Any) -> float:
        if self.step is not None:
            k = round((float(value) - self.low) / self.step)
            return (k + 0.5) / (self._n + 1)
        if self._b == self._a:
            return 0.5
        x = math.log(value) if self.log else float(value)
        return min(max((x - self._a) / (self._b - self._a), 0.0), 1.0)

    def contains(self, value: Any) -> bool:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            try:
                import numpy as np

                if not isinstance(value, np.floating | np.integer):
                    return False
            except ImportError:  # pragma: no cover - numpy is a dependency
                return False
        value = float(value)
        if not (self.low <= value <= self.high):
            return False
        if self.step is not None:
            k = (value - self.low) / self.step
            return abs(k - round(k)) < 1e-6
        return True

    def grid(self, points: int) -> list[float]:
        if self.step is not None and self._n + 1 <= points:
            return [min(self.low + k * self.step, self.high) for k in range(self._n + 1)]
        if points == 1 or self.low == self.high:
            return [self.from_unit(0.5)]
        values = [self.from_unit(i / (points - 1)) for i in range(points)]
        return list(dict.fromkeys(values))

    def _describe(self) -> dict[str, Any]:
        return {"type": "float", "low": self.low, "high": self.high, "log": self.log, "step": self.step}

    def __repr__(self) -> str:
        extra = ", log=True" if self.log else ""
        extra += f", step={self.step}" if self.step is not None else ""
        extra += f", when={self.when}" if self.when else ""
        return f"Float({self.low}, {self.high}{extra})"


class Int(Domain):
    """An integer parameter in ``[low, high]`` (both included).

    ``step`` keeps values at ``low + k * step`` (``high`` lowered to the last);
    ``log=True`` samples uniformly in log space (``low`` must be >= 1, ``step``
    must be 1).

    A step must leave at least two values when ``low < high``, and the
    number of values (with ``log``, ``high`` itself) must fit a float.  A bad
    definition raises :class:`SpaceError` naming the parameter when the
    :class:`Space` is built.
    """

    __slots__ = ("_n", "high", "log", "low", "step")

    def __init__(
        self,
        low: int,
        high: int,
        *,
        log: bool = False,
        step: int = 1,
        when: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(when)
        self.low, self.high, self.step, self.log = low, high, step, bool(log)

    def _validate(self) -> None:
        low, high, step = self.low, self.high, self.step
        for what, v in (("low", low), ("high", high), ("step", step)):
            if isinstance(v, bool) or not isinstance(v, numbers.Integral):
                raise self._fail(f"{what} must be an int, got {v!r}")
        low, high, step = self.low, self.high, self.step = int(low), int(high), int(step)
        if low > high:
            raise self._fail(f"low ({low}) is greater than high ({high})")
        if step < 1:
            raise self._fail(f"step must be >= 1, got {step}")
        if self.log and low < 1:
            raise self._fail(f"log scale needs low >= 1, got low={low}")
        if self.log and step != 1:
            raise self._fail("log and step cannot be combined")
        if high > low and step > high - low:
            raise self._fail(
                f"step ({step}) is larger than the range from {low} to {high}; the only value would be low"
            )
        self._n = (high - low) // step
        self.high = low + self._n * step
        try:
            # Sampling scales the unit interval by the number of values (or by log(high + 0.5)),
            # so these must be finite floats.
            float(self._n + 1)
            if self.log:
                math.exp(math.log(self.high + 0.5))
        except OverflowError:
            raise self._fail(f"the range from {low} to {high} is too large for a float to span") from None

    def from_unit(self, u: float) -> int:
        if self.log:
            lo, hi = math.log(self.low - 0.5), math.log(self.high + 0.5)
            v = round(math.exp(min(lo + u * (hi - lo), hi)))
            return min(max(v, self.low), self.high)
        k = min(int(u * (self._n + 1)), self._n)
        return self.low + k * self.step

    def to_unit(self, value: Any) -> float:
        if self.log:
            lo, hi = math.log(self.low - 0.5), math.log(self.high + 0.5)
            return min(max((math.log(value) - lo) / (hi - lo), 0.0), 1.0)
        k = (int(value) - self.low) // self.step
        return (k + 0.5) / (self._n + 1)

    def contains(self, value: Any) -> bool:
        if isinstance(value, bool):
            return False
        if not isinstance(value, int):
            try:
                import numpy as np

                if not isinstance(value, np.integer):
                    return False
            except ImportError:  # pragma: no cover
                return False
        value = int(value)
        return self.low <= value <= self.high and (value - self.low) % self.step == 0

    def grid(self, points: int) -> list[int]:
        if self._n + 1 <= points:
            return [self.low + k * self.step for k in range(self._n + 1)]
        if points == 1:
            return [self.from_unit(0.5)]
        if self.log:
            lo, hi = math.log(self.low), math.log(self.high)
            values = [round(math.exp(lo + (hi - lo) * i / (points - 1))) for i in range(points)]
        else:
            values = [self.low + round(self._n * i / (points - 1)) * self.step for i in range(points)]
        return list(dict.fromkeys(values))

    def _describe(self) -> dict[str, Any]:
        return {"type": "int", "low": self.low, "high": self.high, "log": self.log, "step": self.step}

    def __repr__(self) -> str:
        extra = ", log=True" if self.log else ""
        extra += f", step={self.step}" if self.step != 1 else ""
        extra += f", when={self.when}" if self.when else ""
        return f"Int({self.low}, {self.high}{extra})"


class Choice(Domain):
    """A categorical parameter: one of ``values`` (any hashable objects).

    Values keep their identity and order; storage records the index, so a
    value round-trips exactly.
    """

    __slots__ = ("_index", "values")

    def __init__(self, values: Iterable[Hashable], *, when: Mapping[str, Any] | None = None) -> None:
        super().__init__(when)
        self.values: tuple[Any, ...] = values  # type: ignore[assignment]  # checked by _validate
        self._index: dict[Any, int] = {}

    def _validate(self) -> None:
        if isinstance(self.values, (str, bytes)) or not isinstance(self.values, Iterable):
            raise self._fail(f"Choice values must be a sequence of values, got {self.values!r}")
        self.values = tuple(self.values)
        if not self.values:
            raise self._fail("Choice needs at least one value")
        self._index = {}
        for i, v in enumerate(self.values):
            try:
                key = _choice_key(v)
                hash(key)
            except TypeError as exc:
                raise self._fail(f"Choice value {v!r} is not hashable") from exc
            if key in self._index:
                raise self._fail(f"Choice value {v!r} appears twice")
            self._index[key] = i

    def index(self, value: Any) -> int:
        """Position of ``value`` among :attr:`values` (ValueError if absent)."""
        try:
            return self._index[_choice_key(value)]
        except (KeyError, TypeError):
            raise ValueError(f"{value!r} is not one of {self.values!r}") from None

    def from_unit(self, u: float) -> Any:
        n = len(self.values)
        return self.values[min(int(u * n), n - 1)]

    def to_unit(self, value: Any) -> float:
        return (self.index(value) + 0.5) / len(self.values)

    def contains(self, value: Any) -> bool:
        try:
            return _choice_key(value) in self._index
        except TypeError:
            return False

    def grid(self, points: int) -> list[Any]:
        return list(self.values)

    def _describe(self) -> dict[str, Any]:
        return {"type": "choice", "values": [_describe_value(v) for v in self.values]}

    def __repr__(self) -> str:
        extra = f", when={self.when}" if self.when else ""
        return f"Choice({list(self.values)!r}{extra})"


def _describe_value(value: Any) -> Any:
    """A JSON value standing for ``value``: itself for JSON scalars, else its repr."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return {"repr": repr(value)}


def _choice_key(value: Any) -> tuple[type, Any]:
    # 1, 1.0 and True are equal in Python; keep them apart so a choice of
    # [0, False] is two values and each round-trips as itself.
    return (type(value), value)


class Space(Mapping[str, Domain]):
    """An ordered, validated set of named domains.

    Parents of a condition are ordered before their children (the given
    order is kept otherwise).  Construction fails with a message naming the
    parameter for an unknown parent, a cycle, or a parent value that the
    parent's domain cannot take.
    """

    __slots__ = ("_conditional", "_conds", "_domains", "_names")

    def __init__(self, domains: Mapping[str, Domain]) -> None:
        if isinstance(domains, Space):
            domains = domains._domains
        if not isinstance(domains, Mapping):
            raise SpaceError(f"a space is a mapping of names to domains, got {type(domains).__name__}")
        if not domains:
            raise SpaceError("a space needs at least one parameter")
        for name, dom in domains.items():
            if not isinstance(name, str) or not name:
                raise SpaceError(f"parameter names must be non-empty strings, got {name!r}")
            if not isinstance(dom, Domain):
                raise SpaceError(f"parameter {name!r}: expected Float, Int or Choice, got {type(dom).__name__} {dom!r}")
        ordered = _topological(domains)
        self._domains: dict[str, Domain] = {}
        for name in ordered:
            dom = _copy_domain(domains[name])
            dom._bind(name)
            self._domains[name] = dom
        self._names: tuple[str, ...] = tuple(self._domains)
        self._conditional = any(d.when for d in self._domains.values())
        self._conds: dict[str, tuple[tuple[str, frozenset[Any], bool], ...]] = {}
        for name, dom in self._domains.items():
            conds = []
            for parent, allowed in dom.when.items():
                pdom = self._domains[parent]
                for v in allowed:
                    if not pdom.contains(v):
                        raise SpaceError(
                            f"parameter {name!r}: condition value {v!r} is not a value of {parent!r} ({pdom!r})"
                        )
                if isinstance(pdom, Choice):
                    # A Choice parent matches by identity of value and type (0, 0.0 and False differ).
                    conds.append((parent, frozenset(_choice_key(v) for v in allowed), True))
                else:
                    # A numeric parent matches by number (3 matches np.int64(3) and 3.0).
                    conds.append((parent, frozenset(float(v) for v in allowed), False))
            self._conds[name] = tuple(conds)

    # Mapping protocol
    def __getitem__(self, name: str) -> Domain:
        return self._domains[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)

    def __repr__(self) -> str:
        inner = ", ".join(f"{k!r}: {v!r}" for k, v in self._domains.items())
        return f"Space({{{inner}}})"

    def describe(self) -> dict[str, dict[str, Any]]:
        """A JSON-serialisable description of every domain, in order."""
        return {name: dom.describe() for name, dom in self._domains.items()}

    def differences(self, description: Mapping[str, Any]) -> list[str]:
        """How this space differs from an earlier :meth:`describe` (empty when the same)."""
        mine = self.describe()
        out = [f"parameter {n!r} was removed" for n in description if n not in mine]
        out += [f"parameter {n!r} is new" for n in mine if n not in description]
        out += [
            f"parameter {n!r} changed from {description[n]} to {mine[n]}"
            for n in mine
            if n in description and description[n] != mine[n]
        ]
        return out

    @property
    def names(self) -> tuple[str, ...]:
        """Parameter names, parents before children."""
        return self._names

    @property
    def conditional(self) -> bool:
        """True when some parameter has a condition."""
        return self._conditional

    def is_active(self, name: str, params: Mapping[str, Any]) -> bool:
        """True when ``name`` exists given the (partial) configuration ``params``."""
        for parent, allowed, is_choice in self._conds[name]:
            if parent not in params:
                return False
            value = params[parent]
            try:
                key = _choice_key(value) if is_choice else _number_key(value)
            except (TypeError, ValueError):
                return False
            if key not in allowed:
                return False
        return True

    def from_unit(self, u: Sequence[float]) -> dict[str, Any]:
        """Decode one point of ``[0, 1]^len(self)``; inactive parameters are dropped."""
        params: dict[str, Any] = {}
        if not self._conditional:
            for dom, x in zip(self._domains.values(), u, strict=True):
                params[dom.name] = dom.from_unit(float(x))
            return params
        for dom, x in zip(self._domains.values(), u, strict=True):
            if self.is_active(dom.name, params):
                params[dom.name] = dom.from_unit(float(x))
        return params

    def to_unit(self, params: Mapping[str, Any], fill: float = math.nan) -> list[float]:
        """Encode a configuration; inactive parameters become ``fill``."""
        return [dom.to_unit(params[n]) if n in params else fill for n, dom in self._domains.items()]

    def sample(self, seed: int, number: int) -> dict[str, Any]:
        """A uniformly random configuration that depends only on ``(seed, number)``."""
        return self.from_unit(unit_uniforms(seed, number, len(self._names)))

    def validate(self, params: Mapping[str, Any], *, partial: bool = False) -> dict[str, Any]:
        """Check a configuration and return it in space order.

        Unknown names, values outside a domain, inactive parameters that are
        given, and (unless ``partial``) missing active parameters raise
        :class:`SpaceError`.
        """
        if not isinstance(params, Mapping):
            raise SpaceError(f"a configuration is a mapping, got {type(params).__name__}")
        unknown = [k for k in params if k not in self._domains]
        if unknown:
            raise SpaceError(f"unknown parameter(s) {', '.join(map(repr, unknown))}; the space has {list(self._names)}")
        out: dict[str, Any] = {}
        for name, dom in self._domains.items():
            active = self.is_active(name, out) if not partial or all(p in out for p in dom.when) else True
            if name in params:
                value = params[name]
                if not dom.contains(value):
                    raise SpaceError(f"parameter {name!r}: {value!r} is not in {dom!r}")
                if not active:
                    raise SpaceError(f"parameter {name!r} is given but inactive (condition {dom.when})")
                out[name] = _canonical(dom, value)
            elif active and not partial and self.is_active(name, out):
                raise SpaceError(f"parameter {name!r} is missing")
        return out

    def complete(self, partial: Mapping[str, Any], seed: int, number: int) -> dict[str, Any]:
        """Fill the active parameters missing from ``partial`` at random (from ``(seed, number)``).

        A missing parent of a given parameter is drawn among the values that
        keep it active; a combination no value can satisfy raises
        :class:`SpaceError`.
        """
        given = self.validate(partial, partial=True)
        # Parents that given parameters (and, in turn, those parents) need active, and the values that do it.
        needed: dict[str, list[Any] | None] = {}
        for name in reversed(self._names):
            if name not in given and name not in needed:
                continue
            for parent, allowed in self._domains[name].when.items():
                pdom = self._domains[parent]
                values = list(allowed)
                prior = needed.get(parent)
                if prior is not None:
                    values = [v for v in prior if any(_same(v, a, pdom) for a in values)]
                if not values:
                    raise SpaceError(f"parameter {name!r}: no value of {parent!r} keeps the given parameters active")
                needed[parent] = values
        u = unit_uniforms(seed, number, len(self._names))
        out: dict[str, Any] = {}
        for (name, dom), x in zip(self._domains.items(), u, strict=True):
            if not self.is_active(name, out):
                if name in given or name in needed:
                    raise SpaceError(f"parameter {name!r} is given but inactive (condition {dom.when})")
                continue
            if name in given:
                out[name] = given[name]
            elif needed.get(name):
                choices = needed[name]
                out[name] = _canonical(dom, choices[min(int(x * len(choices)), len(choices) - 1)])
            else:
                out[name] = dom.from_unit(x)
        return out

    def grid(self, points: int) -> Iterator[dict[str, Any]]:
        """Every grid configuration, in a fixed order.

        Each numeric domain contributes at most ``points`` values, a Choice all
        of its values; an inactive parameter multiplies nothing.
        """
        if points < 1:
            raise SpaceError(f"grid needs points >= 1, got {points}")
        values = {n: d.grid(points) for n, d in self._domains.items()}
        names = self._names

        def walk(i: int, acc: dict[str, Any]) -> Iterator[dict[str, Any]]:
            if i == len(names):
                yield dict(acc)
                return
            name = names[i]
            if not self.is_active(name, acc):
                yield from walk(i + 1, acc)
                return
            for v in values[name]:
                acc[name] = v
                yield from walk(i + 1, acc)
            del acc[name]

        return walk(0, {})


def _number_key(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(value)
    return float(value)


def _same(a: Any, b: Any, dom: Domain) -> bool:
    """True when ``a`` and ``b`` are the same value of ``dom``."""
    if isinstance(dom, Choice):
        return _choice_key(a) == _choice_key(b)
    return _number_key(a) == _number_key(b)


def _canonical(dom: Domain, value: Any) -> Any:
    if isinstance(dom, Float):
        return float(value)
    if isinstance(dom, Int):
        return int(value)
    assert isinstance(dom, Choice)
    return dom.values[dom.index(value)]


def _copy_domain(dom: Domain) -> Domain:
    clone = object.__new__(type(dom))
    for klass in type(dom).__mro__:
        for slot in getattr(klass, "__slots__", ()):
            if hasattr(dom, slot):
                setattr(clone, slot, getattr(dom, slot))
    return clone


def _topological(domains: Mapping[str, Domain]) -> list[str]:
    whens = {name: _normalise_condition(name, dom.when) for name, dom in domains.items()}
    for name in domains:
        for parent in whens[name]:
            if parent not in domains:
                raise SpaceError(
                    f"parameter {name!r}: condition names unknown parameter {parent!r}; the space has {list(domains)}"
                )
            if parent == name:
                raise SpaceError(f"parameter {name!r}: a condition cannot name the parameter itself")
    order: list[str] = []
    state: dict[str, int] = {}

    def visit(name: str, path: tuple[str, ...]) -> None:
        mark = state.get(name)
        if mark == 2:
            return
        if mark == 1:
            cycle = " -> ".join((*path[path.index(name) :], name))
            raise SpaceError(f"parameter {name!r}: conditions form a cycle ({cycle})")
        state[name] = 1
        for parent in whens[name]:
            visit(parent, (*path, name))
        state[name] = 2
        order.append(name)

    for name in domains:
        visit(name, ())
    return order


def as_space(space: Space | Mapping[str, Domain]) -> Space:
    """Return ``space`` as a :class:`Space` (a plain dict of domains is accepted)."""
    return space if isinstance(space, Space) else Space(space)
