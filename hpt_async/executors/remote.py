"""Running an objective outside the tuner's process: pickling, the remote trial handle, outcomes.

The building blocks shared by executors whose objectives run in another
process (``executor="process"``, the Dask plugin), for executor plugins of
the same kind:

* :func:`dumps` / :func:`loads`: the wire format.  Objects are pickled with
  ``cloudpickle`` when it is installed, so that lambdas, closures and
  functions of a ``__main__`` script cross by value; with plain
  :mod:`pickle` otherwise, where a function crosses by reference (its module
  must be importable on the other side).  :data:`PICKLER` says which.
* :func:`pickled` pickles or raises ``TypeError`` naming the part of the
  object that could not be pickled (:func:`describe_unpicklable`).
* On the worker side, :class:`RemoteTrial` is the handle the objective gets:
  a :class:`~hpt_async.SyncTrial` whose ``report`` calls a function that
  carries the report to the tuner and returns its decision.
  :func:`run_objective` calls the objective and turns whatever happened into
  an *outcome*, a dict of plain values and bytes.  Its ``checkpoint`` and
  ``restore`` encode and decode the state in the worker and call a second
  function, ``request(kind, payload)``, that carries checkpoint bytes to
  the tuner and back.
* On the tuner side, :func:`answer_report` applies a report to the live
  :class:`~hpt_async.Trial` and returns the decision to send back;
  :func:`outcome_result` returns the objective's value or raises what it
  raised, with the remote traceback text as the ``__cause__`` (so a FAILED
  trial keeps it).  :func:`answer_request` serves a worker's checkpoint
  requests.
"""

from __future__ import annotations

import functools
import inspect
import pickle
import time
import traceback
import types
from collections.abc import Callable, Iterator, Mapping
from typing import Any, NoReturn

from ..exceptions import HptError, TrialCancelled, TrialPruned
from ..trial import SyncTrial, Trial, TrialState

__all__ = [
    "PICKLER",
    "RemoteError",
    "RemoteTraceback",
    "RemoteTrial",
    "Reply",
    "Request",
    "answer_report",
    "answer_request",
    "apply_constraints",
    "apply_user_attrs",
    "describe_unpicklable",
    "dumps",
    "loads",
    "outcome_exception",
    "outcome_result",
    "params_blob",
    "pickled",
    "raised_outcome",
    "run_objective",
]

try:
    import cloudpickle as _cloudpickle
except ImportError:  # pragma: no cover - cloudpickle is present wherever distributed is
    _cloudpickle = None

PICKLER: str = "cloudpickle" if _cloudpickle is not None else "pickle"
"""The library :func:`dumps` uses: ``"cloudpickle"`` when importable, else ``"pickle"``."""


def __getattr__(name: str) -> Any:
    if name == "Decision":  # the earlier name of Reply, which read as hpt_async.contracts.Decision
        import warnings

        warnings.warn("hpt_async.executors.remote.Decision is now Reply", DeprecationWarning, stacklevel=2)
        return Reply
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


Reply = tuple[str, Any]
"""A reply to a report: ``("continue", None)``, ``("stop", message)``,
``("cancelled", message)``, ``("raise", packed_exception)``, or
``("update", (params_blob, should_restore, donor))`` when the trial goes on
with new hyperparameters (an EXPLOIT; ``donor`` is the trial whose
checkpoint it took over, or ``None``)."""

Request = Callable[[str, Any], Reply]
"""``request(kind, payload)`` in a worker: ``("checkpoint", data)`` or
``("restore", None)``; the reply is ``("ok", result)``, ``("cancelled",
message)`` or ``("raise", packed_exception)``."""


def dumps(obj: Any) -> bytes:
    """Pickle ``obj`` (with cloudpickle when installed) at the highest protocol."""
    if _cloudpickle is not None:
        return _cloudpickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    return pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)


def loads(data: bytes) -> Any:
    """Unpickle what :func:`dumps` made."""
    return pickle.loads(data)


# -- naming what cannot be pickled --------------------------------------------------

_MAX_DEPTH = 8
_MAX_CHILDREN = 200


def _global_names(code: types.CodeType) -> Iterator[str]:
    yield from code.co_names
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from _global_names(const)


def _children(obj: Any) -> list[tuple[str, Any]]:
    """The labelled parts pickling ``obj`` by value would pickle too."""
    out: list[tuple[str, Any]] = []
    if isinstance(obj, functools.partial):
        out.append(("function", obj.func))
        out.extend((f"argument {i}", a) for i, a in enumerate(obj.args))
        out.extend((f"keyword argument {k!r}", v) for k, v in obj.keywords.items())
    elif inspect.ismethod(obj):
        out.append(("bound object", obj.__self__))
        out.append(("function", obj.__func__))
    elif isinstance(obj, types.FunctionType):
        code = obj.__code__
        for name, cell in zip(code.co_freevars, obj.__closure__ or (), strict=False):
            try:
                out.append((f"closure variable {name!r}", cell.cell_contents))
            except ValueError:  # an empty cell
                continue
        defaults = obj.__defaults__ or ()
        names = code.co_varnames[code.co_argcount - len(defaults) : code.co_argcount]
        out.extend((f"default of argument {n!r}", v) for n, v in zip(names, defaults, strict=False))
        out.extend((f"default of argument {k!r}", v) for k, v in (obj.__kwdefaults__ or {}).items())
        seen: set[str] = set()
        for name in _global_names(code):
            if name in obj.__globals__ and name not in seen:
                seen.add(name)
                out.append((f"global {name!r}", obj.__globals__[name]))
        out.extend((f"attribute {k!r}", v) for k, v in vars(obj).items())
    elif isinstance(obj, Mapping):
        for k, v in obj.items():
            out.append((f"key {k!r}", k))
            out.append((f"item {k!r}", v))
    elif isinstance(obj, (list, tuple, set, frozenset)):
        out.extend((f"item {i}", v) for i, v in enumerate(obj))
    elif not isinstance(obj, type):
        state = getattr(obj, "__dict__", None)
        if isinstance(state, dict):
            out.extend((f"attribute {k!r}", v) for k, v in state.items())
        for cls in type(obj).__mro__:
            for slot in getattr(cls, "__slots__", ()):
                if isinstance(slot, str) and slot not in ("__dict__", "__weakref__") and hasattr(obj, slot):
                    out.append((f"attribute {slot!r}", getattr(obj, slot)))
        call = inspect.getattr_static(type(obj), "__call__", None)
        if isinstance(call, types.FunctionType) and not out:
            out.append(("__call__", call))
    return out[:_MAX_CHILDREN]


def _describe(obj: Any) -> str:
    kind = type(obj)
    if isinstance(obj, (types.FunctionType, types.BuiltinFunctionType, types.MethodType)):
        return f"{kind.__name__} {getattr(obj, '__qualname__', obj)!r}"
    return f"a {kind.__module__}.{kind.__qualname__}" if kind.__module__ != "builtins" else f"a {kind.__qualname__}"


def describe_unpicklable(obj: Any, name: str = "object") -> str | None:
    """Name the innermost part of ``obj`` that cannot be pickled, or ``None`` when it pickles.

    Returns e.g. ``"objective -> closure variable 'lock' (a _thread.lock):
    TypeError: cannot pickle '_thread.lock' object"``.
    """
    try:
        dumps(obj)
    except Exception as exc:
        error: BaseException = exc
    else:
        return None
    path = [f"{name} ({_describe(obj)})"]
    visited = {id(obj)}
    current = obj
    for _ in range(_MAX_DEPTH):
        for label, child in _children(current):
            if id(child) in visited:
                continue
            visited.add(id(child))
            try:
                dumps(child)
            except Exception as exc:
                error = exc
                path.append(f"{label} ({_describe(child)})")
                current = child
                break
        else:
            break
    return f"{' -> '.join(path)}: {type(error).__name__}: {error}"


def pickled(obj: Any, what: str, advice: str = "") -> bytes:
    """``dumps(obj)``, or ``TypeError`` naming what in ``obj`` could not be pickled.

    ``what`` names ``obj`` in the message (e.g. ``"the objective"``);
    ``advice`` is appended to it.
    """
    if PICKLER == "pickle":
        owner = obj if isinstance(obj, (types.FunctionType, type)) else type(obj)
        if getattr(owner, "__module__", None) == "__main__":
            raise TypeError(
                f"{what} is defined in the __main__ script, which a worker process does not import: "
                f"plain pickle sends it by name. Move it into a module, or install cloudpickle.{advice}"
            )
    try:
        return dumps(obj)
    except Exception as exc:
        detail = describe_unpicklable(obj, what) or f"{what}: {type(exc).__name__}: {exc}"
        hint = ""
        if PICKLER == "pickle" and isinstance(obj, types.FunctionType) and "<" in obj.__qualname__:
            hint = " Plain pickle sends functions by name: define it at module level or install cloudpickle."
        raise TypeError(f"{what} cannot be pickled ({PICKLER}): {detail}.{hint}{advice}") from exc


def params_blob(trial: Trial) -> bytes:
    """The trial's pickled parameters, or ``TypeError`` naming the parameter that cannot be pickled."""
    try:
        return dumps(trial.params)
    except Exception:
        for key, value in trial.params.items():
            pickled(value, f"parameter {key!r} of trial {trial.number} (value {value!r})")
        raise


# -- exceptions across processes ------------------------------------------------------


class RemoteTraceback(HptError):
    """The traceback text of an exception raised in another process (set as ``__cause__``)."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text

    def __str__(self) -> str:
        return "\n" + self.text.rstrip("\n")


class RemoteError(HptError):
    """An exception raised by an objective in another process that cannot be recreated here.

    Its message starts with the original type's qualified name.  Used when
    the exception does not unpickle in the tuner's process, and for
    ``BaseException``\\ s such as ``SystemExit`` that must not unwind the tuner.
    It is an ``Exception`` like the error it stands for, and an
    :class:`~hpt_async.HptError` because hpt-async raises it; an objective's
    own exception that does unpickle is re-raised as itself.
    """


def _pack_exception(exc: BaseException) -> tuple[bytes | None, str, str]:
    try:
        blob: bytes | None = dumps(exc)
    except Exception:
        blob = None
    kind = type(exc)
    return blob, f"{kind.__module__}.{kind.__qualname__}", str(exc)


def _unpack_exception(packed: tuple[bytes | None, str, str]) -> Exception:
    blob, qualname, message = packed
    if blob is not None:
        try:
            exc = loads(blob)
        except Exception:
            exc = None
        if isinstance(exc, Exception):
            return exc
    short = qualname.removeprefix("builtins.")
    return RemoteError(f"{short}: {message}" if message else short)


# -- the worker side --------------------------------------------------------------------


def _raise_answer(trial: Trial, code: str, payload: Any, what: str) -> NoReturn:
    """Raise what the tuner's answer ``code`` to ``what`` (a report or a request) of ``trial`` means."""
    if code == "cancelled":
        if not trial.ended:
            trial.end(TrialState.CANCELLED)
        raise TrialCancelled(payload)
    if code == "raise":
        raise _unpack_exception(payload)
    raise RuntimeError(f"unexpected answer {code!r} to {what} of trial {trial.number}")


class _RemoteSession:
    """What a worker-side :class:`Trial` reports through: one exchange with the tuner per report."""

    __slots__ = ("attrs_sent", "exchange", "request")

    def __init__(self, exchange: Callable[[int, float, bytes | None], Reply], request: Request | None) -> None:
        self.exchange = exchange
        self.request = request
        self.attrs_sent: dict[str, Any] = {}

    def _ask(self, trial: Trial, kind: str, payload: Any) -> Any:
        if self.request is None:
            raise RuntimeError(f"this executor cannot carry checkpoints of trial {trial.number} to the tuner")
        code, result = self.request(kind, payload)
        if code == "ok":
            return result
        _raise_answer(trial, code, result, f"a {kind} request")

    async def on_checkpoint(self, trial: Trial, data: bytes) -> None:
        self._ask(trial, "checkpoint", data)

    async def on_restore(self, trial: Trial) -> bytes | None:
        return self._ask(trial, "restore", None)

    def attrs_update(self, trial: Trial) -> bytes | None:
        """The pickled user attributes when they changed since the last exchange, else ``None``."""
        if trial.user_attrs == self.attrs_sent:
            return None
        self.attrs_sent = dict(trial.user_attrs)
        return dumps(self.attrs_sent)

    async def on_report(self, trial: Trial, step: int, value: float) -> None:
        sent = trial.values_at(step) or value  # every objective's value when the report gave several
        code, payload = self.exchange(step, sent, self.attrs_update(trial))
        if code == "continue":
            return
        if code == "update":
            params_blob, restore, donor = payload
            trial.exploit(loads(params_blob), step, donor, restore=bool(restore))
            return
        if code == "stop":
            raise TrialPruned(payload)
        _raise_answer(trial, code, payload, "a report")


def _drive(async_fn: Callable[..., Any], *args: Any) -> Any:
    """Run a coroutine function that never suspends to its end, synchronously."""
    coro = async_fn(*args)
    try:
        coro.send(None)
    except StopIteration as stop:
        return stop.value
    coro.close()
    raise RuntimeError("a remote trial's report suspended; it must not")


class RemoteTrial(SyncTrial):
    """The handle an objective gets in a worker process: a :class:`~hpt_async.SyncTrial`.

    ``report(value, step=...)`` blocks until the tuner has stored the value
    and its pruner decided, and raises :class:`~hpt_async.TrialPruned` when
    the trial must stop (or :class:`~hpt_async.TrialCancelled` when the
    study no longer wants it).  ``set_user_attr`` checks at once that the
    value can be pickled; attributes travel to the tuner with the next
    report and with the outcome.  ``checkpoint`` and ``restore`` go through
    ``request`` (see :data:`Request`); ``should_restore`` starts as given
    (a retry of a LOST trial that left a checkpoint) and follows the
    tuner's EXPLOIT answers.  ``objectives`` is the tuner-side trial's
    :attr:`~hpt_async.Trial.objectives` (how many values a report may
    carry).
    """

    __slots__ = ("_remote",)

    def __init__(
        self,
        number: int,
        params: dict[str, Any],
        exchange: Callable[[int, float, bytes | None], Reply],
        started: float | None = None,
        request: Request | None = None,
        should_restore: bool = False,
        objectives: int | None = None,
    ) -> None:
        self._remote = _RemoteSession(exchange, request)
        begun = time.time() if started is None else started
        trial = Trial(number, params, self._remote, begun, should_restore=should_restore, objectives=objectives)
        super().__init__(trial, _drive)

    def set_user_attr(self, key: str, value: Any) -> None:
        """Attach a picklable, JSON-serialisable value to the trial; kept in its record."""
        try:
            dumps(value)
        except Exception as exc:
            raise TypeError(f"user attribute {key!r} cannot be sent to the tuner: {type(exc).__name__}: {exc}") from exc
        super().set_user_attr(key, value)

    def _attrs_update(self) -> bytes | None:
        return self._remote.attrs_update(self._trial)


def run_objective(objective: Callable[..., Any], trial: RemoteTrial) -> dict[str, Any]:
    """Call ``objective(trial)`` and describe what happened as an outcome dict.

    ``kind`` is ``"value"`` (``value``: the pickled result), ``"pruned"`` or
    ``"cancelled"`` (``message``), or ``"raised"`` (``exc``: the packed
    exception, ``traceback``: its formatted text, ``memory``: True for a
    ``MemoryError``).  ``attrs`` holds the user attributes not yet sent.
    """
    outcome: dict[str, Any]
    try:
        value = objective(trial)
    except TrialPruned as exc:
        outcome = {"kind": "pruned", "message": str(exc)}
    except TrialCancelled as exc:
        outcome = {"kind": "cancelled", "message": str(exc)}
    except BaseException as exc:
        outcome = raised_outcome(exc)
    else:
        try:
            outcome = {"kind": "value", "value": dumps(value)}
        except Exception as exc:
            outcome = raised_outcome(TypeError(f"the objective returned {value!r}, which cannot be pickled: {exc}"))
    try:
        outcome["attrs"] = trial._attrs_update()
    except Exception as exc:  # set_user_attr checked each value; a mutated one may still fail
        outcome = raised_outcome(TypeError(f"the trial's user attributes cannot be pickled: {exc}"))
    if trial.constraints is not None:
        outcome["constraints"] = trial.constraints
    return outcome


def raised_outcome(exc: BaseException, note: str = "") -> dict[str, Any]:
    """The outcome for an exception raised by (or while loading) the objective."""
    text = "".join(traceback.format_exception(exc))
    if note:
        text = f"{note}\n{text}"
    return {
        "kind": "raised",
        "exc": _pack_exception(exc),
        "traceback": text,
        "memory": isinstance(exc, MemoryError),
    }


# -- the tuner side ---------------------------------------------------------------------


def apply_user_attrs(trial: Trial, attrs: bytes | None) -> None:
    """Copy user attributes sent by a worker onto the live trial (ignored once it ended)."""
    if attrs is None or trial.ended:
        return
    for key, value in loads(attrs).items():
        trial.set_user_attr(key, value)


def apply_constraints(trial: Trial, outcome: Mapping[str, Any]) -> None:
    """Copy the constraint values a worker's objective set onto the live trial (ignored once it ended)."""
    constraints = outcome.get("constraints")
    if constraints is not None and not trial.ended:
        trial.set_constraints(constraints)


async def answer_report(trial: Trial, step: int, value: float, attrs: bytes | None) -> Reply:
    """Store a worker's report on the live trial and return the decision to send back."""
    apply_user_attrs(trial, attrs)
    changes = len(trial.schedule)
    try:
        await trial.report(value, step=step)
    except TrialPruned as exc:
        return "stop", str(exc)
    except TrialCancelled as exc:
        return "cancelled", str(exc)
    except Exception as exc:
        return "raise", _pack_exception(exc)
    schedule = trial.schedule
    if len(schedule) != changes:
        return "update", (dumps(trial.params), trial.should_restore, schedule[-1].donor)
    return "continue", None


async def answer_request(trial: Trial, kind: str, payload: Any) -> Reply:
    """Serve a worker's ``("checkpoint", data)`` or ``("restore", None)`` request on the live trial."""
    try:
        if kind == "checkpoint":
            await trial.save_checkpoint(payload)
            return "ok", None
        if kind == "restore":
            return "ok", await trial.load_checkpoint()
        raise ValueError(f"unknown request {kind!r} from trial {trial.number}")
    except TrialCancelled as exc:
        return "cancelled", str(exc)
    except Exception as exc:
        return "raise", _pack_exception(exc)


def outcome_exception(outcome: Mapping[str, Any]) -> Exception:
    """The exception a ``"raised"`` outcome stands for, its remote traceback as ``__cause__``."""
    exc = _unpack_exception(outcome["exc"])
    exc.__cause__ = RemoteTraceback(outcome["traceback"])
    return exc


def outcome_result(trial: Trial, outcome: Mapping[str, Any]) -> Any:
    """Apply an outcome to the live trial: return the objective's value or raise what it raised."""
    apply_user_attrs(trial, outcome.get("attrs"))
    apply_constraints(trial, outcome)
    kind = outcome["kind"]
    if kind == "value":
        try:
            return loads(outcome["value"])
        except Exception as exc:
            raise TypeError(f"the objective's return value cannot be unpickled here: {exc}") from exc
    if kind == "pruned":
        raise TrialPruned(outcome["message"])
    if kind == "cancelled":
        raise TrialCancelled(outcome["message"])
    if kind == "raised":
        exc = outcome_exception(outcome)
        raise exc from exc.__cause__
    raise RuntimeError(f"unknown outcome {kind!r} for trial {trial.number}")
