"""A Tuner's components, created from their specs and resolved once when the Tuner is built.

:func:`resolve` turns what the user gave (registered names, mappings with a
``"name"`` and options, or objects) into the strategy, pruner, storage,
executor, loggers and plugins of one tuner, checks each against its
contract in :mod:`hpt_async.contracts`, and reads each declared capability
once, so that the tuner calls bound methods and never probes an object
while trials run.
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Any

from .contracts import Decision, Exploit, Pruner, Strategy
from .executors.inloop import is_async_callable
from .plugins import Registry
from .relay import HookRelay, implemented_hooks
from .specs import ComponentSpecError, component_spec, is_spec

__all__ = ["Components", "label", "resolve"]


def label(obj: Any) -> str:
    """The name a component goes by in messages: its ``name`` attribute, else its class name."""
    name = getattr(obj, "name", None)
    return name if isinstance(name, str) else type(obj).__name__


def _overrides(obj: Any, base: type, method: str) -> bool:
    """True when ``obj`` has its own callable ``method`` (not the default of ``base``)."""
    if callable(getattr(obj, "__dict__", {}).get(method)):
        return True  # set on the instance itself
    function = getattr(type(obj), method, None)
    if function is None:
        return callable(getattr(obj, method, None))
    return callable(function) and function is not getattr(base, method, None)


def _declared(obj: Any, base: type, flag: str, method: str, kind: str) -> bool:
    """Whether ``obj`` declares ``flag``; an undeclared override of ``method`` still counts, with a warning."""
    if getattr(obj, flag, False):
        return True
    if _overrides(obj, base, method):
        warnings.warn(
            f"{kind} {label(obj)!r} defines {method}() without declaring {flag} = True; "
            f"declare it (the undeclared form will stop working in a later release)",
            DeprecationWarning,
            stacklevel=4,
        )
        return True
    return False


def _spec(kind: str, given: Any, obj: Any) -> dict[str, Any]:
    """The JSON description of a component kept with the study: the spec given, else the object's own."""
    try:
        return component_spec(kind, given if is_spec(given) else obj)
    except ComponentSpecError:
        return {"name": label(obj)}  # options that are not JSON values are not kept


def accepts_keyword(function: Callable[..., Any], keyword: str) -> bool:
    try:
        parameters = inspect.signature(function).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(p.name == keyword or p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters)


@dataclass(slots=True)
class Components:
    """The resolved components of one Tuner and the calls the tuner makes on them."""

    strategy: Any
    pruner: Any | None
    storage: Any
    executor: Any
    loggers: list[Any]
    plugins: list[Any]
    #: The decider at reports: the pruner, or a strategy that declares ``decides``; ``None`` for none.
    decider: Any | None
    decider_kind: str
    #: The pruner promotes PAUSED trials (promotion mode).
    promotes: bool
    #: The strategy's ``retained_checkpoints``, or ``None``.
    retained: Callable[[Any], Collection[int]] | None
    #: ``tell`` of the strategy and of the pruner, ``None`` for one that does nothing (not awaited at all).
    strategy_tell: Callable[..., Any] | None
    pruner_tell: Callable[..., Any] | None
    check_output: bool
    #: ``storage.open`` takes ``settings=`` (seed and component specs kept with the study).
    storage_settings: bool
    #: Delivers the lifecycle notifications to every component, plugin and logger.
    relay: HookRelay
    specs: dict[str, Any] = field(default_factory=dict)

    def check_answer(self, answer: Any) -> Decision | Exploit:
        """The decider's answer, or ``TypeError``/``ValueError`` saying what is wrong with it."""
        if isinstance(answer, Exploit):
            if self.decider_kind != "strategy":
                raise TypeError("only a strategy that declares decides = True answers Exploit(...)")
            return answer
        if answer is Decision.EXPLOIT:
            raise TypeError("EXPLOIT is answered as Exploit(params, donor), which carries the new configuration")
        if answer is Decision.PAUSE and not self.promotes:
            raise ValueError("PAUSE is only answered by a pruner whose promotes attribute is true")
        if answer is Decision.CONTINUE or answer is Decision.STOP or answer is Decision.PAUSE:
            return answer
        raise TypeError(f"expected a Decision or an Exploit, got {answer!r}")


def resolve(
    registry: Registry,
    objective: Callable[..., Any] | None,
    *,
    strategy: Any,
    pruner: Any,
    storage: Any,
    executor: Any,
    loggers: Any,
    plugins: Any,
    disabled: frozenset[str] = frozenset(),
    objectives: int = 1,
) -> Components:
    """Create and check the components of one Tuner (see the module docstring).

    Components of the plugins named in ``disabled`` are unknown to this call.
    """
    strat = registry.create("strategy", strategy, disabled=disabled)
    bind = getattr(strat, "bind_registry", None)
    if callable(bind):  # a strategy that creates another (auto) does so from this tuner's registry
        bind(registry, disabled)
    if not callable(getattr(strat, "ask", None)):
        raise TypeError(f"strategy {strat!r} has no ask() method")
    if not callable(getattr(strat, "tell", None)):
        raise TypeError(f"strategy {strat!r} has no tell() method (subclass hpt_async.contracts.Strategy)")
    prun = None if pruner is None else registry.create("pruner", pruner, disabled=disabled)
    if prun is not None and not callable(getattr(prun, "decide", None)):
        raise TypeError(f"pruner {prun!r} has no decide() method")
    if objectives > 1:
        for kind, obj in (("strategy", strat), ("pruner", prun)):
            if obj is not None and not getattr(obj, "multi_objective", False):
                advice = getattr(obj, "multi_objective_advice", None) or (
                    "use strategy 'random', 'sobol', 'grid' or 'evolution', pruner 'asha' or 'hyperband', "
                    "or a component that declares multi_objective = True"
                )
                raise ValueError(
                    f"{kind} {label(obj)!r} optimises a single objective; this study has {objectives} directions "
                    f"({advice})"
                )
    promotes = prun is not None and bool(getattr(prun, "promotes", False)) and callable(getattr(prun, "promote", None))

    decider, kind = prun, "pruner"
    if _declared(strat, Strategy, "decides", "decide", "strategy"):
        if prun is not None:
            raise ValueError(
                f"strategy {label(strat)!r} decides at reports itself (it may EXPLOIT); "
                f"it cannot be paired with pruner {label(prun)!r}: drop pruner="
            )
        decider, kind = strat, "strategy"
    retained = None
    if _declared(strat, Strategy, "retains_checkpoints", "retained_checkpoints", "strategy"):
        retained = strat.retained_checkpoints

    store = registry.create("storage", storage, disabled=disabled)
    if not callable(getattr(store, "open", None)):
        raise TypeError(f"storage {store!r} has no open() method")

    if executor is None:
        executor = "async" if objective is not None and is_async_callable(objective) else "thread"
    execu = registry.create("executor", executor, disabled=disabled)
    plugins = list(plugins)
    if objective is not None:
        execu.check(objective)
    logs = [registry.create("logger", lg, disabled=disabled) for lg in (["console"] if loggers is None else loggers)]

    # The tuner's own components hear events first, then plugins and loggers in the order given.
    relay = HookRelay([strat, prun, store, execu, *plugins, *logs])
    # After the relay, which names a misspelt or wrongly marked hook more precisely.
    for kind_, objects in (("logger", logs), ("plugin", plugins)):
        for obj in objects:
            if not implemented_hooks(obj):
                raise TypeError(
                    f"{kind_} {obj!r} implements no lifecycle hook: give an object with methods "
                    "marked @hpt_async.hookimpl (hpt_trial_ended, ...)"
                )
    specs = {"strategy": _spec("strategy", strategy, strat), "executor": _spec("executor", executor, execu)}
    if prun is not None:
        specs["pruner"] = _spec("pruner", pruner, prun)
    return Components(
        strategy=strat,
        pruner=prun,
        storage=store,
        executor=execu,
        loggers=logs,
        plugins=plugins,
        decider=decider,
        decider_kind=kind,
        promotes=promotes,
        retained=retained,
        strategy_tell=strat.tell if _overrides(strat, Strategy, "tell") else None,
        pruner_tell=prun.tell if prun is not None and _overrides(prun, Pruner, "tell") else None,
        check_output=getattr(strat, "check_output", True) is not False,
        storage_settings=accepts_keyword(store.open, "settings"),
        relay=relay,
        specs=specs,
    )
