"""The plugin machinery: a process-wide registry of names, and a per-tuner hook relay.

* :class:`Registry` maps ``(kind, name)`` to a factory.  It is built once per
  process from :data:`DEFAULT_PLUGINS` and then from the entry-point group
  ``hpt_async`` (unless ``HPT_ASYNC_DISABLE_PLUGIN_AUTOLOAD`` is set), by
  calling each plugin's ``hpt_register(register)`` hook.  Builtins and
  third-party plugins go through exactly the same call.
* :class:`HookRelay` holds the objects one Tuner was given and delivers the
  lifecycle notifications to them, awaiting async implementations and
  isolating any that raise.  Tracing every call to the log is switched on by
  ``HPT_ASYNC_TRACE_HOOKS=1``.
"""

from __future__ import annotations

import importlib
import inspect
import logging
import os
import threading
from collections.abc import Awaitable, Callable, Iterable
from importlib.metadata import entry_points
from typing import Any

import pluggy

from . import hookspecs
from .exceptions import PluginError, PluginNotFound

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

TRACE_ENV = "HPT_ASYNC_TRACE_HOOKS"
"""Set to log every lifecycle hook call at DEBUG level on the ``hpt_async`` logger."""

LIFECYCLE_HOOKS: tuple[str, ...] = (
    "hpt_study_started",
    "hpt_trial_created",
    "hpt_trial_started",
    "hpt_trial_reported",
    "hpt_trial_ended",
    "hpt_study_ended",
)


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


def _check_impls(pm: pluggy.PluginManager, plugin: object) -> None:
    """Reject hook implementations of ``plugin`` that would silently never run."""
    for caller in pm.get_hookcallers(plugin) or ():
        for impl in caller.get_hookimpls():
            if impl.plugin is plugin and (impl.hookwrapper or impl.wrapper):
                raise pluggy.PluginValidationError(
                    plugin, f"hook {caller.name!r} is a wrapper; hpt-async hooks take plain implementations only"
                )
    known = {name for name in dir(hookspecs) if name.startswith("hpt_")}
    for attr in dir(plugin):
        if not attr.startswith("hpt_"):
            continue
        function = getattr(plugin, attr, None)
        if not callable(function):
            continue
        marked = pm.parse_hookimpl_opts(plugin, attr) is not None
        if attr not in known and marked:
            raise pluggy.PluginValidationError(
                plugin, f"{attr!r} is marked as a hook but no hook has that name; hooks are {sorted(known)}"
            )
        if attr in known and not marked:
            raise pluggy.PluginValidationError(
                plugin, f"{attr!r} is not marked with @hpt_async.hookimpl, so it would never be called"
            )


_marks: pluggy.PluginManager | None = None  # reads hook marks only; nothing is registered in it


def implemented_hooks(plugin: object) -> list[str]:
    """The lifecycle hooks that ``plugin`` implements (methods marked ``@hookimpl`` with a hook's name)."""
    global _marks
    if _marks is None:
        _marks = _new_manager()
    pm = _marks
    return [
        name
        for name in LIFECYCLE_HOOKS
        if callable(getattr(plugin, name, None)) and pm.parse_hookimpl_opts(plugin, name) is not None
    ]


Fire = Callable[[Any, Any, "list[int] | None"], "Awaitable[None] | None"]
"""A hook's precomputed caller: ``fire(event, study, progress=None)`` (see :meth:`HookRelay.caller`)."""


def _adapt(function: Callable[..., Any], argnames: tuple[str, ...]) -> Callable[[Any, Any], Any]:
    """``function`` as a callable of ``(event, study)``, whatever subset of them it takes."""
    if argnames == ("event", "study"):
        return function
    if argnames == ("event",):
        return lambda event, study: function(event)
    if argnames == ("study",):
        return lambda event, study: function(study)
    if argnames == ():
        return lambda event, study: function()
    if argnames == ("study", "event"):
        return lambda event, study: function(study, event)

    def call(event: Any, study: Any) -> Any:  # pluggy only admits subsets of the spec's names
        values = {"event": event, "study": study}
        return function(*[values[a] for a in argnames])

    return call


class _Impl:
    __slots__ = ("argnames", "call", "failures", "function", "label")

    def __init__(self, function: Callable[..., Any], argnames: tuple[str, ...], label: str) -> None:
        self.function = function
        self.argnames = argnames
        self.call = _adapt(function, argnames)
        self.label = label
        self.failures = 0


class HookRelay:
    """Delivers lifecycle notifications to the objects of one tuner.

    Each implementation is called on its own: one that raises is logged
    (with its traceback the first time) and counted in :attr:`errors`, and
    the others still run.  Awaitable results are awaited in order.

    Delivery is precomputed when the relay is built: for each hook, the
    attribute of the same name without ``hpt_`` (``relay.trial_ended``...)
    is a caller ``fire(event, study, progress=None)``, or ``None`` when no
    object implements the hook (and tracing is off), so that the tuner
    builds an event only when someone listens.  The caller calls the plain
    implementations directly and returns ``None``; only when one of them
    returns an awaitable does it return an awaitable that finishes the
    delivery, which the caller of ``fire`` must await.
    """

    study_started: Fire | None
    trial_created: Fire | None
    trial_started: Fire | None
    trial_reported: Fire | None
    trial_ended: Fire | None
    study_ended: Fire | None

    def __init__(self, plugins: Iterable[object]) -> None:
        self._pm = _new_manager()
        for plugin in plugins:
            if plugin is None or self._pm.is_registered(plugin):
                continue
            label = getattr(plugin, "name", None)
            if not isinstance(label, str):
                label = getattr(plugin, "__name__", None) or type(plugin).__name__
            try:
                self._pm.register(plugin, name=f"{label}@{id(plugin):x}")
                _check_impls(self._pm, plugin)
            except (ValueError, pluggy.PluginValidationError) as exc:
                raise PluginError(f"plugin {label!r} cannot be activated: {exc}") from exc
        self._trace = bool(os.environ.get(TRACE_ENV))
        self.errors: dict[str, int] = {}
        self._impls: dict[str, list[_Impl]] = {}
        self._callers: dict[str, Fire | None] = {}
        for hook_name in LIFECYCLE_HOOKS:
            caller = getattr(self._pm.hook, hook_name)
            impls = []
            # In the order the objects were given (pluggy itself would call the last one first).
            for impl in caller.get_hookimpls():
                owner = impl.plugin_name.rsplit("@", 1)[0]
                impls.append(_Impl(impl.function, tuple(impl.argnames), f"{owner}.{hook_name}"))
            self._impls[hook_name] = impls
            fire = self._make_caller(hook_name, impls) if impls or self._trace else None
            self._callers[hook_name] = fire
            setattr(self, hook_name[4:], fire)

    def reset(self) -> None:
        """Forget the failures counted so far (a new run starts)."""
        self.errors = {}
        for impls in self._impls.values():
            for impl in impls:
                impl.failures = 0

    def listens(self, hook_name: str) -> bool:
        """True when some object implements ``hook_name`` (events are built only then)."""
        return self._callers[hook_name] is not None

    def caller(self, hook_name: str) -> Fire | None:
        """The precomputed caller of ``hook_name``, or ``None`` when nobody listens."""
        return self._callers[hook_name]

    async def emit(self, hook_name: str, progress: list[int] | None = None, **kwargs: Any) -> None:
        """Call every implementation of ``hook_name`` with its subset of ``event`` and ``study``.

        With ``progress``, ``progress[1]`` counts the implementations already
        called, so that an emission interrupted by cancellation can be
        finished by calling again with the same list.
        """
        fire = self._callers[hook_name]
        if fire is not None:
            pending = fire(kwargs.get("event"), kwargs.get("study"), progress)
            if pending is not None:
                await pending

    def _failed(self, impl: _Impl) -> None:
        impl.failures += 1
        self.errors[impl.label] = impl.failures
        if impl.failures == 1:
            log.exception("plugin hook %s raised; it is skipped and the study goes on", impl.label)

    def _make_caller(self, hook_name: str, impls: list[_Impl]) -> Fire:
        calls = tuple(impl.call for impl in impls)
        count = len(calls)
        trace = self._trace
        failed = self._failed
        isawaitable = inspect.isawaitable

        if count == 1 and not trace:  # the common case, without the loop
            call, impl = calls[0], impls[0]

            def fire_one(event: Any, study: Any, progress: list[int] | None = None) -> Awaitable[None] | None:
                if progress is not None:
                    if progress[1] >= 1:
                        return None
                    progress[1] = 1
                try:
                    result = call(event, study)
                except Exception:
                    failed(impl)
                    return None
                if result is not None and isawaitable(result):
                    return self._rest(fire_one, impl, result, event, study, [0, 1] if progress is None else progress)
                return None

            return fire_one

        if count == 2 and not trace:  # a logger pair (console and jsonl at a trial end)
            call_a, call_b = calls
            impl_a, impl_b = impls

            def fire_two(event: Any, study: Any, progress: list[int] | None = None) -> Awaitable[None] | None:
                if progress is not None and progress[1]:
                    return fire(event, study, progress)  # resuming an interrupted delivery
                if progress is not None:
                    progress[1] = 1
                try:
                    result = call_a(event, study)
                except Exception:
                    failed(impl_a)
                    result = None
                if result is not None and isawaitable(result):
                    return self._rest(fire, impl_a, result, event, study, [0, 1] if progress is None else progress)
                if progress is not None:
                    progress[1] = 2
                try:
                    result = call_b(event, study)
                except Exception:
                    failed(impl_b)
                    return None
                if result is not None and isawaitable(result):
                    return self._rest(fire, impl_b, result, event, study, [0, 2] if progress is None else progress)
                return None

        def fire(event: Any, study: Any, progress: list[int] | None = None) -> Awaitable[None] | None:
            if trace:
                log.debug("hook %s(event=%r)", hook_name, event)
            i = 0 if progress is None else progress[1]
            while i < count:
                call = calls[i]
                i += 1
                if progress is not None:
                    progress[1] = i  # counted before the call: an interrupted one is not called again
                try:
                    result = call(event, study)
                except Exception:
                    failed(impls[i - 1])
                    continue
                if result is not None and isawaitable(result):
                    return self._rest(
                        fire, impls[i - 1], result, event, study, [0, i] if progress is None else progress
                    )
            return None

        if count == 2 and not trace:
            return fire_two
        return fire

    async def _rest(
        self, fire: Fire, impl: _Impl, awaitable: Awaitable[Any], event: Any, study: Any, progress: list[int]
    ) -> None:
        """Await what ``impl`` returned, then deliver to the implementations after it."""
        try:
            await awaitable
        except Exception:
            self._failed(impl)
        pending = fire(event, study, progress)
        if pending is not None:
            await pending
