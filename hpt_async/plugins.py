"""The plugin machinery: a process-wide registry of names, and a per-tuner hook relay.

* :class:`Registry` maps ``(kind, name)`` to a factory.  It is built once per
  process from :data:`DEFAULT_PLUGINS` and then from the entry-point group
  ``hpt_async`` (unless ``HPT_ASYNC_DISABLE_PLUGIN_AUTOLOAD`` is set), by
  calling each plugin's ``hpt_register(register)`` hook.  Builtins and
  third-party plugins go through exactly the same call.
* :class:`HookRelay`, the per-tuner delivery of lifecycle notifications, is in :mod:`hpt_async.relay`.
"""

from __future__ import annotations

import dataclasses
import importlib
import logging
import os
import threading
from collections.abc import Callable, Iterable
from importlib.metadata import entry_points
from typing import Any

import pluggy

from . import hookspecs
from .exceptions import PluginError, PluginNotFound
from .relay import TRACE_ENV, HookRelay, _check_impls, implemented_hooks
from .specs import ComponentSpecError, check_options, component_spec, is_spec, normalise

__all__ = [
    "AUTOLOAD_ENV",
    "DEFAULT_PLUGINS",
    "DISABLE_ENV",
    "PLUGIN_API_VERSION",
    "ComponentSpecError",
    "PluginInfo",
    "component_spec",
    "disabled_from_environment",
    "require_plugin_api",
    "ENTRY_POINT_GROUP",
    "KINDS",
    "TRACE_ENV",
    "HookRelay",
    "Registry",
    "get_registry",
    "implemented_hooks",
    "register_plugin",
]

log = logging.getLogger("hpt_async")

KINDS: tuple[str, ...] = ("strategy", "pruner", "storage", "logger", "executor")
"""The kinds of named component a plugin can register."""

DEFAULT_PLUGINS: tuple[str, ...] = (
    "hpt_async.strategies.random",
    "hpt_async.strategies.sobol",
    "hpt_async.strategies.grid",
    "hpt_async.strategies.bayes",
    "hpt_async.strategies.tpe",
    "hpt_async.strategies.evolution",
    "hpt_async.strategies.pbt",
    "hpt_async.strategies.cmaes",
    "hpt_async.strategies.auto",
    "hpt_async.pruners.median",
    "hpt_async.pruners.asha",
    "hpt_async.pruners.hyperband",
    "hpt_async.storage.memory",
    "hpt_async.storage.sqlite",
    "hpt_async.storage.postgres",
    "hpt_async.executors.inloop",
    "hpt_async.executors.thread",
    "hpt_async.executors.process",
    "hpt_async.loggers.console",
    "hpt_async.loggers.jsonl",
    "hpt_async.loggers.tensorboard",
    "hpt_async.loggers.wandb",
)
"""Modules of the builtin plugins, registered like any third-party plugin."""

ENTRY_POINT_GROUP = "hpt_async"
"""The entry-point group third-party distributions declare their plugin under."""

DISABLE_ENV = "HPT_ASYNC_DISABLE_PLUGINS"
"""Comma-separated names of plugins not to load: entry-point names, or builtin module names."""

AUTOLOAD_ENV = "HPT_ASYNC_DISABLE_PLUGIN_AUTOLOAD"
"""Set (to anything but empty) to skip the entry-point group."""


def _new_manager() -> pluggy.PluginManager:
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    return pm


PLUGIN_API_VERSION: tuple[int, int] = (2, 0)
"""The version of the interface between hpt-async and its plugins, ``(major, minor)``.

The *major* number goes up when a change can break an existing plugin: the
``hpt_register`` hook or its ``register(kind, name, factory)`` callback
changes, a lifecycle hook is removed or takes different arguments, a
component contract (``Strategy``, ``Pruner``, ``Storage``, ``Executor``,
loggers) gains a required method or changes a method's meaning, or the way
factories are called (no arguments, keyword options from a spec, a storage's
URL) changes.  The *minor* number goes up when something is only added: a
new kind, a new lifecycle hook, an optional method.  Version 2.0 is the
first to be numbered: factories get the keyword options of a mapping spec,
and clashing names are an error when the registry is built.
"""


def require_plugin_api(major: int, minor: int = 0) -> None:
    """Raise :class:`PluginError` unless the running hpt-async offers plugin API ``major.minor``.

    A plugin calls it at import or in ``hpt_register`` with the version it
    was written for: the running API must have the same major number and at
    least that minor number.
    """
    if isinstance(major, bool) or not isinstance(major, int) or isinstance(minor, bool) or not isinstance(minor, int):
        raise PluginError(f"require_plugin_api takes integers, got major={major!r}, minor={minor!r}")
    running_major, running_minor = PLUGIN_API_VERSION
    if major == running_major and minor <= running_minor:
        return
    from . import __version__

    running = f"hpt-async {__version__} provides plugin API {running_major}.{running_minor}"
    if major > running_major or (major == running_major and minor > running_minor):
        advice = "upgrade hpt-async"
    else:
        advice = "use a release of the plugin written for the newer API, or an older hpt-async"
    raise PluginError(f"this plugin needs plugin API {major}.{minor}, but {running}: {advice}")


@dataclasses.dataclass(frozen=True)
class PluginInfo:
    """Where a registered plugin comes from.

    ``name`` is what disables it (:data:`DISABLE_ENV`, ``disabled=``): the
    entry point's name for an installed distribution, the module name
    (``"hpt_async.strategies.random"``) for a builtin, the name given to
    :meth:`Registry.register_plugin` otherwise.  ``source`` is ``"builtin"``,
    ``"entry point"`` or ``"in-process"``; ``distribution`` is the installed
    distribution's name (``"hpt-async"`` for the builtins, ``None`` when
    unknown); ``value`` is the entry point's module; ``label`` is what
    :meth:`Registry.owner` returns.
    """

    name: str
    source: str
    label: str
    distribution: str | None = None
    value: str | None = None

    def describe(self) -> str:
        """A phrase naming the plugin for messages: ``distribution 'x' (entry point 'y')``."""
        if self.source == "builtin":
            return f"hpt-async (builtin {self.name!r})"
        if self.source == "entry point":
            where = f"entry point {self.name!r}"
            if self.distribution:
                return f"distribution {self.distribution!r} ({where})"
            return f"{where} ({self.value})"
        return f"in-process plugin {self.name!r}"


def disabled_from_environment() -> frozenset[str]:
    """The plugin names listed in :data:`DISABLE_ENV` (comma-separated, spaces ignored)."""
    return _parse_disabled(os.environ.get(DISABLE_ENV, ""))


def _parse_disabled(value: str) -> frozenset[str]:
    return frozenset(part.strip() for part in value.split(",") if part.strip())


def _as_disabled(disabled: Iterable[str] | None) -> frozenset[str]:
    if not disabled:
        return frozenset()
    if isinstance(disabled, frozenset):
        return disabled
    if isinstance(disabled, str) or not isinstance(disabled, Iterable):
        raise ComponentSpecError(f"disabled plugins are a collection of plugin names, got {disabled!r}")
    names = frozenset(disabled)
    for name in names:
        if not isinstance(name, str):
            raise ComponentSpecError(f"a disabled plugin is named by a string, got {name!r}")
    return names


class Registry:
    """Names of strategies, pruners, storages, loggers and executors, and the plugin behind each.

    Built from the builtin modules in :data:`DEFAULT_PLUGINS` and then, unless
    ``autoload`` is false (or, when it is ``None``, :data:`AUTOLOAD_ENV` is
    set), from the entry points of the group :data:`ENTRY_POINT_GROUP`.
    Plugins named in ``disabled`` (by default, those listed in
    :data:`DISABLE_ENV`) are not imported at all: an entry point by its
    name, a builtin by its module name.

    Two plugins registering the same name of the same kind make the build
    fail with :class:`PluginError` naming both and how to resolve it.

    ``names``, ``get`` and ``create`` take ``disabled=`` too: plugin names to
    hide from that one call (what a Tuner's ``disable_plugins`` becomes).
    """

    def __init__(
        self, *, defaults: bool = True, autoload: bool | None = None, disabled: Iterable[str] | None = None
    ) -> None:
        self._pm = _new_manager()
        self._factories: dict[str, dict[str, Callable[..., Any]]] = {k: {} for k in KINDS}
        self._owners: dict[tuple[str, str], PluginInfo] = {}
        self._plugins: dict[str, PluginInfo] = {}
        self.disabled: frozenset[str] = disabled_from_environment() if disabled is None else _as_disabled(disabled)
        """Plugins left out when this registry was built."""
        clashes: list[str] = []
        if defaults:
            for module_name in DEFAULT_PLUGINS:
                if module_name in self.disabled:
                    continue
                info = PluginInfo(module_name, "builtin", module_name, "hpt-async", module_name)
                self._register(importlib.import_module(module_name), info, clashes)
        if autoload is None:
            autoload = not os.environ.get(AUTOLOAD_ENV)
        if autoload:
            self._load_entry_points(clashes)
        if clashes:
            raise PluginError("; ".join(clashes))

    def _load_entry_points(self, clashes: list[str]) -> None:
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            if ep.name in self.disabled:
                continue
            dist = getattr(getattr(ep, "dist", None), "name", None)
            info = PluginInfo(ep.name, "entry point", f"{ep.name} ({ep.value})", dist, ep.value)
            try:
                plugin = ep.load()
            except Exception as exc:
                raise PluginError(
                    f"plugin {ep.name!r} ({ep.value}) from entry-point group {ENTRY_POINT_GROUP!r}"
                    f"{f' of distribution {dist!r}' if dist else ''} failed to load: {type(exc).__name__}: {exc}. "
                    f"Set {DISABLE_ENV}={ep.name} to start without it, "
                    f"or {AUTOLOAD_ENV}=1 to start without any third-party plugin."
                ) from exc
            self._register(plugin, info, clashes)

    def register_plugin(self, plugin: object, name: str | None = None) -> None:
        """Register a plugin module or object and run its ``hpt_register`` hook.

        A name that is already registered raises :class:`PluginError` naming
        both plugins, and none of the plugin's names is registered.
        """
        label = name or getattr(plugin, "__name__", None) or repr(plugin)
        clashes: list[str] = []
        self._register(plugin, PluginInfo(label, "in-process", label), clashes)
        if clashes:
            raise PluginError("; ".join(clashes))

    def _register(self, plugin: object, info: PluginInfo, clashes: list[str]) -> None:
        """Run ``plugin``'s ``hpt_register``; its names are added only if all of them are free.

        A name another plugin has is described in ``clashes`` and the plugin
        adds nothing; a plugin that fails in any other way raises.
        """
        label = info.label
        if self._pm.is_registered(plugin):
            return
        if info.name in self._plugins:
            other = self._plugins[info.name]
            raise PluginError(
                f"two plugins are named {info.name!r}: {other.describe()} and {info.describe()}; "
                "uninstall one of them or register it under another name"
            )
        try:
            self._pm.register(plugin, name=label)
            _check_impls(self._pm, plugin)
        except (ValueError, pluggy.PluginValidationError) as exc:
            if self._pm.is_registered(plugin):
                self._pm.unregister(plugin)
            raise PluginError(f"plugin {label!r} cannot be registered: {exc}") from exc
        staged: dict[tuple[str, str], Callable[..., Any]] = {}
        try:
            for impl in self._pm.hook.hpt_register.get_hookimpls():
                if impl.plugin is plugin:
                    try:
                        impl.function(register=self._registrar(label, staged))
                    except PluginError as exc:
                        if repr(label) in str(exc):
                            raise
                        raise PluginError(f"plugin {label!r} failed in hpt_register: {exc}") from exc
                    except Exception as exc:
                        raise PluginError(
                            f"plugin {label!r} failed in hpt_register: {type(exc).__name__}: {exc}"
                        ) from exc
        except PluginError:
            self._pm.unregister(plugin)
            raise
        taken = [key for key in staged if key in self._owners]
        for kind, name in taken:
            first = self._owners[(kind, name)]
            ways = [f"{DISABLE_ENV}={p.name}" for p in (first, info) if p.source != "in-process"]
            fix = "uninstall one of them"
            if info.source == "in-process":
                fix = "register it under another name"
            if ways:
                fix += f", or disable one with {' or '.join(ways)}"
            clashes.append(f"{kind} {name!r} is registered by {first.describe()} and by {info.describe()}; {fix}")
        if taken:
            self._pm.unregister(plugin)
            return
        self._plugins[info.name] = info
        for (kind, name), factory in staged.items():
            self._factories[kind][name] = factory
            self._owners[(kind, name)] = info

    @staticmethod
    def _registrar(
        owner: str, staged: dict[tuple[str, str], Callable[..., Any]]
    ) -> Callable[[str, str, Callable[..., Any]], None]:
        def register(kind: str, name: str, factory: Callable[..., Any]) -> None:
            if kind not in KINDS:
                raise PluginError(f"plugin {owner!r} registers unknown kind {kind!r}; kinds are {', '.join(KINDS)}")
            if not isinstance(name, str) or not name:
                raise PluginError(f"plugin {owner!r} registers a {kind} with an invalid name {name!r}")
            if not callable(factory):
                raise PluginError(f"plugin {owner!r} registers {kind} {name!r} with a non-callable {factory!r}")
            if (kind, name) in staged:
                raise PluginError(f"plugin {owner!r} registers {kind} {name!r} twice")
            staged[(kind, name)] = factory

        return register

    def names(self, kind: str, *, disabled: Iterable[str] | None = None) -> list[str]:
        """Sorted registered names of ``kind``, without those of the ``disabled`` plugins."""
        self._check_kind(kind)
        hidden = _as_disabled(disabled)
        return sorted(n for n in self._factories[kind] if self._owners[(kind, n)].name not in hidden)

    def owner(self, kind: str, name: str) -> str:
        """The label of the plugin that registered ``name`` (see :meth:`plugin_info` for more)."""
        return self.plugin_info(kind, name).label

    def plugin_info(self, kind: str, name: str) -> PluginInfo:
        """The plugin that registered ``name``: its name, source and distribution."""
        self.get(kind, name)
        return self._owners[(kind, name)]

    def plugins(self) -> list[PluginInfo]:
        """Every plugin registered, in the order they were registered."""
        return list(self._plugins.values())

    def plugin_of(self, obj: object) -> PluginInfo | None:
        """The plugin ``obj`` comes from: a registered plugin object, or an instance of a registered class.

        ``None`` for anything else (an object of the caller's own class, or
        one a factory function built).
        """
        for info in self._plugins.values():
            if self._pm.get_plugin(info.label) is obj:
                return info
        for (kind, name), factory in ((key, self._factories[key[0]][key[1]]) for key in self._owners):
            if isinstance(factory, type) and type(obj) is factory:
                return self._owners[(kind, name)]
        return None

    def get(self, kind: str, name: str, *, disabled: Iterable[str] | None = None) -> Callable[..., Any]:
        """The factory registered as ``name`` of ``kind``; :class:`PluginNotFound` lists the others.

        A name registered by one of the ``disabled`` plugins is unknown.
        """
        self._check_kind(kind)
        hidden = _as_disabled(disabled)
        factory = self._factories[kind].get(name)
        info = self._owners.get((kind, name))
        if factory is not None and info is not None and info.name not in hidden:
            return factory
        known = ", ".join(self.names(kind, disabled=hidden)) or "none"
        if info is not None:
            problem = f"{kind} {name!r} comes from {info.describe()}, which is disabled here"
        else:
            problem = f"unknown {kind} {name!r}"
        listed = f"registered {kind} names" + (" (without the disabled plugins)" if hidden else "")
        raise PluginNotFound(f"{problem}; {listed}: {known}")

    def create(self, kind: str, spec: Any, *args: Any, disabled: Iterable[str] | None = None) -> Any:
        """A component built from a spec, or ``spec`` itself when it is already an object.

        ``spec`` is a registered name (``"bayes"``) or a mapping of a name and
        keyword options (``{"name": "bayes", "n_initial": 8}``); the factory
        is called with ``args`` and those options.  Options the factory's
        signature does not take raise :class:`ComponentSpecError` listing
        the ones it does.  A storage spec is a URL, or a mapping with a
        ``"url"`` (see :mod:`hpt_async.specs`); ``create("storage", scheme,
        url)`` also works.  Names of the ``disabled`` plugins are unknown.
        """
        if not is_spec(spec):
            return spec
        name, args, options = normalise(kind, spec, args)
        factory = self.get(kind, name, disabled=disabled)
        check_options(kind, name, factory, args, options)
        try:
            return factory(*args, **options)
        except (PluginError, ValueError, TypeError):
            raise
        except Exception as exc:
            owner = self._owners[(kind, name)].label
            message = f"{kind} {name!r} (from {owner!r}) failed to start: {type(exc).__name__}: {exc}"
            raise PluginError(message) from exc

    @staticmethod
    def _check_kind(kind: str) -> None:
        if kind not in KINDS:
            raise ValueError(f"unknown plugin kind {kind!r}; kinds are {', '.join(KINDS)}")


_registry: Registry | None = None
_registry_lock = threading.Lock()


def get_registry() -> Registry:
    """The process-wide registry, built on first use (a clash or a broken plugin raises each time)."""
    global _registry
    if _registry is None:
        with _registry_lock:
            if _registry is None:
                _registry = Registry()
    return _registry


def register_plugin(plugin: object, name: str | None = None) -> None:
    """Register an in-process plugin (module or object) in the process-wide registry."""
    get_registry().register_plugin(plugin, name)


Register = Callable[[str, str, Callable[..., Any]], None]
"""The type of the ``register`` callback that ``hpt_register`` receives."""
