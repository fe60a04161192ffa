"""Every exception hpt-async exposes derives from HptError and keeps its builtin base."""

from __future__ import annotations

import pytest

import hpt_async as hpt


def public_exceptions() -> list[type[BaseException]]:
    """Every exception class named in ``hpt_async.__all__``."""
    out = []
    for name in hpt.__all__:
        obj = getattr(hpt, name)
        if isinstance(obj, type) and issubclass(obj, BaseException):
            out.append(obj)
    return out


def test_hpt_error_is_public_and_an_exception() -> None:
    assert "HptError" in hpt.__all__
    assert issubclass(hpt.HptError, Exception)
    assert hpt.HptError is hpt.exceptions.HptError


@pytest.mark.parametrize("kind", public_exceptions(), ids=lambda kind: kind.__name__)
def test_every_public_exception_derives_from_hpt_error(kind: type[BaseException]) -> None:
    assert issubclass(kind, hpt.HptError)


@pytest.mark.parametrize(
    ("kind", "builtin"),
    [
        (hpt.SpaceError, ValueError),
        (hpt.StudyError, RuntimeError),
        (hpt.PluginError, RuntimeError),
        (hpt.PluginNotFound, LookupError),
        (hpt.TrialPaused, hpt.TrialPruned),
    ],
)
def test_the_builtin_base_is_kept(kind: type[BaseException], builtin: type[BaseException]) -> None:
    assert issubclass(kind, builtin)


def test_a_bad_space_is_caught_as_an_hpt_error() -> None:
    with pytest.raises(hpt.HptError, match="'x'"):
        hpt.Space({"x": hpt.Float(0.0, 1.0, step=2.0)})


def test_plugin_not_found_still_prints_its_message() -> None:
    assert str(hpt.PluginNotFound("no strategy 'nope'")) == "no strategy 'nope'"
