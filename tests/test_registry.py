"""The plugin registry: builtin names, clashes, unknown names, entry points and autoload."""

from __future__ import annotations

import json
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import pytest
from common import cli

import hpt_async as hpt
import hpt_async.plugins as plugins_module
from hpt_async.exceptions import HptError
from hpt_async.plugins import (
    AUTOLOAD_ENV,
    DISABLE_ENV,
    ENTRY_POINT_GROUP,
    KINDS,
    PLUGIN_API_VERSION,
    ComponentSpecError,
    Registry,
    component_spec,
    require_plugin_api,
)
from hpt_async.specs import SpecOptions

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


class FakeDistribution:
    """Stands in for the ``importlib.metadata.Distribution`` an entry point belongs to."""

    def __init__(self, name: str) -> None:
        self.name = name


class FakeEntryPoint:
    """Stands in for an ``importlib.metadata.EntryPoint`` of an installed distribution."""

    def __init__(self, name: str, value: str, load: Callable[[], object], dist: str | None = None) -> None:
        self.name = name
        self.value = value
        self.group = ENTRY_POINT_GROUP
        self.dist = FakeDistribution(dist) if dist is not None else None
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
        hpt.Tuner(objective, space, loggers=["no-such-logger"], strategy="random")
    with pytest.raises(hpt.PluginNotFound, match="memory"):
        hpt.Tuner(objective, space, storage="nosuchdb://x", loggers=[], strategy="random")
    with pytest.raises(hpt.PluginNotFound, match="thread"):
        hpt.Tuner(objective, space, executor="warp", loggers=[], strategy="random")


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


def test_entry_point_whose_registration_clashes_with_a_builtin_fails_the_build(monkeypatch: pytest.MonkeyPatch) -> None:
    """An installed plugin that takes a builtin's name is an error when the registry is built, naming both."""
    monkeypatch.delenv(AUTOLOAD_ENV, raising=False)
    monkeypatch.delenv(DISABLE_ENV, raising=False)
    module = plugin_module("grid_again", lambda register: register("strategy", "grid", PickFirst))
    fake_entry_points(monkeypatch, FakeEntryPoint("grid-again", "grid_again.plugin", lambda: module, "grid-again-dist"))
    with pytest.raises(hpt.PluginError) as info:
        Registry()
    message = str(info.value)
    assert "strategy 'grid' is registered by hpt-async (builtin 'hpt_async.strategies.grid')" in message
    assert "by distribution 'grid-again-dist' (entry point 'grid-again')" in message
    assert "uninstall" in message
    assert f"{DISABLE_ENV}=grid-again" in message and f"{DISABLE_ENV}=hpt_async.strategies.grid" in message


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


def test_entry_point_owner_names_its_distribution(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(AUTOLOAD_ENV, raising=False)
    monkeypatch.delenv(DISABLE_ENV, raising=False)
    module = plugin_module("acme_hpt", lambda register: register("strategy", "acme", PickFirst))
    fake_entry_points(monkeypatch, FakeEntryPoint("acme", "acme_hpt.plugin", lambda: module, "acme-tuning"))
    reg = Registry()
    info = reg.plugin_info("strategy", "acme")
    assert (info.name, info.source, info.distribution, info.value) == (
        "acme",
        "entry point",
        "acme-tuning",
        "acme_hpt.plugin",
    )
    assert info.describe() == "distribution 'acme-tuning' (entry point 'acme')"
    builtin = reg.plugin_info("strategy", "random")
    assert (builtin.name, builtin.source, builtin.distribution) == (
        "hpt_async.strategies.random",
        "builtin",
        "hpt-async",
    )
    assert [p.name for p in reg.plugins()][-1] == "acme"


# -- clashes ------------------------------------------------------------------------------------------


def two_distributions(monkeypatch: pytest.MonkeyPatch, kind: str, name: str) -> None:
    """Two installed distributions, ``first-dist`` and ``second-dist``, that both register ``name``."""
    monkeypatch.delenv(AUTOLOAD_ENV, raising=False)
    monkeypatch.delenv(DISABLE_ENV, raising=False)
    first = plugin_module("first_mod", lambda register: register(kind, name, PickFirst))
    second = plugin_module("second_mod", lambda register: register(kind, name, PickFirst))
    fake_entry_points(
        monkeypatch,
        FakeEntryPoint("first", "first_mod", lambda: first, "first-dist"),
        FakeEntryPoint("second", "second_mod", lambda: second, "second-dist"),
    )


def test_two_distributions_registering_one_name_fail_the_build(monkeypatch: pytest.MonkeyPatch) -> None:
    two_distributions(monkeypatch, "pruner", "shared")
    with pytest.raises(hpt.PluginError) as info:
        Registry()
    message = str(info.value)
    assert "pruner 'shared' is registered by distribution 'first-dist' (entry point 'first')" in message
    assert "and by distribution 'second-dist' (entry point 'second')" in message
    assert f"{DISABLE_ENV}=first" in message and f"{DISABLE_ENV}=second" in message
    assert isinstance(info.value, HptError)


def test_process_wide_registry_fails_on_a_clash_every_time(monkeypatch: pytest.MonkeyPatch) -> None:
    two_distributions(monkeypatch, "strategy", "random")
    monkeypatch.setattr(plugins_module, "_registry", None)
    for _ in range(2):
        with pytest.raises(hpt.PluginError, match="'random' is registered by hpt-async") as info:
            hpt.get_registry()
        assert "'first-dist'" in str(info.value) and "'second-dist'" in str(info.value)


def test_disabling_one_of_two_clashing_distributions_builds(monkeypatch: pytest.MonkeyPatch) -> None:
    two_distributions(monkeypatch, "pruner", "shared")
    monkeypatch.setenv(DISABLE_ENV, "second")
    reg = Registry()
    assert reg.plugin_info("pruner", "shared").distribution == "first-dist"
    assert reg.disabled == frozenset({"second"})
    assert "second" not in [p.name for p in reg.plugins()]


def test_a_distribution_taking_a_builtin_name_builds_once_either_is_disabled(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(AUTOLOAD_ENV, raising=False)
    module = plugin_module("my_random", lambda register: register("strategy", "random", PickFirst))
    fake_entry_points(monkeypatch, FakeEntryPoint("my-random", "my_random", lambda: module, "my-random-dist"))
    monkeypatch.setattr(plugins_module, "_registry", None)
    monkeypatch.delenv(DISABLE_ENV, raising=False)
    with pytest.raises(hpt.PluginError) as info:
        hpt.get_registry()
    assert "hpt-async (builtin 'hpt_async.strategies.random')" in str(info.value)
    assert "distribution 'my-random-dist' (entry point 'my-random')" in str(info.value)
    monkeypatch.setenv(DISABLE_ENV, "my-random")
    assert hpt.get_registry().get("strategy", "random") is hpt.RandomStrategy
    monkeypatch.setenv(DISABLE_ENV, "hpt_async.strategies.random")
    reg = Registry()
    assert reg.get("strategy", "random") is PickFirst
    assert reg.plugin_info("strategy", "random").distribution == "my-random-dist"


def test_a_clashing_plugin_registers_none_of_its_names() -> None:
    def body(register: Register) -> None:
        register("strategy", "fresh-name", PickFirst)
        register("strategy", "random", PickFirst)

    reg = Registry(autoload=False, disabled=())
    with pytest.raises(hpt.PluginError, match="register it under another name"):
        reg.register_plugin(plugin_module("half_clash", body))
    assert "fresh-name" not in reg.names("strategy")
    assert reg.get("strategy", "random") is hpt.RandomStrategy
    # Once fixed, the same plugin object can be registered.
    fixed = plugin_module("half_clash", lambda register: register("strategy", "fresh-name", PickFirst))
    reg.register_plugin(fixed)
    assert reg.owner("strategy", "fresh-name") == "half_clash"


def test_a_plugin_registering_a_name_twice_itself_is_named() -> None:
    def body(register: Register) -> None:
        register("logger", "twice", PickFirst)
        register("logger", "twice", PickFirst)

    reg = Registry(autoload=False, disabled=())
    with pytest.raises(hpt.PluginError, match=r"'stutter' registers logger 'twice' twice"):
        reg.register_plugin(plugin_module("stutter", body))
    assert "twice" not in reg.names("logger")


def test_two_entry_points_of_one_name_are_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(AUTOLOAD_ENV, raising=False)
    monkeypatch.delenv(DISABLE_ENV, raising=False)
    a = plugin_module("a_mod", lambda register: register("strategy", "a-pick", PickFirst))
    b = plugin_module("b_mod", lambda register: register("strategy", "b-pick", PickFirst))
    fake_entry_points(
        monkeypatch,
        FakeEntryPoint("same", "a_mod", lambda: a, "a-dist"),
        FakeEntryPoint("same", "b_mod", lambda: b, "b-dist"),
    )
    with pytest.raises(hpt.PluginError, match="two plugins are named 'same'") as info:
        Registry()
    assert "'a-dist'" in str(info.value) and "'b-dist'" in str(info.value)


# -- disabling plugins ---------------------------------------------------------------------------------


def test_disabled_entry_point_is_never_imported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(AUTOLOAD_ENV, raising=False)

    def broken_import() -> object:
        raise ImportError("this plugin must not be imported")

    module = plugin_module("acme_hpt", lambda register: register("strategy", "acme", PickFirst))
    fake_entry_points(
        monkeypatch,
        FakeEntryPoint("broken", "broken.plugin", broken_import, "broken-dist"),
        FakeEntryPoint("acme", "acme_hpt.plugin", lambda: module, "acme-dist"),
    )
    monkeypatch.setenv(DISABLE_ENV, " other ,broken,, ")
    reg = Registry()
    assert reg.disabled == frozenset({"other", "broken"})
    assert "acme" in reg.names("strategy")
    assert plugins_module.disabled_from_environment() == frozenset({"other", "broken"})


def test_entry_point_that_fails_to_import_names_the_variable_that_disables_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(AUTOLOAD_ENV, raising=False)
    monkeypatch.delenv(DISABLE_ENV, raising=False)

    def broken_import() -> object:
        raise ImportError("missing dependency")

    fake_entry_points(monkeypatch, FakeEntryPoint("acme-broken", "acme_broken.plugin", broken_import, "acme-dist"))
    with pytest.raises(hpt.PluginError) as info:
        Registry()
    assert f"{DISABLE_ENV}=acme-broken" in str(info.value) and "'acme-dist'" in str(info.value)


def test_builtin_is_disabled_by_its_module_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(DISABLE_ENV, "hpt_async.strategies.tpe,hpt_async.loggers.jsonl")
    reg = Registry(autoload=False)
    assert "tpe" not in reg.names("strategy") and "jsonl" not in reg.names("logger")
    assert {"random", "bayes"} <= set(reg.names("strategy"))
    # The argument overrides the variable.
    assert "tpe" in Registry(autoload=False, disabled=[]).names("strategy")
    assert "random" not in Registry(autoload=False, disabled=["hpt_async.strategies.random"]).names("strategy")


def test_disabled_argument_hides_a_plugin_from_one_call(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(AUTOLOAD_ENV, raising=False)
    monkeypatch.delenv(DISABLE_ENV, raising=False)
    module = plugin_module("acme_hpt", lambda register: register("strategy", "acme", PickFirst))
    fake_entry_points(monkeypatch, FakeEntryPoint("acme", "acme_hpt.plugin", lambda: module, "acme-dist"))
    reg = Registry()
    hidden = frozenset({"acme", "hpt_async.strategies.sobol"})
    assert "acme" not in reg.names("strategy", disabled=hidden)
    assert "sobol" not in reg.names("strategy", disabled=hidden)
    with pytest.raises(hpt.PluginNotFound) as info:
        reg.create("strategy", "acme", disabled=hidden)
    message = str(info.value)
    assert "distribution 'acme-dist' (entry point 'acme')" in message and "disabled" in message
    assert "random" in message and "grid" in message and "sobol" not in message.split(":")[-1]
    with pytest.raises(hpt.PluginNotFound):
        reg.get("strategy", "sobol", disabled=["hpt_async.strategies.sobol"])
    with pytest.raises(hpt.PluginNotFound):
        reg.create("strategy", {"name": "acme"}, disabled=["acme"])
    # Other calls still see it.
    assert isinstance(reg.create("strategy", "acme"), PickFirst)
    assert isinstance(reg.create("strategy", "acme", disabled=["someone-else"]), PickFirst)


def test_disabled_must_be_a_collection_of_names() -> None:
    reg = Registry(autoload=False, disabled=())
    with pytest.raises(TypeError, match="collection of plugin names") as info:
        reg.names("strategy", disabled="acme")  # type: ignore[arg-type]
    assert isinstance(info.value, HptError)
    with pytest.raises(TypeError, match="string"):
        reg.create("strategy", "random", disabled=[3])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="collection of plugin names"):
        Registry(autoload=False, disabled="hpt_async.strategies.random")


def test_plugin_of_names_where_an_object_comes_from() -> None:
    reg = Registry(autoload=False, disabled=())
    module = plugin_module("pickers", lambda register: register("strategy", "pick-first", PickFirst))
    reg.register_plugin(module)
    assert reg.plugin_of(reg.create("strategy", "pick-first")).name == "pickers"  # type: ignore[union-attr]
    assert reg.plugin_of(module).name == "pickers"  # type: ignore[union-attr]
    assert reg.plugin_of(hpt.MemoryStorage()).name == "hpt_async.storage.memory"  # type: ignore[union-attr]

    class Mine(PickFirst):
        pass

    assert reg.plugin_of(Mine()) is None


# -- components as plain data -------------------------------------------------------------------------


class Tunable(hpt.Strategy):
    """A strategy with keyword options, registered as a class."""

    name = "tunable"

    def __init__(self, width: float = 1.0, *, depth: int = 2) -> None:
        self.width = width
        self.depth = depth

    async def ask(self, study: hpt.StudyView, number: int) -> dict[str, Any]:
        return study.space.from_unit([0.5] * len(study.space))

    def spec_options(self) -> dict[str, Any]:
        return {"width": self.width, "depth": self.depth}


def tunable_registry() -> Registry:
    reg = Registry(autoload=False, disabled=())
    reg.register_plugin(plugin_module("tunables", lambda register: register("strategy", "tunable", Tunable)))
    return reg


def test_a_mapping_spec_passes_its_options_as_keywords() -> None:
    reg = tunable_registry()
    made = reg.create("strategy", {"name": "tunable", "width": 0.25, "depth": 7})
    assert isinstance(made, Tunable) and (made.width, made.depth) == (0.25, 7)
    assert reg.create("strategy", {"name": "tunable"}).depth == 2
    bayes = reg.create("strategy", {"name": "bayes", "n_initial": 8, "pending": "ignore"})
    assert isinstance(bayes, hpt.BayesStrategy) and bayes.n_initial == 8
    asha = reg.create("pruner", {"name": "asha", "eta": 2, "min_resource": 3})
    assert isinstance(asha, hpt.ASHAPruner) and asha.eta == 2


def test_a_spec_from_a_json_file_builds_the_strategy(tmp_path: Path) -> None:
    path = tmp_path / "tuning.json"
    path.write_text('{"strategy": {"name": "tpe", "n_initial": 3, "gamma": 0.3}, "pruner": "median"}', "utf-8")
    with path.open(encoding="utf-8") as f:
        config = json.load(f)
    reg = Registry(autoload=False, disabled=())
    strategy = reg.create("strategy", config["strategy"])
    assert isinstance(strategy, hpt.TPEStrategy)
    assert (strategy.n_initial, strategy.gamma) == (3, 0.3)
    assert isinstance(reg.create("pruner", config["pruner"]), hpt.MedianPruner)


def test_unknown_options_are_refused_with_the_valid_ones() -> None:
    reg = tunable_registry()
    with pytest.raises(ComponentSpecError) as info:
        reg.create("strategy", {"name": "tunable", "widht": 2.0, "colour": "red"})
    message = str(info.value)
    assert "strategy 'tunable' got unknown options 'widht' (did you mean 'width'?), 'colour'" in message
    assert "its options are width, depth" in message
    assert isinstance(info.value, TypeError) and isinstance(info.value, hpt.PluginError)
    assert isinstance(info.value, HptError)
    with pytest.raises(ComponentSpecError, match="n_initial"):
        reg.create("strategy", {"name": "bayes", "n_inital": 8})
    with pytest.raises(ComponentSpecError, match="takes no options"):
        reg.create("strategy", {"name": "random", "seed": 1})


def test_a_factory_taking_any_keyword_gets_every_option() -> None:
    seen: dict[str, Any] = {}

    def anything(**options: Any) -> PickFirst:
        seen.update(options)
        return PickFirst()

    reg = Registry(defaults=False, autoload=False, disabled=())
    reg.register_plugin(plugin_module("loose", lambda register: register("strategy", "loose", anything)))
    reg.create("strategy", {"name": "loose", "a": 1, "b": [2, 3]})
    assert seen == {"a": 1, "b": [2, 3]}


def test_a_missing_required_option_is_named() -> None:
    def sized(size: int, *, colour: str = "red") -> PickFirst:
        raise AssertionError("not called without its size")

    reg = Registry(defaults=False, autoload=False, disabled=())
    reg.register_plugin(plugin_module("sized_mod", lambda register: register("strategy", "sized", sized)))
    with pytest.raises(ComponentSpecError, match="strategy 'sized': missing a required argument: 'size'"):
        reg.create("strategy", {"name": "sized", "colour": "blue"})


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        ({"n_initial": 8}, "no a 'name' key"),
        ({"name": 8}, "'name' must be a non-empty string"),
        ({"name": ""}, "'name' must be a non-empty string"),
        ({"name": "tunable", 1: 2}, "option names are strings"),
    ],
)
def test_a_malformed_spec_is_refused(spec: dict[Any, Any], match: str) -> None:
    reg = tunable_registry()
    with pytest.raises(ComponentSpecError, match=match):
        reg.create("strategy", spec)


def test_storage_specs_are_urls() -> None:
    reg = Registry(autoload=False, disabled=())
    assert isinstance(reg.create("storage", "memory"), hpt.MemoryStorage)
    assert isinstance(reg.create("storage", "memory", "memory"), hpt.MemoryStorage)  # scheme and URL, as before
    assert isinstance(reg.create("storage", {"name": "memory"}), hpt.MemoryStorage)
    sqlite = reg.create("storage", {"url": "sqlite:///tuning.db", "timeout": 7})
    assert isinstance(sqlite, hpt.SQLiteStorage) and sqlite.url == "sqlite:///tuning.db" and sqlite.timeout == 7.0
    named = reg.create("storage", {"name": "sqlite", "url": "sqlite:///tuning.db"})
    assert isinstance(named, hpt.SQLiteStorage)
    with pytest.raises(ComponentSpecError, match="not the scheme"):
        reg.create("storage", {"name": "memory", "url": "sqlite:///tuning.db"})
    with pytest.raises(ComponentSpecError, match="timout"):
        reg.create("storage", {"url": "sqlite:///tuning.db", "timout": 7})
    with pytest.raises(ComponentSpecError, match="also given"):
        reg.create("storage", {"url": "sqlite:///tuning.db"}, "sqlite:///other.db")


def test_component_spec_of_specs() -> None:
    assert component_spec("strategy", "bayes") == {"name": "bayes"}
    assert component_spec("strategy", {"n_initial": 8, "name": "bayes"}) == {"name": "bayes", "n_initial": 8}
    assert component_spec("storage", "sqlite:///x.db") == {"name": "sqlite", "url": "sqlite:///x.db"}
    assert component_spec("storage", {"url": "memory"}) == {"name": "memory", "url": "memory"}
    with pytest.raises(ComponentSpecError, match="cannot be stored as JSON"):
        component_spec("logger", {"name": "console", "stream": object()})
    with pytest.raises(ComponentSpecError, match="'name'"):
        component_spec("strategy", {"n_initial": 8})


def test_component_spec_of_objects_round_trips_through_json() -> None:
    reg = tunable_registry()
    made = reg.create("strategy", {"name": "tunable", "width": 0.5, "depth": 4})
    spec = component_spec("strategy", made)
    assert spec == {"name": "tunable", "width": 0.5, "depth": 4}
    again = reg.create("strategy", json.loads(json.dumps(spec)))
    assert (again.width, again.depth) == (0.5, 4)
    # Without spec_options(), only the name is known; without a name, the class.
    assert component_spec("strategy", hpt.RandomStrategy()) == {"name": "random"}
    assert component_spec("strategy", object()) == {"name": "builtins.object"}
    assert component_spec("storage", hpt.SQLiteStorage("sqlite:///x.db")) == {"name": "sqlite", "url": "sqlite:///x.db"}

    class Odd(PickFirst):
        def spec_options(self) -> Any:
            return ["not", "a", "mapping"]

    with pytest.raises(ComponentSpecError, match="spec_options"):
        component_spec("strategy", Odd())


def test_a_spec_object_protocol_is_recognised() -> None:
    assert isinstance(Tunable(), SpecOptions)
    assert not isinstance(PickFirst(), SpecOptions)


# -- plugin API version ---------------------------------------------------------------------------------


def test_plugin_api_version_is_checked() -> None:
    major, minor = PLUGIN_API_VERSION
    assert (major, minor) >= (2, 0)
    require_plugin_api(major)
    require_plugin_api(major, minor)
    with pytest.raises(hpt.PluginError, match=rf"needs plugin API {major}\.{minor + 1}.*upgrade hpt-async"):
        require_plugin_api(major, minor + 1)
    with pytest.raises(hpt.PluginError, match=rf"needs plugin API {major + 1}\.0.*upgrade hpt-async"):
        require_plugin_api(major + 1)
    with pytest.raises(
        hpt.PluginError, match=rf"needs plugin API {major - 1}\.0.*provides plugin API {major}\.{minor}"
    ):
        require_plugin_api(major - 1)
    with pytest.raises(hpt.PluginError, match="integers"):
        require_plugin_api("2")  # type: ignore[arg-type]


def test_a_plugin_requiring_a_newer_api_is_named() -> None:
    def body(register: Register) -> None:
        require_plugin_api(PLUGIN_API_VERSION[0] + 1)
        register("strategy", "future", PickFirst)

    reg = Registry(autoload=False, disabled=())
    with pytest.raises(hpt.PluginError, match=r"'from_the_future'.*needs plugin API"):
        reg.register_plugin(plugin_module("from_the_future", body))
    assert "future" not in reg.names("strategy")


# -- the plugins command ----------------------------------------------------------------------------------


def test_plugins_command_shows_each_name_with_its_distribution(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv(AUTOLOAD_ENV, raising=False)
    monkeypatch.delenv(DISABLE_ENV, raising=False)
    module = plugin_module("acme_hpt", lambda register: register("strategy", "acme", PickFirst))
    fake_entry_points(monkeypatch, FakeEntryPoint("acme", "acme_hpt.plugin", lambda: module, "acme-tuning"))
    monkeypatch.setattr(plugins_module, "_registry", None)
    code, out, _ = cli(capsys, "plugins", "--kind", "strategy")
    assert code == 0
    lines = {line.split()[0]: line for line in out.splitlines()[1:]}
    assert "distribution 'acme-tuning' (entry point 'acme')" in lines["acme"]
    assert "hpt-async (builtin 'hpt_async.strategies.random')" in lines["random"]
