"""Checkpoints: the state of a running trial as bytes the tuner keeps for it.

An objective saves its state with ``await trial.checkpoint(state)`` (or
``trial.checkpoint(state)`` in a plain ``def`` objective) and gets it back
with ``trial.restore()``.  The state is turned into bytes where the
objective runs (a thread, a worker process, a Dask worker), only those bytes
travel to the tuner, and the study's storage keeps them.  Three forms are
accepted:

* ``bytes`` (or ``bytearray``/``memoryview``): kept as given, returned as
  ``bytes``; the objective serialises its state itself (e.g. with
  ``torch.save`` into a ``BytesIO``).
* A dict of numpy arrays (``{"w": w, "b": b}``; values anything
  :func:`numpy.asarray` turns into a non-object array, such as numbers):
  packed as ``.npz`` with ``allow_pickle=False`` and returned as a dict of
  arrays.  Nothing is pickled either way.
* Any other object, only with ``pickle=True``: pickled on the way in, and
  unpickled on the way out only when ``restore(pickle=True)`` asks for it.
  Unpickling runs code chosen by whoever wrote the bytes, and a study's
  storage may be a file shared with others, so both sides opt in.

Every encoded checkpoint starts with a short header naming its form, so
that :func:`decode_state` returns it in the form it was saved.  The helpers
here are public so that checkpoints read back from storage after a run
(:meth:`Storage.checkpoint <hpt_async.Storage.checkpoint>`) can be decoded,
and so that a dict of arrays can be stored without pickle anywhere else.
"""

from __future__ import annotations

import io
import pickle as _pickle
from collections.abc import Mapping
from typing import Any

from .exceptions import HptError

__all__ = ["CheckpointError", "decode_state", "encode_state", "pack_arrays", "state_kind", "unpack_arrays"]

_MAGIC = b"HPTCK1"
_KINDS = {b"B": "bytes", b"N": "arrays", b"P": "pickle"}
_CODES = {v: k for k, v in _KINDS.items()}


class CheckpointError(HptError, ValueError):
    """A state that cannot be checkpointed as asked, or bytes that are not a checkpoint."""


def pack_arrays(arrays: Mapping[str, Any]) -> bytes:
    """A dict of numpy arrays as ``.npz`` bytes, without pickle.

    Keys must be strings; each value goes through :func:`numpy.asarray` and
    must not give an object array (those would need pickle).  Raises
    :class:`CheckpointError` otherwise.
    """
    import numpy as np

    if not isinstance(arrays, Mapping):
        raise CheckpointError(f"pack_arrays takes a dict of arrays, got {type(arrays).__name__}")
    out: dict[str, Any] = {}
    for key, value in arrays.items():
        if not isinstance(key, str):
            raise CheckpointError(f"array names are strings, got {key!r}")
        try:
            arr = np.asarray(value)
        except Exception as exc:
            raise CheckpointError(f"array {key!r} is not an array: {type(exc).__name__}: {exc}") from exc
        if arr.dtype.hasobject:
            raise CheckpointError(
                f"array {key!r} has dtype object ({type(value).__name__}), which needs pickle: "
                "convert it to a numeric array, or checkpoint with pickle=True"
            )
        out[key] = arr
    buffer = io.BytesIO()
    np.savez(buffer, allow_pickle=False, **out)
    return buffer.getvalue()


def unpack_arrays(data: bytes) -> dict[str, Any]:
    """The dict of arrays :func:`pack_arrays` packed (loaded with ``allow_pickle=False``)."""
    import numpy as np

    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            return {name: npz[name] for name in npz.files}
    except Exception as exc:
        raise CheckpointError(f"not a packed dict of arrays: {type(exc).__name__}: {exc}") from exc


def _is_arrays(state: Any) -> bool:
    if not isinstance(state, Mapping) or not state:
        return False
    if not all(isinstance(k, str) for k in state):
        return False
    try:
        import numpy as np
    except ImportError:  # pragma: no cover - numpy ships with every supported install
        return False
    return all(isinstance(v, (np.ndarray, np.generic, int, float, complex, bool)) for v in state.values())


def encode_state(state: Any, *, pickle: bool = False) -> bytes:
    """``state`` as checkpoint bytes: bytes as they are, a dict of arrays as ``.npz``, else pickle.

    Anything but bytes and a dict of arrays (numpy arrays, numpy scalars or
    plain numbers) raises :class:`CheckpointError` unless ``pickle=True``.
    """
    if isinstance(state, (bytes, bytearray, memoryview)):
        return _MAGIC + b"B" + bytes(state)
    if _is_arrays(state):
        try:
            return _MAGIC + b"N" + pack_arrays(state)
        except CheckpointError:
            if not pickle:
                raise
    if not pickle:
        raise CheckpointError(
            f"a checkpoint is bytes or a dict of numpy arrays, got {type(state).__name__}; "
            "pass pickle=True to checkpoint any picklable object"
        )
    try:
        return _MAGIC + b"P" + _pickle.dumps(state, protocol=_pickle.HIGHEST_PROTOCOL)
    except Exception as exc:
        raise CheckpointError(f"the state cannot be pickled: {type(exc).__name__}: {exc}") from exc


def state_kind(data: bytes) -> str:
    """``"bytes"``, ``"arrays"`` or ``"pickle"``: the form checkpoint bytes were saved in."""
    if not isinstance(data, (bytes, bytearray, memoryview)) or bytes(data[: len(_MAGIC)]) != _MAGIC:
        raise CheckpointError("not checkpoint bytes (missing header)")
    code = bytes(data[len(_MAGIC) : len(_MAGIC) + 1])
    kind = _KINDS.get(code)
    if kind is None:
        raise CheckpointError(f"unknown checkpoint form {code!r}")
    return kind


def decode_state(data: bytes, *, pickle: bool = False) -> Any:
    """The state :func:`encode_state` encoded, in the form it was saved.

    A pickled checkpoint raises :class:`CheckpointError` unless
    ``pickle=True``: unpickling runs code chosen by whoever wrote the bytes.
    """
    kind = state_kind(data)
    body = bytes(data[len(_MAGIC) + 1 :])
    if kind == "bytes":
        return body
    if kind == "arrays":
        return unpack_arrays(body)
    if not pickle:
        raise CheckpointError(
            "this checkpoint was saved with pickle=True; restore it with pickle=True "
            "(only for checkpoints from a storage you trust)"
        )
    return _pickle.loads(body)
