"""Components as plain data: a name, or a mapping of a name and keyword options.

Wherever a Tuner takes a strategy, pruner, storage, executor or logger, it
takes either an object or a *spec*:

* a string, the registered name: ``"bayes"``;
* a mapping with a ``"name"`` key and keyword options for the registered
  factory: ``{"name": "bayes", "n_initial": 8}``.  This is what a JSON or
  TOML configuration file holds.

Storages are named by URL: a string spec is the URL (its scheme is the
registered name), and a mapping gives the URL under ``"url"`` with the
other keys as options: ``{"url": "sqlite:///tuning.db", "timeout": 10}``
(``"name"``, when given, must be the URL's scheme).  The factory gets the
URL as its first positional argument, as it always has.

:func:`component_spec` turns a spec or an object back into a JSON-ready
mapping, to be stored with a study.  An object describes its options by an
optional method ``spec_options()`` returning a mapping of the keyword
options that rebuild it with its registered factory (see
:class:`SpecOptions`); without it only its ``name`` is known.
"""

from __future__ import annotations

import difflib
import inspect
import json
from collections.abc import Callable, Mapping
from typing import Any, Protocol, runtime_checkable

from .exceptions import PluginError

__all__ = ["ComponentSpecError", "SpecOptions", "check_options", "component_spec", "is_spec", "normalise"]


class ComponentSpecError(PluginError, TypeError):
    """A component spec is malformed, or names options its factory does not take.

    A :class:`~hpt_async.PluginError` (hence an :class:`~hpt_async.HptError`)
    and a ``TypeError``, like a call with a wrong keyword argument.
    """


@runtime_checkable
class SpecOptions(Protocol):
    """The optional protocol by which a component describes its own options.

    ``spec_options()`` returns the keyword options (JSON-serialisable values)
    that the factory registered under the component's ``name`` takes to
    build an equivalent component.
    """

    def spec_options(self) -> Mapping[str, Any]:
        """Keyword options that rebuild this component with its registered factory."""
        ...


def _storage_scheme(url: Any) -> str:
    from .contracts.storage import parse_storage_url  # storage imports the plugin machinery

    return parse_storage_url(url)


def is_spec(obj: Any) -> bool:
    """True for a spec (a string or a mapping), false for a component object."""
    return isinstance(obj, str | Mapping)


def normalise(
    kind: str, spec: str | Mapping[str, Any], args: tuple[Any, ...] = ()
) -> tuple[str, tuple[Any, ...], dict[str, Any]]:
    """``(name, positional args, keyword options)`` for a string or mapping spec.

    For ``kind == "storage"`` without positional ``args``, a string is a URL
    and a mapping may carry the URL under ``"url"``; the URL becomes the
    single positional argument.
    """
    if isinstance(spec, str):
        if kind == "storage" and not args:
            return _storage_scheme(spec), (spec,), {}
        return spec, args, {}
    if not isinstance(spec, Mapping):
        raise ComponentSpecError(f"a {kind} spec is a name or a mapping with a 'name' key, got {spec!r}")
    options = dict(spec)
    bad_keys = [key for key in options if not isinstance(key, str)]
    if bad_keys:
        raise ComponentSpecError(f"{kind} spec {spec!r}: option names are strings, got {bad_keys[0]!r}")
    name = options.pop("name", None)
    if kind == "storage" and "url" in options:
        if args:
            raise ComponentSpecError(f"storage spec {spec!r} has a 'url' and the URL was also given as an argument")
        url = options.pop("url")
        scheme = _storage_scheme(url)
        if name is None:
            name = scheme
        elif name != scheme:
            raise ComponentSpecError(
                f"storage spec {spec!r}: 'name' {name!r} is not the scheme of its URL ({scheme!r})"
            )
        args = (url,)
    if name is None:
        missing = "a 'name' key" + (" (or a 'url')" if kind == "storage" else "")
        raise ComponentSpecError(f"{kind} spec {spec!r} has no {missing}: say which {kind}, e.g. {{'name': ...}}")
    if not isinstance(name, str) or not name:
        raise ComponentSpecError(f"{kind} spec {spec!r}: 'name' must be a non-empty string, got {name!r}")
    return name, args, options


def check_options(
    kind: str, name: str, factory: Callable[..., Any], args: tuple[Any, ...], options: Mapping[str, Any]
) -> None:
    """Refuse options the factory's signature does not take, listing the ones it does.

    A factory taking ``**kwargs`` accepts any option (and checks them itself);
    one whose signature cannot be read is not checked.
    """
    if not options:
        return
    try:
        signature = inspect.signature(factory)
    except (TypeError, ValueError):
        return
    params = signature.parameters.values()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return
    try:
        bound = signature.bind_partial(*args).arguments
    except TypeError as exc:
        raise ComponentSpecError(f"{kind} {name!r}: {exc}") from None
    valid = [
        p.name
        for p in params
        if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY) and p.name not in bound
    ]
    unknown = [key for key in options if key not in valid]
    if unknown:
        parts = []
        for key in unknown:
            close = difflib.get_close_matches(key, valid, n=1)
            parts.append(f"{key!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
        takes = f"its options are {', '.join(valid)}" if valid else "it takes no options"
        plural = "s" if len(parts) > 1 else ""
        raise ComponentSpecError(f"{kind} {name!r} got unknown option{plural} {', '.join(parts)}; {takes}")
    try:
        signature.bind(*args, **options)
    except TypeError as exc:
        raise ComponentSpecError(f"{kind} {name!r}: {exc}") from None


def _json_ready(kind: str, name: str, options: Mapping[str, Any]) -> dict[str, Any]:
    for key, value in options.items():
        try:
            json.dumps(value, allow_nan=False)
        except (TypeError, ValueError):
            raise ComponentSpecError(
                f"{kind} {name!r}: option {key!r} = {value!r} cannot be stored as JSON; "
                "give a JSON value (number, string, boolean, null, list or mapping of them)"
            ) from None
    return {"name": name, **options}


def component_spec(kind: str, obj_or_spec: Any) -> dict[str, Any]:
    """A JSON-serialisable mapping ``{"name": ..., **options}`` describing a component.

    * A spec (a string or a mapping) gives its normalised form:
      ``"bayes"`` -> ``{"name": "bayes"}``; a storage URL ``"sqlite:///x.db"``
      -> ``{"name": "sqlite", "url": "sqlite:///x.db"}``.
    * An object gives ``{"name": obj.name}`` (its class's qualified name when
      it has no string ``name``), plus the options of its ``spec_options()``
      method when it has one; a storage's string ``url`` attribute is
      included as ``"url"``.

    The result can be handed back to ``Registry.create`` to build an
    equivalent component.  Options that are not JSON values raise
    :class:`ComponentSpecError`.
    """
    if is_spec(obj_or_spec):
        name, args, options = normalise(kind, obj_or_spec)
        if kind == "storage" and args:
            options = {"url": args[0], **options}
        return _json_ready(kind, name, options)
    obj = obj_or_spec
    name = getattr(obj, "name", None)
    if not isinstance(name, str) or not name:
        cls = type(obj)
        name = f"{cls.__module__}.{cls.__qualname__}"
    options: dict[str, Any] = {}
    url = getattr(obj, "url", None)
    if kind == "storage" and isinstance(url, str):
        options["url"] = url
    method = getattr(obj, "spec_options", None)
    if callable(method):
        extra = method()
        if not isinstance(extra, Mapping) or not all(isinstance(k, str) for k in extra):
            raise ComponentSpecError(
                f"{kind} {name!r}: spec_options() must return a mapping of option names, got {extra!r}"
            )
        options.update(extra)
    options.pop("name", None)
    return _json_ready(kind, name, options)
