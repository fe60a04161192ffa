"""The plugin machinery: a process-wide registry of names, and a per-tuner hook relay.

* :class:`Registry` maps ``(kind, name)`` to a factory.  It is built once per
  process from :data:`DEFAULT_PLUGINS` and then from the entry-point group
  ``hpt_async`` (unless ``HPT_ASYNC_DISABLE_PLUGIN_AUTOLOAD`` is set), by
  calling each plugin's ``hpt_register(register)`` hook.  Builtins and
  third-party plugins go through exactly the same call.
* :class:`HookRelay`, the per-tuner delivery of lifecycle notifications, is in :mod:`hpt_async.relay`.
"""

from __future__ import annotations

import importlib
import logging
import os
import threading
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Any

import pluggy

from . import hookspecs
from .exceptions import PluginError, PluginNotFound
from .relay import TRACE_ENV, HookRelay, _check_impls, implemented_hooks

__all__ = [
    "AUTOLOAD_ENV",
    "DEFAULT_PLUGINS",
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
    "hpt_async.pruners.median",
    "hpt_async.pruners.asha",
    "hpt_async.pruners.hyperband",
    "hpt_async.storage.memory",
    "hpt_async.storage.sqlite",
    "hpt_async.executors.inloop",
    "hpt_async.executors.thread",
    "hpt_async.executors.process",
    "hpt_async.loggers.console",
    "hpt_async.loggers.jsonl",
)
"""Modules of the builtin plugins, registered like any third-party plugin."""

ENTRY_POINT_GROUP = "hpt_async"
"""The entry-point group third-party distributions declare their plugin under."""

AUTOLOAD_ENV = "HPT_ASYNC_DISABLE_PLUGIN_AUTOLOAD"
"""Set (to anything but empty) to skip the entry-point group."""


def _new_manager() -> pluggy.PluginManager:
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    return pm


class Registry:
    """Names of strategies, pruners, storages, loggers and executors.

    ``Registry(autoload=False)`` skips the entry points (the environment
    variable :data:`AUTOLOAD_ENV` does the same for the process-wide one).
    """

    def __init__(self, *, defaults: bool = True, autoload: bool | None = None) -> None:
        self._pm = _new_manager()
        self._factories: dict[str, dict[str, Callable[..., Any]]] = {k: {} for k in KINDS}
        self._owners: dict[tuple[str, str], str] = {}
        # Names that installed distributions registered twice: unusable, but only they are.
        self._clashes: dict[tuple[str, str], list[str]] = {}
        if defaults:
            for module_name in DEFAULT_PLUGINS:
                self.register_plugin(importlib.import_module(module_name), name=module_name)
        if autoload is None:
            autoload = not os.environ.get(AUTOLOAD_ENV)
        if autoload:
            self._load_entry_points()

    def _load_entry_points(self) -> None:
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            try:
                plugin = ep.load()
            except Exception as exc:
                raise PluginError(
                    f"plugin {ep.name!r} ({ep.value}) from entry-point group {ENTRY_POINT_GROUP!r} "
                    f"failed to load: {type(exc).__name__}: {exc}. "
                    f"Set {AUTOLOAD_ENV}=1 to start without third-party plugins."
                ) from exc
            self._register(plugin, f"{ep.name} ({ep.value})", strict=False)

    def register_plugin(self, plugin: object, name: str | None = None) -> None:
        """Register a plugin module or object and run its ``hpt_register`` hook.

        A name that is already registered raises :class:`PluginError` naming
        both plugins.  (Between two installed distributions found through
        entry points, a clash instead makes only that name unusable: asking
        for it raises the same error, and every other name still works.)
        """
        self._register(plugin, name, strict=True)

    def _register(self, plugin: object, name: str | None, *, strict: bool) -> None:
        label = name or getattr(plugin, "__name__", None) or repr(plugin)
        if self._pm.is_registered(plugin):
            return
        try:
            self._pm.register(plugin, name=label)
            _check_impls(self._pm, plugin)
        except (ValueError, pluggy.PluginValidationError) as exc:
            if self._pm.is_registered(plugin):
                self._pm.unregister(plugin)
            raise PluginError(f"plugin {label!r} cannot be registered: {exc}") from exc
        for impl in self._pm.hook.hpt_register.get_hookimpls():
            if impl.plugin is plugin:
                try:
                    impl.function(register=self._registrar(label, strict))
                except PluginError:
                    raise
                except Exception as exc:
                    raise PluginError(f"plugin {label!r} failed in hpt_register: {type(exc).__name__}: {exc}") from exc

    def _registrar(self, owner: str, strict: bool) -> Callable[[str, str, Callable[..., Any]], None]:
        def register(kind: str, name: str, factory: Callable[..., Any]) -> None:
            if kind not in self._factories:
                raise PluginError(f"plugin {owner!r} registers unknown kind {kind!r}; kinds are {', '.join(KINDS)}")
            if not isinstance(name, str) or not name:
                raise PluginError(f"plugin {owner!r} registers a {kind} with an invalid name {name!r}")
            if not callable(factory):
                raise PluginError(f"plugin {owner!r} registers {kind} {name!r} with a non-callable {factory!r}")
            if name in self._factories[kind]:
                if not strict:
                    self._clashes.setdefault((kind, name), [self._owners[(kind, name)]]).append(owner)
                    log.warning("%s %r is registered by both %s", kind, name, " and ".join(self._clashes[(kind, name)]))
                    return
                raise PluginError(
                    f"{kind} {name!r} is registered twice: by {self._owners[(kind, name)]!r} and by {owner!r}"
                )
            self._factories[kind][name] = factory
            self._owners[(kind, name)] = owner

        return register

    def names(self, kind: str) -> list[str]:
        """Sorted registered names of ``kind``."""
        self._check_kind(kind)
        return sorted(self._factories[kind])

    def owner(self, kind: str, name: str) -> str:
        """The plugin that registered ``name``."""
        self.get(kind, name)
        return self._owners[(kind, name)]

    def get(self, kind: str, name: str) -> Callable[..., Any]:
        """The factory registered as ``name`` of ``kind``; :class:`PluginNotFound` lists the others."""
        self._check_kind(kind)
        clash = self._clashes.get((kind, name))
        if clash:
            owners = " and ".join(repr(o) for o in clash)
            raise PluginError(f"{kind} {name!r} is registered twice: by {owners}; uninstall one of them")
        try:
            return self._factories[kind][name]
        except KeyError:
            known = ", ".join(sorted(self._factories[kind])) or "none"
            raise PluginNotFound(f"unknown {kind} {name!r}; registered {kind} names: {known}") from None

    def create(self, kind: str, spec: Any, *args: Any) -> Any:
        """An instance from a registered name (the factory gets ``args``), or ``spec`` itself."""
        if isinstance(spec, str):
            factory = self.get(kind, spec)
            try:
                return factory(*args)
            except (PluginError, ValueError, TypeError):
                raise
            except Exception as exc:
                owner = self._owners[(kind, spec)]
                message = f"{kind} {spec!r} (from {owner!r}) failed to start: {type(exc).__name__}: {exc}"
                raise PluginError(message) from exc
        return spec

    @staticmethod
    def _check_kind(kind: str) -> None:
        if kind not in KINDS:
            raise ValueError(f"unknown plugin kind {kind!r}; kinds are {', '.join(KINDS)}")


_registry: Registry | None = None
_registry_lock = threading.Lock()


def get_registry() -> Registry:
    """The process-wide registry, built on first use."""
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
