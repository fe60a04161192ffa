"""The plugin registry: builtin names, clashes, unknown names, entry points and autoload."""

from __future__ import annotations

import types
from collections.abc import Callable
from typing import Any

import anyio
import pytest

import hpt_async as hpt
import hpt_async.plugins as plugins_module
from hpt_async.plugins import AUTOLOAD_ENV, ENTRY_POINT_GROUP, KINDS, Registry

Register = Callable[[str, str, Callable[..., Any]], None]


class PickFirst(hpt.Strategy):
    """A strategy that always suggests the middle of the unit cube."""

    name = "pick-first"

    async def ask(self, study: hpt.StudyView, number: int) -> dict[str, Any]:
        return study.space.from_unit([0.5] * len(study.space))


def plugin_module(name: str, body: Callable[[Register], None]) -> types.ModuleType:
    """A module object whose ``hpt_register`` hook runs ``body``."""
    module = types.ModuleType(name)

    @hpt.hookimpl
    def hpt_register(register: Register) -> None:
        body(register)

    module.hpt_register = hpt_register  # type: ignore[attr-defined]
    return module


class FakeEntryPoint:
    """Stands in for an ``importlib.metadata.EntryPoint``."""

    def __init__(self, name: str, value: str, load: Callable[[], object]) -> None:
        self.name = name
        self.value = value
        self.group = ENTRY_POINT_GROUP
        self._load = load

    def load(self) -> object:
        return self._load()


def fake_entry_points(monkeypatch: pytest.MonkeyPatch, *eps: FakeEntryPoint) -> list[str]:
    """Make the registry see ``eps`` in its group; returns the groups it asked for."""
    asked: list[str] = []

    def entry_points(*, group: str) -> list[FakeEntryPoint]:
        asked.append(group)
        return list(eps) if group == ENTRY_POINT_GROUP else []

    monkeypatch.setattr(plugins_module, "entry_points", entry_points)
    return asked


# -- builtins ---------------------------------------------------------------------------


def test_builtin_names_are_registered() -> None:
    reg = Registry(autoload=False)
    assert {"random", "sobol", "grid"} <= set(reg.names("strategy"))
    assert "memory" in reg.names("storage")
    assert {"async", "thread"} <= set(reg.names("executor"))
    assert "console" in reg.names("logger")
    assert reg.get("strategy", "random") is hpt.RandomStrategy
    assert reg.get("strategy", "sobol") is hpt.SobolStrategy
    assert reg.get("strategy", "grid") is hpt.GridStrategy
    assert reg.get("storage", "memory") is hpt.MemoryStorage
    assert reg.get("executor", "async") is hpt.AsyncExecutor
    assert reg.get("executor", "thread") is hpt.ThreadExecutor
    assert reg.get("logger", "console") is hpt.ConsoleLogger
    assert reg.owner("strategy", "grid") == "hpt_async.strategies.grid"
    assert reg.names("strategy") == sorted(reg.names("strategy"))


def test_process_wide_registry_has_the_builtins() -> None:
    reg = hpt.get_registry()
    assert reg is hpt.get_registry()
    assert {"random", "sobol", "grid"} <= set(reg.names("strategy"))


def test_create_builds_from_a_name_and_passes_objects_through() -> None:
    reg = Registry(autoload=False)
    assert isinstance(reg.create("strategy", "grid"), hpt.GridStrategy)
    storage = reg.create("storage", "memory", "memory")
    assert isinstance(storage, hpt.MemoryStorage)
    mine = PickFirst()
    assert reg.create("strategy", mine) is mine


def test_defaults_false_gives_an_empty_registry() -> None:
    reg = Registry(defaults=False, autoload=False)
    assert all(reg.names(kind) == [] for kind in KINDS)
    with pytest.raises(hpt.PluginNotFound) as info:
        reg.get("strategy", "random")
    assert "none" in str(info.value)


# -- unknown names and kinds -----------------------------------------------------------------


def test_unknown_name_lists_the_registered_ones() -> None:
    reg = Registry(autoload=False)
    with pytest.raises(hpt.PluginNotFound) as info:
        reg.get("strategy", "bayes-magic")
    message = str(info.value)
    assert "'bayes-magic'" in message
    for name in ("random", "sobol", "grid"):
        assert name in message
    assert isinstance(info.value, LookupError)


def test_tuner_with_an_unknown_name_lists_the_registered_ones() -> None:
    async def objective(trial: hpt.Trial) -> float:
        return 0.0

    space = {"x": hpt.Float(0.0, 1.0)}
    with pytest.raises(hpt.PluginNotFound) as info:
        hpt.Tuner(objective, space, strategy="nope", loggers=[])
    assert "'nope'" in str(info.value) and "random" in str(info.value) and "grid" in str(info.value)
    with pytest.raises(hpt.PluginNotFound, match="console"):
        hpt.Tuner(objective, space, loggers=["no-such-logger"])
    with pytest.raises(hpt.PluginNotFound, match="memory"):
        hpt.Tuner(objective, space, storage="nosuchdb://x", loggers=[])
    with pytest.raises(hpt.PluginNotFound, match="thread"):
        hpt.Tuner(objective, space, executor="warp", loggers=[])


def test_unknown_kind_is_an_error() -> None:
    reg = Registry(autoload=False)
    with pytest.raises(ValueError, match="widget"):
        reg.names("widget")
    with pytest.raises(ValueError, match="widget"):
        reg.get("widget", "random")


def test_registering_an_unknown_kind_names_the_plugin() -> None:
    reg = Registry(defaults=False, autoload=False)
    bad = plugin_module("widgets_plugin", lambda register: register("widget", "w", PickFirst))
    with pytest.raises(hpt.PluginError) as info:
        reg.register_plugin(bad)
    message = str(info.value)
    assert "'widgets_plugin'" in message and "'widget'" in message
    for kind in KINDS:
        assert kind in message


@pytest.mark.parametrize("name", ["", None, 3])
def test_registering_an_invalid_name_names_the_plugin(name: Any) -> None:
    reg = Registry(defaults=False, autoload=False)
    bad = plugin_module("bad_names", lambda register: register("strategy", name, PickFirst))
    with pytest.raises(hpt.PluginError, match="'bad_names'"):
        reg.register_plugin(bad)


def test_registering_a_non_callable_factory_names_the_plugin() -> None:
    reg = Registry(defaults=False, autoload=False)
    bad = plugin_module("not_callable", lambda register: register("strategy", "s", "PickFirst"))  # type: ignore[arg-type]
    with pytest.raises(hpt.PluginError, match="'not_callable'"):
        reg.register_plugin(bad)


# -- registering ------------------------------------------------------------------------------


def test_register_plugin_on_a_fresh_registry() -> None:
    reg = Registry(autoload=False)
    mine = plugin_module("my_strategies", lambda register: register("strategy", "pick-first", PickFirst))
    reg.register_plugin(mine)
    assert "pick-first" in reg.names("strategy")
    assert reg.get("strategy", "pick-first") is PickFirst
    assert reg.owner("strategy", "pick-first") == "my_strategies"
    # Registering the same object again changes nothing.
    reg.register_plugin(mine)
    assert reg.names("strategy").count("pick-first") == 1
    # Another registry is not affected.
    assert "pick-first" not in Registry(autoload=False).names("strategy")


def test_register_plugin_object_with_a_method_hook() -> None:
    class Bundle:
        @hpt.hookimpl
        def hpt_register(self, register: Register) -> None:
            register("strategy", "bundle-pick", PickFirst)
            register("logger", "bundle-log", object)

    reg = Registry(autoload=False)
    reg.register_plugin(Bundle(), name="bundle")
    assert reg.get("strategy", "bundle-pick") is PickFirst
    assert reg.owner("logger", "bundle-log") == "bundle"


def test_registering_a_name_twice_names_both_owners() -> None:
    reg = Registry(autoload=False)
    clash = plugin_module("my_random", lambda register: register("strategy", "random", PickFirst))
    with pytest.raises(hpt.PluginError) as info:
        reg.register_plugin(clash)
    message = str(info.value)
    assert "'random'" in message
    assert "'hpt_async.strategies.random'" in message and "'my_random'" in message
    # The builtin keeps its name.
    assert reg.get("strategy", "random") is hpt.RandomStrategy


def test_registering_a_name_twice_between_third_party_plugins() -> None:
    reg = Registry(defaults=False, autoload=False)
    reg.register_plugin(plugin_module("first_pkg", lambda register: register("pruner", "median", PickFirst)))
    with pytest.raises(hpt.PluginError) as info:
        reg.register_plugin(plugin_module("second_pkg", lambda register: register("pruner", "median", PickFirst)))
    message = str(info.value)
    assert "'first_pkg'" in message and "'second_pkg'" in message and "'median'" in message
    # The same name in another kind is no clash.
    reg.register_plugin(plugin_module("third_pkg", lambda register: register("strategy", "median", PickFirst)))
    assert reg.owner("strategy", "median") == "third_pkg"


def test_plugin_whose_hpt_register_raises_is_named() -> None:
    def explode(register: Register) -> None:
        raise RuntimeError("cannot find my model files")

    reg = Registry(autoload=False)
    with pytest.raises(hpt.PluginError) as info:
        reg.register_plugin(plugin_module("broken_plugin", explode))
    message = str(info.value)
    assert "'broken_plugin'" in message
    assert "cannot find my model files" in message
    assert isinstance(info.value.__cause__, RuntimeError)


def test_plugin_with_an_invalid_hook_signature_is_named() -> None:
    module = types.ModuleType("wrong_args")

    @hpt.hookimpl
    def hpt_register(register: Register, surprise: int) -> None:  # pragma: no cover - never called
        pass

    module.hpt_register = hpt_register  # type: ignore[attr-defined]
    reg = Registry(autoload=False)
    with pytest.raises(hpt.PluginError, match="'wrong_args'"):
        reg.register_plugin(module)


def test_process_wide_register_plugin_makes_a_name_usable_by_tuners(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(plugins_module, "_registry", Registry(autoload=False))
    hpt.register_plugin(plugin_module("in_process", lambda register: register("strategy", "pick-first", PickFirst)))
    assert "pick-first" in hpt.get_registry().names("strategy")

    async def objective(trial: hpt.Trial) -> float:
        return trial.params["x"]

    tuner = hpt.Tuner(objective, {"x": hpt.Float(0.0, 2.0)}, strategy="pick-first", max_trials=3, loggers=[])
    assert isinstance(tuner.strategy, PickFirst)
    result = anyio.run(tuner.run)
    assert [t.params["x"] for t in result.trials] == [1.0, 1.0, 1.0]


def test_tuner_uses_the_registry_it_is_given() -> None:
    reg = Registry(autoload=False)
    reg.register_plugin(plugin_module("local", lambda register: register("strategy", "local-pick", PickFirst)))

    async def objective(trial: hpt.Trial) -> float:
        return 0.0

    tuner = hpt.Tuner(objective, {"x": hpt.Float(0.0, 1.0)}, strategy="local-pick", loggers=[], registry=reg)
    assert isinstance(tuner.strategy, PickFirst)
    with pytest.raises(hpt.PluginNotFound):
        hpt.Tuner(objective, {"x": hpt.Float(0.0, 1.0)}, strategy="local-pick", loggers=[])


# -- entry points and autoload ------------------------------------------------------------------------


def test_entry_point_plugins_are_registered(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(AUTOLOAD_ENV, raising=False)
    module = plugin_module("acme_hpt", lambda register: register("strategy", "acme", PickFirst))
    asked = fake_entry_points(monkeypatch, FakeEntryPoint("acme", "acme_hpt.plugin", lambda: module))
    reg = Registry()
    assert asked == [ENTRY_POINT_GROUP]
    assert reg.get("strategy", "acme") is PickFirst
    owner = reg.owner("strategy", "acme")
    assert "acme" in owner and "acme_hpt.plugin" in owner


def test_entry_point_that_fails_to_import_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(AUTOLOAD_ENV, raising=False)

    def broken_import() -> object:
        raise ImportError("No module named 'acme_missing_dependency'")

    fake_entry_points(monkeypatch, FakeEntryPoint("acme-broken", "acme_broken.plugin", broken_import))
    with pytest.raises(hpt.PluginError) as info:
        Registry()
    message = str(info.value)
    assert "'acme-broken'" in message
    assert "acme_broken.plugin" in message
    assert "acme_missing_dependency" in message
    assert AUTOLOAD_ENV in message  # the way out is named
    assert isinstance(info.value.__cause__, ImportError)


def test_entry_point_whose_registration_clashes_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    """An installed plugin that takes an existing name makes only that name unusable, with both owners named."""
    monkeypatch.delenv(AUTOLOAD_ENV, raising=False)
    module = plugin_module("grid_again", lambda register: register("strategy", "grid", PickFirst))
    fake_entry_points(monkeypatch, FakeEntryPoint("grid-again", "grid_again.plugin", lambda: module))
    reg = Registry()
    with pytest.raises(hpt.PluginError) as info:
        reg.get("strategy", "grid")
    message = str(info.value)
    assert "grid-again" in message and "'hpt_async.strategies.grid'" in message
    with pytest.raises(hpt.PluginError):
        hpt.Tuner(lambda t: 0.0, {"x": hpt.Float(0, 1)}, strategy="grid", registry=reg, loggers=[])
    # Every other name still works.
    assert reg.get("strategy", "random") is hpt.RandomStrategy
    hpt.Tuner(lambda t: 0.0, {"x": hpt.Float(0, 1)}, strategy="random", registry=reg, loggers=[])


@pytest.mark.parametrize("value", ["1", "true", "yes"])
def test_environment_variable_disables_autoload(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    def fail_load() -> object:
        raise AssertionError("an entry point was loaded although autoload is disabled")

    asked = fake_entry_points(monkeypatch, FakeEntryPoint("never", "never.plugin", fail_load))
    monkeypatch.setenv(AUTOLOAD_ENV, value)
    reg = Registry()
    assert asked == []
    assert {"random", "sobol", "grid"} <= set(reg.names("strategy"))  # builtins are not entry points


def test_empty_environment_variable_keeps_autoload(monkeypatch: pytest.MonkeyPatch) -> None:
    module = plugin_module("acme_hpt", lambda register: register("strategy", "acme", PickFirst))
    asked = fake_entry_points(monkeypatch, FakeEntryPoint("acme", "acme_hpt.plugin", lambda: module))
    monkeypatch.setenv(AUTOLOAD_ENV, "")
    reg = Registry()
    assert asked == [ENTRY_POINT_GROUP]
    assert "acme" in reg.names("strategy")


def test_autoload_argument_overrides_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    module = plugin_module("acme_hpt", lambda register: register("strategy", "acme", PickFirst))
    asked = fake_entry_points(monkeypatch, FakeEntryPoint("acme", "acme_hpt.plugin", lambda: module))
    monkeypatch.setenv(AUTOLOAD_ENV, "1")
    assert "acme" in Registry(autoload=True).names("strategy")
    monkeypatch.delenv(AUTOLOAD_ENV)
    assert "acme" not in Registry(autoload=False).names("strategy")
    assert asked == [ENTRY_POINT_GROUP]
