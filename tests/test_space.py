"""Search spaces: domains, conditions, validation, sampling, grids and the unit-cube encoding."""

from __future__ import annotations

import enum
import math
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import hpt_async as hpt
from hpt_async.space import Choice, Domain, Float, Int, Space, SpaceError, as_space, unit_uniforms

PROPERTY = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


class Color(enum.Enum):
    """A plain enum used as Choice values."""

    RED = "red"
    BLUE = "blue"


class Level(enum.IntEnum):
    """An IntEnum whose members compare equal to ints."""

    ONE = 1
    TWO = 2


def bound(domain: Domain, name: str = "x") -> Domain:
    """The domain as a one-parameter space binds it (named, checked)."""
    return Space({name: domain})[name]


def network_space() -> Space:
    """A space with a conditional and a nested conditional parameter."""
    return Space(
        {
            "lr": Float(1e-5, 1e-1, log=True),
            "layers": Int(1, 4),
            "units_3": Int(16, 256, when={"layers": [3, 4]}),
            "optimizer": Choice(["adam", "sgd"]),
            "momentum": Float(0.0, 0.99, when={"optimizer": "sgd"}),
            "nesterov": Choice([True, False], when={"momentum_on": [True]}),
            "momentum_on": Choice([True, False], when={"optimizer": ["sgd"]}),
        }
    )


def key_of(params: dict[str, Any]) -> frozenset[tuple[str, type, Any]]:
    """A hashable, type-aware key of a configuration."""
    return frozenset((k, type(v), v) for k, v in params.items())


# -- Float -----------------------------------------------------------------------------


def test_float_linear_maps_the_unit_interval_onto_low_high() -> None:
    dom = bound(Float(-2.0, 6.0))
    assert dom.from_unit(0.0) == -2.0
    assert dom.from_unit(1.0) == 6.0
    assert dom.from_unit(0.25) == pytest.approx(0.0)
    assert dom.to_unit(2.0) == pytest.approx(0.5)
    assert dom.contains(-2.0) and dom.contains(6.0) and dom.contains(3)
    assert not dom.contains(6.0001) and not dom.contains(-2.1)
    assert not dom.contains("1.0") and not dom.contains(None) and not dom.contains(True)


def test_float_log_is_uniform_in_log_space() -> None:
    dom = bound(Float(1e-4, 1e0, log=True))
    assert dom.from_unit(0.0) == pytest.approx(1e-4)
    assert dom.from_unit(0.5) == pytest.approx(1e-2)
    assert dom.from_unit(0.75) == pytest.approx(1e-1)
    assert dom.to_unit(1e-3) == pytest.approx(0.25)
    # The median of uniform u is the geometric mean, far below the arithmetic one.
    assert dom.from_unit(0.5) < 0.1


def test_float_step_keeps_values_on_the_lattice() -> None:
    dom = bound(Float(0.0, 1.0, step=0.25))
    values = {dom.from_unit(i / 100) for i in range(101)}
    assert values == {0.0, 0.25, 0.5, 0.75, 1.0}
    assert dom.contains(0.5) and not dom.contains(0.3)
    for v in values:
        assert dom.from_unit(dom.to_unit(v)) == v


def test_float_step_lowers_high_to_the_last_lattice_value() -> None:
    dom = bound(Float(0.0, 1.0, step=0.3))
    assert dom.from_unit(1.0) == pytest.approx(0.9)
    assert not dom.contains(1.0)
    assert sorted({round(dom.from_unit(i / 50), 9) for i in range(51)}) == [0.0, 0.3, 0.6, 0.9]


def test_float_accepts_numpy_numbers() -> None:
    dom = bound(Float(0.0, 1.0))
    assert dom.contains(np.float64(0.5)) and dom.contains(np.float32(0.25))
    space = Space({"x": Float(0.0, 1.0)})
    out = space.validate({"x": np.float32(0.5)})
    assert out == {"x": 0.5} and type(out["x"]) is float


# -- Int ---------------------------------------------------------------------------------


def test_int_linear_gives_every_value_an_equal_share() -> None:
    dom = bound(Int(1, 4))
    counts = {v: 0 for v in range(1, 5)}
    for i in range(400):
        counts[dom.from_unit((i + 0.5) / 400)] += 1
    assert counts == {1: 100, 2: 100, 3: 100, 4: 100}
    assert dom.from_unit(1.0) == 4
    assert not dom.contains(2.5) and not dom.contains(True) and not dom.contains(5)
    assert dom.contains(np.int64(3))


def test_int_step_and_lowered_high() -> None:
    dom = bound(Int(0, 10, step=3))
    values = {dom.from_unit(i / 100) for i in range(101)}
    assert values == {0, 3, 6, 9}
    assert not dom.contains(10) and not dom.contains(4)
    for v in values:
        assert dom.from_unit(dom.to_unit(v)) == v


def test_int_log_favours_small_values_and_round_trips() -> None:
    dom = bound(Int(1, 1000, log=True))
    below_32 = sum(dom.from_unit((i + 0.5) / 1000) < 32 for i in range(1000))
    assert 400 < below_32 < 600  # about half the log range, ~3% of the linear one
    for v in (1, 2, 10, 31, 32, 500, 999, 1000):
        assert dom.from_unit(dom.to_unit(v)) == v
        assert type(dom.from_unit(dom.to_unit(v))) is int


def test_int_validate_returns_python_ints() -> None:
    space = Space({"n": Int(0, 10)})
    out = space.validate({"n": np.int64(7)})
    assert out == {"n": 7} and type(out["n"]) is int


# -- Choice ----------------------------------------------------------------------------------


def test_choice_keeps_zero_false_zero_float_and_none_apart() -> None:
    values = [0, False, 0.0, None, 1, True, 1.0]
    space = Space({"c": Choice(values)})
    dom = space["c"]
    units = [dom.to_unit(v) for v in values]
    assert len(set(units)) == len(values)
    for v in values:
        back = dom.from_unit(dom.to_unit(v))
        assert back is v or (type(back) is type(v) and back == v)
        checked = space.validate({"c": v})["c"]
        assert type(checked) is type(v) and checked == v
    assert not Space({"c": Choice([0])})["c"].contains(False)
    assert not Space({"c": Choice([0])})["c"].contains(0.0)
    assert not Space({"c": Choice([False])})["c"].contains(0)


def test_choice_values_of_any_hashable_type_round_trip_exactly() -> None:
    shape_a, shape_b = (32, 32), (64, 16)
    frozen = frozenset({"a", "b"})
    values = [shape_a, shape_b, Color.RED, Color.BLUE, Level.ONE, 1, None, frozen, "text"]
    space = Space({"c": Choice(values)})
    dom = space["c"]
    for v in values:
        assert dom.from_unit(dom.to_unit(v)) is v
        assert space.validate({"c": v})["c"] is v
    # An equal tuple built anew maps to the stored value.
    assert space.validate({"c": (32, 32)})["c"] is shape_a
    # An IntEnum member and the int it equals stay two values.
    assert dom.to_unit(Level.ONE) != dom.to_unit(1)
    assert type(space.validate({"c": 1})["c"]) is int
    assert space.validate({"c": Level.ONE})["c"] is Level.ONE
    assert not dom.contains(Level.TWO) and not dom.contains([32, 32])


def test_choice_from_unit_splits_the_interval_evenly() -> None:
    dom = bound(Choice(["a", "b", "c", "d"]))
    assert [dom.from_unit(u) for u in (0.0, 0.24, 0.25, 0.5, 0.99, 1.0)] == ["a", "a", "b", "c", "d", "d"]


# -- bad definitions --------------------------------------------------------------------------


def test_a_step_as_wide_as_the_range_keeps_both_bounds() -> None:
    dom = bound(Float(0.1, 0.3, step=0.2))  # 0.3 - 0.1 is a hair below 0.2 in floats
    assert dom.grid(5) == [0.1, 0.3]
    assert all(dom.contains(v) for v in dom.grid(5))
    assert {dom.from_unit(u) for u in (0.0, 0.49, 0.51, 1.0)} == {0.1, 0.3}
    assert bound(Int(2, 7, step=5)).grid(5) == [2, 7]


def test_a_constant_with_a_step_is_still_a_constant() -> None:
    assert bound(Float(1.5, 1.5, step=2.0)).grid(3) == [1.5]
    assert bound(Int(3, 3, step=5)).grid(3) == [3]
    assert bound(Int(3, 3)).from_unit(0.7) == 3


def test_extreme_log_ranges_sample_finite_values_inside_the_bounds() -> None:
    top = 1.7976931348623157e308
    # For these lows, low + 1.0 * (log(high) - low) rounds above log(high), whose exp overflows.
    dom = bound(Float(1.1000576452183344e-147, top, log=True))
    for u in (0.0, 0.5, 1.0):
        value = dom.from_unit(u)
        assert math.isfinite(value) and dom.contains(value)
    ints = bound(Int(116, int(top), log=True))
    assert ints.contains(ints.from_unit(1.0)) and ints.from_unit(1.0) > 10**307
    assert ints.from_unit(0.0) == 116


def test_a_huge_int_range_that_fits_a_float_samples_both_ends() -> None:
    dom = bound(Int(-(2**1000), 2**1000))
    assert dom.from_unit(0.0) == -(2**1000) and dom.from_unit(1.0) == 2**1000
    assert dom.to_unit(2**1000) == 1.0


@pytest.mark.parametrize(
    ("domains", "fragment"),
    [
        ({"lr": Float(1.0, 0.5)}, "greater than high"),
        ({"lr": Float(0.0, 1.0, log=True)}, "low > 0"),
        ({"lr": Float(-1.0, 1.0, log=True)}, "low > 0"),
        ({"lr": Float(0.0, 1.0, step=0.0)}, "step"),
        ({"lr": Float(0.1, 1.0, step=0.1, log=True)}, "log and step"),
        ({"lr": Float("0", 1.0)}, "number"),
        ({"lr": Float(0.0, None)}, "number"),  # type: ignore[arg-type]
        ({"lr": Float(0.0, math.inf)}, "finite"),
        ({"lr": Float(True, 2.0)}, "number"),
        ({"n": Int(5, 1)}, "greater than high"),
        ({"n": Int(0, 100, log=True)}, "low >= 1"),
        ({"n": Int(1, 100, log=True, step=2)}, "log and step"),
        ({"n": Int(1, 10, step=0)}, "step"),
        ({"n": Int(1.5, 10)}, "int"),  # type: ignore[arg-type]
        ({"n": Int(1, "10")}, "int"),  # type: ignore[arg-type]
        ({"c": Choice([])}, "at least one"),
        ({"c": Choice(["a", "b", "a"])}, "twice"),
        ({"c": Choice([(1, 2), (1, 2)])}, "twice"),
        ({"c": Choice("abc")}, "sequence"),
        ({"c": Choice([[1, 2]])}, "hashable"),
        ({"lr": Float(-math.inf, 0.0)}, "finite"),
        ({"lr": Float(0.0, math.nan)}, "finite"),
        ({"lr": Float(0.0, 1.0, step=math.inf)}, "finite"),
        ({"lr": Float(0.0, 1.0, step=-0.5)}, "step must be > 0"),
        ({"lr": Float(-1.0, -0.5, log=True)}, "low > 0"),
        ({"lr": Float(0.0, 1.0, step=2.0)}, "larger than the range"),
        ({"lr": Float(0.0, 1.0, step=2)}, "larger than the range"),
        ({"lr": Float(-1e308, 1e308)}, "wider than the largest float"),
        ({"lr": Float(-1.7976931348623157e308, 1e300)}, "wider than the largest float"),
        ({"lr": Float(0.0, 1.0, step=1e-10)}, "too fine"),
        ({"lr": Float(1e16, 1e16 + 100, step=1.5)}, "too fine"),
        ({"lr": Float(0.0, 1e300, step=1e-300)}, "too fine"),
        ({"n": Int(0, 5, step=10)}, "larger than the range"),
        ({"n": Int(-5, 5, log=True)}, "low >= 1"),
        ({"n": Int(0, 10**400)}, "too large for a float"),
        ({"n": Int(-(10**400), 0, step=7)}, "too large for a float"),
        ({"n": Int(10**400, 10**400 + 5, log=True)}, "too large for a float"),
    ],
)
def test_bad_domain_fails_naming_the_parameter(domains: dict[str, Domain], fragment: str) -> None:
    (name,) = domains
    with pytest.raises(SpaceError) as info:
        Space({"other": Int(0, 1), **domains})
    message = str(info.value)
    assert repr(name) in message
    assert fragment in message


def test_condition_on_unknown_parent_names_both() -> None:
    with pytest.raises(SpaceError) as info:
        Space({"layers": Int(1, 4), "units": Int(16, 256, when={"depth": [3]})})
    assert "'units'" in str(info.value) and "'depth'" in str(info.value)


def test_condition_cycle_is_rejected() -> None:
    with pytest.raises(SpaceError) as info:
        Space(
            {
                "a": Int(1, 2, when={"b": [1]}),
                "b": Int(1, 2, when={"c": [1]}),
                "c": Int(1, 2, when={"a": [2]}),
            }
        )
    message = str(info.value)
    assert "cycle" in message
    assert "'a'" in message or "'b'" in message or "'c'" in message


def test_condition_on_itself_is_rejected() -> None:
    with pytest.raises(SpaceError, match="'a'"):
        Space({"a": Int(1, 2, when={"a": [1]})})


@pytest.mark.parametrize("allowed", [[7], [3, 7], [2.5], ["three"], [True]])
def test_condition_value_the_parent_cannot_take(allowed: list[Any]) -> None:
    with pytest.raises(SpaceError) as info:
        Space({"layers": Int(1, 4), "units": Int(16, 256, when={"layers": allowed})})
    assert "'units'" in str(info.value) and "'layers'" in str(info.value)


def test_condition_allowing_no_value_is_rejected() -> None:
    with pytest.raises(SpaceError, match="'units'"):
        Space({"layers": Int(1, 4), "units": Int(16, 256, when={"layers": []})})


def test_space_needs_named_domains() -> None:
    with pytest.raises(SpaceError):
        Space({})
    with pytest.raises(SpaceError, match="'lr'"):
        Space({"lr": (0.0, 1.0)})  # type: ignore[dict-item]
    with pytest.raises(SpaceError):
        Space([("lr", Float(0, 1))])  # type: ignore[arg-type]


# -- conditions ----------------------------------------------------------------------------------


def test_inactive_parameter_is_absent_from_samples() -> None:
    space = network_space()
    seen_with, seen_without = 0, 0
    for n in range(200):
        params = space.sample(7, n)
        if params["layers"] in (3, 4):
            assert 16 <= params["units_3"] <= 256
            seen_with += 1
        else:
            assert "units_3" not in params
            seen_without += 1
        if params["optimizer"] == "sgd":
            assert "momentum" in params and "momentum_on" in params
            assert ("nesterov" in params) == params["momentum_on"]
        else:
            assert {"momentum", "momentum_on", "nesterov"}.isdisjoint(params)
    assert seen_with > 0 and seen_without > 0


def test_parents_are_ordered_before_children_whatever_the_declared_order() -> None:
    space = Space(
        {
            "grandchild": Float(0.0, 1.0, when={"child": [2]}),
            "child": Int(1, 2, when={"root": ["on"]}),
            "free": Float(0.0, 1.0),
            "root": Choice(["on", "off"]),
        }
    )
    names = space.names
    assert names.index("root") < names.index("child") < names.index("grandchild")
    assert set(names) == {"grandchild", "child", "free", "root"}
    assert list(space) == list(names)
    assert space.conditional
    full = space.validate({"root": "on", "child": 2, "grandchild": 0.5, "free": 0.1})
    assert list(full) == [n for n in names if n in full]
    assert space.validate({"root": "off", "free": 0.1}) == {"free": 0.1, "root": "off"}
    # Every sampled configuration obeys the nested condition.
    for n in range(100):
        p = space.sample(3, n)
        assert ("child" in p) == (p["root"] == "on")
        assert ("grandchild" in p) == (p.get("child") == 2)


def test_unconditional_space_is_not_conditional() -> None:
    space = Space({"a": Int(0, 3), "b": Choice(["x", "y"])})
    assert not space.conditional
    assert space.names == ("a", "b")


def test_condition_with_a_single_bare_value_and_tuple_values() -> None:
    space = Space(
        {
            "kernel": Choice([(3, 3), (5, 5)]),
            "dilation": Int(1, 3, when={"kernel": [(3, 3)]}),
            "opt": Choice(["adam", "sgd"]),
            "momentum": Float(0.0, 1.0, when={"opt": "sgd"}),
        }
    )
    assert space.is_active("dilation", {"kernel": (3, 3)})
    assert not space.is_active("dilation", {"kernel": (5, 5)})
    assert space.is_active("momentum", {"opt": "sgd"})
    assert not space.is_active("momentum", {"opt": "adam"})
    assert not space.is_active("momentum", {})


def test_condition_matches_an_int_parent_given_as_numpy() -> None:
    space = Space({"layers": Int(1, 4), "units": Int(16, 256, when={"layers": [3, 4]})})
    assert space.is_active("units", {"layers": np.int64(3)})
    assert not space.is_active("units", {"layers": np.int64(2)})


def test_condition_on_a_choice_keeps_zero_false_and_zero_float_apart() -> None:
    """A condition on Choice value 0 must not fire for 0.0 or False (they are other values)."""
    space = Space({"p": Choice([0, 0.0, False]), "c": Int(1, 2, when={"p": [0]})})
    assert space.is_active("c", {"p": 0})
    assert not space.is_active("c", {"p": False})
    assert not space.is_active("c", {"p": 0.0})
    with pytest.raises(SpaceError, match="'c'"):
        space.validate({"p": 0.0, "c": 1})
    assert space.validate({"p": 0.0}) == {"p": 0.0}
    assert len(list(space.grid(5))) == 2 + 1 + 1


def test_a_space_can_be_rebuilt_from_a_conditional_space() -> None:
    """Space(space) and a dict of a space's own domains give the same space again."""
    first = Space({"layers": Int(1, 4), "units": Int(16, 256, when={"layers": [3, 4]})})
    again = Space(first)
    assert again.names == first.names
    assert again.is_active("units", {"layers": 4}) and not again.is_active("units", {"layers": 2})
    assert [again.sample(0, n) for n in range(20)] == [first.sample(0, n) for n in range(20)]
    reused = Space({"layers": first["layers"], "units": first["units"], "extra": Float(0, 1)})
    assert reused.is_active("units", {"layers": 3})


def test_domains_are_not_shared_between_spaces() -> None:
    lr = Float(0.0, 1.0)
    a = Space({"lr": lr})
    b = Space({"rate": lr})
    assert a["lr"].name == "lr" and b["rate"].name == "rate"
    assert a["lr"] is not b["rate"]


# -- validate / complete ----------------------------------------------------------------------------------


def test_validate_accepts_a_full_configuration_in_space_order() -> None:
    space = network_space()
    given_ = {"optimizer": "adam", "layers": 2, "lr": 0.01}
    out = space.validate(given_)
    assert out == {"lr": 0.01, "layers": 2, "optimizer": "adam"}
    assert list(out) == [n for n in space.names if n in out]
    assert type(space.validate({"optimizer": "adam", "layers": 2, "lr": 1e-3})["lr"]) is float
    # An int is a valid Float value and comes back as a float.
    out = Space({"x": Float(0.0, 5.0)}).validate({"x": 2})
    assert out == {"x": 2.0} and type(out["x"]) is float


@pytest.mark.parametrize(
    ("params", "named"),
    [
        ({"lr": 0.01, "layers": 2, "optimizer": "adam", "dropout": 0.1}, "dropout"),
        ({"lr": 0.5, "layers": 2, "optimizer": "adam"}, "lr"),
        ({"lr": 0.01, "layers": 5, "optimizer": "adam"}, "layers"),
        ({"lr": 0.01, "layers": 2.5, "optimizer": "adam"}, "layers"),
        ({"lr": 0.01, "layers": True, "optimizer": "adam"}, "layers"),
        ({"lr": 0.01, "layers": 2, "optimizer": "rmsprop"}, "optimizer"),
        ({"lr": "0.01", "layers": 2, "optimizer": "adam"}, "lr"),
        ({"lr": 0.01, "layers": 2, "optimizer": "adam", "units_3": 32}, "units_3"),
        ({"lr": 0.01, "layers": 3, "optimizer": "adam"}, "units_3"),
        ({"lr": 0.01, "layers": 2}, "optimizer"),
        (
            {"lr": 0.01, "layers": 2, "optimizer": "sgd", "momentum": 0.9, "momentum_on": False, "nesterov": True},
            "nesterov",
        ),
        ({"lr": 0.01, "layers": 2, "optimizer": "sgd", "momentum": 0.9, "momentum_on": True}, "nesterov"),
    ],
)
def test_validate_rejects_and_names_the_parameter(params: dict[str, Any], named: str) -> None:
    with pytest.raises(SpaceError) as info:
        network_space().validate(params)
    assert repr(named) in str(info.value)


def test_validate_rejects_a_non_mapping() -> None:
    with pytest.raises(SpaceError):
        network_space().validate([("lr", 0.01)])  # type: ignore[arg-type]


def test_validate_partial() -> None:
    space = network_space()
    assert space.validate({"lr": 0.01}, partial=True) == {"lr": 0.01}
    assert space.validate({}, partial=True) == {}
    # A child whose parent is not given may be given: the parent can still activate it.
    assert space.validate({"units_3": 64}, partial=True) == {"units_3": 64}
    with pytest.raises(SpaceError, match="'units_3'"):
        space.validate({"layers": 1, "units_3": 64}, partial=True)
    with pytest.raises(SpaceError, match="'nope'"):
        space.validate({"nope": 1}, partial=True)
    with pytest.raises(SpaceError, match="'lr'"):
        space.validate({"lr": 2.0}, partial=True)
    # Partial does not loosen a full check.
    with pytest.raises(SpaceError, match="'optimizer'"):
        space.validate({"lr": 0.01, "layers": 2})


def test_complete_fills_the_rest_reproducibly() -> None:
    space = network_space()
    first = space.complete({"layers": 4, "optimizer": "sgd"}, 11, 5)
    assert first == space.complete({"layers": 4, "optimizer": "sgd"}, 11, 5)
    assert first["layers"] == 4 and first["optimizer"] == "sgd"
    assert "units_3" in first and "momentum" in first and "momentum_on" in first
    assert space.validate(first) == first
    others = [space.complete({"layers": 4, "optimizer": "sgd"}, 11, n) for n in range(6, 16)]
    assert any(o["lr"] != first["lr"] for o in others)
    assert all(o["layers"] == 4 and o["optimizer"] == "sgd" for o in others)
    # Given values are kept; a given child of an inactive parent is an error.
    assert space.complete({"lr": 0.001}, 0, 0)["lr"] == 0.001
    with pytest.raises(SpaceError, match="'units_3'"):
        space.complete({"layers": 1, "units_3": 32}, 0, 0)


def test_complete_activates_a_given_child_whose_parent_is_missing() -> None:
    """validate(partial=True) accepts a child without its parent, so complete() must honour it.

    Whatever (seed, number), the parents are drawn among the values that keep
    the given child active; the result is never an error.
    """
    space = Space(
        {
            "layers": Int(1, 4),
            "units": Int(16, 256, when={"layers": [3, 4]}),
            "optimizer": Choice(["adam", "sgd"]),
            "momentum_on": Choice([True, False], when={"optimizer": "sgd"}),
            "nesterov": Choice([True, False], when={"momentum_on": [True]}),
        }
    )
    for n in range(20):
        out = space.complete({"units": 64, "nesterov": False}, 0, n)
        assert out["units"] == 64 and out["layers"] in (3, 4)
        assert out["nesterov"] is False and out["momentum_on"] is True and out["optimizer"] == "sgd"
        assert space.validate(out) == out
        assert out == space.complete({"units": 64, "nesterov": False}, 0, n)


def test_complete_of_an_empty_partial_is_the_sample() -> None:
    space = network_space()
    for n in range(10):
        assert space.complete({}, 3, n) == space.sample(3, n)


# -- grid ----------------------------------------------------------------------------------


def test_domain_grids() -> None:
    assert bound(Float(0.0, 1.0)).grid(3) == [0.0, 0.5, 1.0]
    assert bound(Float(0.0, 1.0)).grid(1) == [0.5]
    assert bound(Float(2.0, 2.0)).grid(4) == [2.0]
    log_grid = bound(Float(1e-4, 1e-2, log=True)).grid(3)
    assert log_grid == pytest.approx([1e-4, 1e-3, 1e-2])
    assert bound(Float(0.0, 1.0, step=0.5)).grid(10) == [0.0, 0.5, 1.0]
    assert bound(Int(1, 10)).grid(20) == list(range(1, 11))
    assert bound(Int(0, 100)).grid(5) == [0, 25, 50, 75, 100]
    assert bound(Int(0, 9, step=3)).grid(10) == [0, 3, 6, 9]
    assert bound(Int(1, 1000, log=True)).grid(4) == [1, 10, 100, 1000]
    assert bound(Choice(["a", None, (1, 2)])).grid(1) == ["a", None, (1, 2)]


def test_space_grid_size_and_content_with_conditions() -> None:
    space = Space(
        {
            "layers": Int(1, 4),
            "units": Choice([32, 64], when={"layers": [3, 4]}),
            "optimizer": Choice(["adam", "sgd"]),
            "momentum": Float(0.0, 1.0, when={"optimizer": ["sgd"]}),
        }
    )
    points = list(space.grid(4))
    # layers: 2 values without units + 2 values x 2 units = 6; optimizer: adam + sgd x 4 momenta = 5.
    assert len(points) == 6 * 5
    assert len({key_of(p) for p in points}) == len(points)
    for p in points:
        assert space.validate(p) == p
    expected_layers = [{"layers": 1}, {"layers": 2}] + [{"layers": n, "units": u} for n in (3, 4) for u in (32, 64)]
    expected_opt = [{"optimizer": "adam"}] + [{"optimizer": "sgd", "momentum": m} for m in (0.0, 1 / 3, 2 / 3, 1.0)]
    expected = {key_of({**a, **b}) for a in expected_layers for b in expected_opt}
    assert {key_of(p) for p in points} == expected
    # The order is fixed.
    assert points == list(space.grid(4))
    # Fewer points per numeric parameter: layers takes 3 spread values, momentum 2.
    small = list(space.grid(2))
    assert {p["layers"] for p in small} == {1, 4}
    assert {p["momentum"] for p in small if "momentum" in p} == {0.0, 1.0}
    assert len(small) == (1 + 2) * (1 + 2)


def test_space_grid_rejects_zero_points() -> None:
    with pytest.raises(SpaceError):
        list(Space({"x": Float(0, 1)}).grid(0))


# -- as_space -------------------------------------------------------------------------------------


def test_as_space_accepts_a_plain_dict() -> None:
    space = as_space({"lr": Float(0.0, 1.0), "opt": Choice(["a", "b"])})
    assert isinstance(space, Space)
    assert space.names == ("lr", "opt")
    existing = network_space()
    assert as_space(existing) is existing
    with pytest.raises(SpaceError):
        as_space({"lr": "not a domain"})  # type: ignore[dict-item]


def test_public_names_are_the_space_classes() -> None:
    assert hpt.Space is Space and hpt.Float is Float and hpt.Int is Int and hpt.Choice is Choice
    assert hpt.SpaceError is SpaceError
    assert issubclass(SpaceError, ValueError)


# -- unit_uniforms ------------------------------------------------------------------------------


def test_unit_uniforms_is_counter_based() -> None:
    a = unit_uniforms(0, 5, 4)
    unit_uniforms(0, 6, 4)
    unit_uniforms(1, 5, 4)
    assert unit_uniforms(0, 5, 4) == a
    assert unit_uniforms(0, 5, 2) == a[:2]
    assert unit_uniforms(0, 6, 4) != a
    assert unit_uniforms(1, 5, 4) != a
    assert len(set(a)) == 4


def test_unit_uniforms_look_uniform() -> None:
    values = [u for n in range(2000) for u in unit_uniforms(42, n, 2)]
    assert all(0.0 <= u < 1.0 for u in values)
    mean = sum(values) / len(values)
    assert abs(mean - 0.5) < 0.02
    deciles = [0] * 10
    for u in values:
        deciles[int(u * 10)] += 1
    assert all(340 < d < 460 for d in deciles)


# -- property tests -------------------------------------------------------------------------------

hashables = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 3),
    st.floats(-3, 3, allow_nan=False).map(lambda f: f + 0.0),
    st.text(max_size=3),
    st.tuples(st.integers(0, 3), st.text(max_size=2)),
    st.sampled_from(list(Color) + list(Level)),
)


def choice_key(v: Any) -> tuple[type, Any]:
    """Equality that tells 0, 0.0 and False apart, as Choice does."""
    return (type(v), v)


@st.composite
def domains(draw: st.DrawFn, when: dict[str, Any] | None = None) -> Domain:
    """Any Float, Int or Choice domain with moderate bounds."""
    kind = draw(st.sampled_from(["float", "float_log", "float_step", "int", "int_log", "int_step", "choice"]))
    if kind == "float":
        low = draw(st.floats(-1e6, 1e6))
        high = low + draw(st.floats(0.0, 1e6))
        return Float(low, high, when=when)
    if kind == "float_log":
        low = draw(st.floats(1e-8, 1e4))
        high = low * draw(st.floats(1.0, 1e6))
        return Float(low, high, log=True, when=when)
    if kind == "float_step":
        low = draw(st.floats(-1e4, 1e4))
        step = draw(st.floats(1e-3, 1e2))
        count = draw(st.integers(0, 1000))
        # A step must leave two values unless the domain is a constant.
        high = low + step * count + (draw(st.floats(0.0, 0.99)) * step if count else 0.0)
        return Float(low, high, step=step, when=when)
    if kind == "int":
        low = draw(st.integers(-(10**9), 10**9))
        return Int(low, low + draw(st.integers(0, 10**9)), when=when)
    if kind == "int_log":
        low = draw(st.integers(1, 10**6))
        return Int(low, low + draw(st.integers(0, 10**9)), log=True, when=when)
    if kind == "int_step":
        low = draw(st.integers(-(10**6), 10**6))
        step = draw(st.integers(1, 1000))
        width = draw(st.integers(0, 10**6))
        return Int(low, low + (width if width >= step else 0), step=step, when=when)
    values = draw(st.lists(hashables, min_size=1, max_size=8, unique_by=choice_key))
    return Choice(values, when=when)


def same_value(dom: Domain, a: Any, b: Any) -> bool:
    """Exact equality for discrete domains, float closeness for continuous Floats."""
    if isinstance(dom, Float) and dom.step is None:
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9 * max(1.0, abs(dom.high - dom.low)))
    return type(a) is type(b) and a == b


@PROPERTY
@given(domains(), st.floats(0.0, 1.0))
def test_property_from_unit_stays_in_the_domain_and_round_trips(domain: Domain, u: float) -> None:
    dom = bound(domain)
    value = dom.from_unit(u)
    assert dom.contains(value), (dom, u, value)
    back = dom.to_unit(value)
    assert 0.0 <= back <= 1.0
    again = dom.from_unit(back)
    assert dom.contains(again)
    assert same_value(dom, again, value), (dom, u, value, again)
    if isinstance(dom, Choice):
        assert again is value


@PROPERTY
@given(domains())
def test_property_grid_values_are_in_the_domain(domain: Domain) -> None:
    dom = bound(domain)
    for points in (1, 2, 5):
        values = dom.grid(points)
        assert values
        assert all(dom.contains(v) for v in values)
        if not isinstance(dom, Choice):
            assert len(values) <= points
        assert len({choice_key(v) for v in values}) == len(values)


@st.composite
def spaces(draw: st.DrawFn) -> Space:
    """A space of 1 to 5 parameters, some conditional on an earlier discrete one, in any declared order."""
    made: dict[str, Domain] = {}
    for i in range(draw(st.integers(1, 5))):
        when = None
        parents = [n for n, d in made.items() if isinstance(d, (Int, Choice))]
        if parents and draw(st.booleans()):
            parent = draw(st.sampled_from(parents))
            candidates = Space(made)[parent].grid(4)
            allowed = draw(st.lists(st.sampled_from(candidates), min_size=1, max_size=3, unique_by=choice_key))
            when = {parent: allowed}
        made[f"p{i}"] = draw(domains(when=when))
    items = list(made.items())
    if draw(st.booleans()):
        items.reverse()  # children declared before their parents
    return Space(dict(items))


@PROPERTY
@given(spaces(), st.integers(0, 2**64 - 1), st.integers(0, 10**6))
def test_property_sample_is_deterministic_and_valid(space: Space, seed: int, number: int) -> None:
    params = space.sample(seed, number)
    assert params == space.sample(seed, number)
    assert space.validate(params) == params
    for name in space:
        assert (name in params) == space.is_active(name, params)
    decoded = space.from_unit(space.to_unit(params))
    assert list(decoded) == list(params)
    for name, value in params.items():
        assert same_value(space[name], decoded[name], value)


@PROPERTY
@given(spaces(), st.integers(0, 2**32), st.integers(0, 1000))
def test_property_complete_keeps_given_values(space: Space, seed: int, number: int) -> None:
    full = space.sample(seed + 1, number)
    first = next(iter(full))
    completed = space.complete({first: full[first]}, seed, number)
    assert completed[first] == full[first]
    assert space.validate(completed) == completed
    assert completed == space.complete({first: full[first]}, seed, number)


@PROPERTY
@given(st.integers(0, 2**64 - 1), st.integers(0, 2**40), st.integers(1, 8))
def test_property_unit_uniforms_in_range_and_depend_only_on_seed_and_number(seed: int, number: int, count: int) -> None:
    values = unit_uniforms(seed, number, count)
    assert len(values) == count
    assert all(0.0 <= u < 1.0 for u in values)
    unit_uniforms(seed ^ 1, number + 1, 3)  # other draws in between change nothing
    assert unit_uniforms(seed, number, count) == values
    assert unit_uniforms(seed, number, count + 2)[:count] == values
    assert unit_uniforms(seed, number + 1, count) != values
