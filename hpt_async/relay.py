"""Delivery of the lifecycle notifications to the objects of one tuner.

:class:`HookRelay` registers the objects a Tuner was given with pluggy and
delivers each lifecycle hook (``hpt_study_started`` ... ``hpt_study_ended``,
see :mod:`hpt_async.hookspecs`) to their implementations in the order pluggy
itself would call them, awaiting async implementations and isolating any
that raise.  Tracing every call to the log is switched on by
``HPT_ASYNC_TRACE_HOOKS=1`` (:data:`TRACE_ENV`).

The order of delivery, for one hook:

* Plain implementations hear the event in the order the objects were given
  (the Tuner gives its strategy, pruner, storage and executor first, then
  ``plugins=[...]`` and ``loggers=[...]`` in the order given).  The relay
  registers the objects with pluggy in reverse, and pluggy calls the
  implementation registered last first.
* ``@hookimpl(tryfirst=True)`` moves an implementation before the plain ones
  and ``@hookimpl(trylast=True)`` after them, as in pluggy.  Several
  ``tryfirst`` ones keep the order given among themselves; several
  ``trylast`` ones are called the other way round, the last given first
  (pluggy calls the ``trylast`` implementation registered first, first).

``@hookimpl(specname="hpt_trial_ended")`` lets a method of any name
implement a hook.  Wrappers (``wrapper=True``, ``hookwrapper=True``) are
refused with :class:`~hpt_async.PluginError` when the relay is built: the
hooks are notifications, and a wrapper would have nothing to wrap.
"""

from __future__ import annotations

import inspect
import linecache
import logging
import os
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import pluggy

from . import hookspecs
from .exceptions import PluginError

__all__ = ["LIFECYCLE_HOOKS", "TRACE_ENV", "Fire", "HookRelay", "implemented_hooks"]

log = logging.getLogger("hpt_async")

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
"""The notifications a :class:`HookRelay` delivers, in the order of a study's life."""

_HOOK_NAMES = frozenset(name for name in dir(hookspecs) if name.startswith("hpt_"))


def _manager() -> pluggy.PluginManager:
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    return pm


def _marks_of(pm: pluggy.PluginManager, plugin: object, scan: bool) -> list[tuple[str, str, Any]]:
    """``(name, hook, options)`` of each implementation marked on ``plugin``.

    By scanning its attributes (``name`` is the attribute's), or, without
    ``scan``, read from ``pm`` where ``plugin`` is registered (pluggy has
    already scanned it; ``name`` is the function's).
    """
    if not scan:
        return [
            (getattr(impl.function, "__name__", caller.name), caller.name, impl.opts)
            for caller in pm.get_hookcallers(plugin) or ()
            for impl in caller.get_hookimpls()
            if impl.plugin is plugin
        ]
    marks = []
    for attr in dir(plugin):
        opts = pm.parse_hookimpl_opts(plugin, attr)
        if opts is not None:
            marks.append((attr, opts.get("specname") or attr, opts))
    return marks


def _problem(marks: list[tuple[str, str, Any]]) -> str | None:
    """Why one of ``marks`` could not work as marked, or ``None``."""
    for name, hook, opts in marks:
        if hook not in _HOOK_NAMES:
            what = f"{name!r} is marked" if hook == name else f"{name!r} is marked as an implementation of {hook!r}"
            return f"{what} as a hook but no hook has that name; hooks are {sorted(_HOOK_NAMES)}"
        for option in ("wrapper", "hookwrapper"):
            if opts.get(option):
                return (
                    f"{name!r} is a wrapper ({option}=True) of hook {hook!r}; hpt-async hooks are "
                    "notifications and take plain implementations only"
                )
        if opts.get("tryfirst") and opts.get("trylast"):
            return f"{name!r} (hook {hook!r}) is marked both tryfirst=True and trylast=True; choose one"
    return None


def _check_impls(pm: pluggy.PluginManager, plugin: object) -> None:
    """Reject hook implementations of ``plugin`` that would never run, or not as marked.

    Works before or after ``plugin`` is registered with ``pm`` (it reads the
    marks only).  Raises :class:`pluggy.PluginValidationError` naming the
    attribute and the hook.
    """
    registered = pm.is_registered(plugin)
    problem = _problem(_marks_of(pm, plugin, scan=not registered))
    if problem is not None and registered:  # named by attribute rather than by function
        problem = _problem(_marks_of(pm, plugin, scan=True)) or problem
    if problem is not None:
        raise pluggy.PluginValidationError(plugin, problem)
    for attr in _HOOK_NAMES:
        if callable(getattr(plugin, attr, None)) and pm.parse_hookimpl_opts(plugin, attr) is None:
            raise pluggy.PluginValidationError(
                plugin, f"{attr!r} is not marked with @hpt_async.hookimpl, so it would never be called"
            )


_marks: pluggy.PluginManager | None = None  # reads hook marks only; nothing is registered in it


def implemented_hooks(plugin: object) -> list[str]:
    """The lifecycle hooks that ``plugin`` implements, in the order of :data:`LIFECYCLE_HOOKS`.

    A hook is implemented by a method marked ``@hookimpl`` that has the
    hook's name, or any name with ``@hookimpl(specname=...)``.
    """
    global _marks
    if _marks is None:
        _marks = _manager()
    pm = _marks
    found = set()
    for attr in dir(plugin):
        opts = pm.parse_hookimpl_opts(plugin, attr)
        if opts is not None:
            found.add(opts.get("specname") or attr)
    return [name for name in LIFECYCLE_HOOKS if name in found]


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
    """One implementation of one hook: what to call, its place in the delivery, its failures."""

    __slots__ = ("call", "failures", "function", "label", "position")

    def __init__(self, function: Callable[..., Any], argnames: tuple[str, ...], label: str, position: int) -> None:
        self.function = function
        self.call = _adapt(function, argnames)
        self.label = label
        self.position = position  # how many implementations are called once this one has been
        self.failures = 0


def _step(k: int, resumable: bool) -> list[str]:
    """The source that calls implementation ``k`` (0-based) of a delivery, see :func:`_delivery`."""
    n = k + 1
    if not resumable:
        return [
            "    try:",
            f"        result = c{k}(event, study)",
            "    except Exception:",
            f"        failed(i{k})",
            "    else:",
            "        if result is not None and isawaitable(result):",
            f"            return rest(fire, i{k}, result, event, study, [0, {n}])",
        ]
    return [
        f"if done < {n}:",
        "    try:",
        f"        result = c{k}(event, study)",
        "    except Exception:",
        f"        failed(i{k})",
        "    except BaseException:",
        f"        progress[1] = {n}  # interrupted: it is not called again",
        "        raise",
        "    else:",
        "        if result is not None and isawaitable(result):",
        f"            progress[1] = {n}",
        f"            return rest(fire, i{k}, result, event, study, progress)",
    ]


_deliveries: dict[tuple[int, bool], Callable[..., Fire]] = {}


def _delivery(count: int, trace: bool) -> Callable[..., Fire]:
    """A factory of callers for hooks with ``count`` implementations.

    ``make(entries, failed, rest, isawaitable, log, hook_name)`` returns
    ``fire(event, study, progress=None)``, which calls the ``(call, impl)``
    pairs of ``entries`` one after another, unrolled (a loop would cost more
    than the call of a plain implementation itself).  Each call is isolated:
    an exception goes to ``failed(impl)`` and the next one is called.  The
    first awaitable result hands the rest of the delivery to
    ``rest(fire, impl, awaitable, event, study, progress)``, whose result
    ``fire`` returns.  With ``progress``, the implementations before
    ``progress[1]`` are skipped and ``progress[1]`` ends up counting those
    called, so that a delivery interrupted while awaiting can be finished by
    calling ``fire`` again with the same list.  With ``trace``, each
    delivery is logged once.
    """
    key = (count, trace)
    make = _deliveries.get(key)
    if make is not None:
        return make
    lines = ["def make(entries, failed, rest, isawaitable, log, hook_name):"]
    for k in range(count):
        lines.append(f"    (c{k}, i{k}) = entries[{k}]")
    lines.append("    def fire(event, study, progress=None):")
    body = []
    if trace:
        body += [
            "if progress is None or not progress[1]:",
            "    log.debug('hook %s(event=%r)', hook_name, event)",
        ]
    body.append("if progress is None:")
    for k in range(count):
        body += _step(k, resumable=False)
    body += ["    return None", "done = progress[1]", f"progress[1] = {count}"]
    for k in range(count):
        body += _step(k, resumable=True)
    body.append("return None")
    lines += [f"        {line}" for line in body]
    lines.append("    return fire")
    source = "\n".join(lines) + "\n"
    filename = f"<hpt_async.relay: delivery to {count} implementations{' traced' if trace else ''}>"
    namespace: dict[str, Any] = {}
    exec(compile(source, filename, "exec"), namespace)
    linecache.cache[filename] = (len(source), None, source.splitlines(keepends=True), filename)  # for tracebacks
    make = _deliveries[key] = namespace["make"]
    return make


class HookRelay:
    """Delivers lifecycle notifications to the objects of one tuner.

    ``HookRelay(objects)`` registers each object (``None`` and repeats are
    skipped) and refuses, with :class:`~hpt_async.PluginError` naming the
    object and the hook, an implementation that could not run as marked: a
    wrapper, a misspelt hook name, a hook-named method without the mark.

    Implementations are called in the order pluggy itself would call them
    (see :mod:`hpt_async.relay`): plain ones in the order the objects were
    given, ``tryfirst`` ones before them and ``trylast`` ones after.  Each
    implementation is called on its own: one that raises is logged (with
    its traceback the first time) and counted in :attr:`errors` as
    ``"label.hook"``, and the others still run.  Awaitable results are
    awaited in order, before the next implementation is called.

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

    def __init__(self, objects: Iterable[object]) -> None:
        given: list[object] = []
        for obj in objects:
            if obj is not None and obj not in given:
                given.append(obj)
        self._pm = pm = _manager()
        labels: dict[str, str] = {}
        # In reverse: pluggy calls the implementation registered last first.
        for obj in reversed(given):
            label = getattr(obj, "name", None)
            if not isinstance(label, str):
                label = getattr(obj, "__name__", None) or type(obj).__name__
            key = f"{label}@{id(obj):x}"
            try:
                try:
                    pm.register(obj, name=key)
                except pluggy.PluginValidationError:
                    _check_impls(pm, obj)  # a clearer reason, when there is one
                    raise
                _check_impls(pm, obj)
            except (ValueError, pluggy.PluginValidationError) as exc:
                raise PluginError(f"plugin {label!r} cannot be activated: {exc}") from exc
            labels[key] = label
        self._trace = bool(os.environ.get(TRACE_ENV))
        self.errors: dict[str, int] = {}
        self._impls: dict[str, tuple[_Impl, ...]] = {}
        self._callers: dict[str, Fire | None] = {}
        for hook_name in LIFECYCLE_HOOKS:
            ordered = getattr(pm.hook, hook_name).get_hookimpls()[::-1]  # the order pluggy calls them in
            impls = tuple(
                _Impl(hookimpl.function, tuple(hookimpl.argnames), f"{labels[hookimpl.plugin_name]}.{hook_name}", i)
                for i, hookimpl in enumerate(ordered, 1)
            )
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

    def _make_caller(self, hook_name: str, impls: tuple[_Impl, ...]) -> Fire:
        """The caller of ``hook_name``: ``impls`` in order, from ``progress[1]`` on (see :func:`_delivery`)."""
        entries = tuple((impl.call, impl) for impl in impls)
        make = _delivery(len(entries), self._trace)
        return make(entries, self._failed, self._rest, inspect.isawaitable, log, hook_name)

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
