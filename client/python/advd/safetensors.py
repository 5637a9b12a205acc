"""Reading the safetensors bytes advd exports (``advctl export``, the
``export`` request with ``"format": "safetensors"``), with the standard
library alone, or into numpy arrays or torch tensors when those are there.

Format (what client/export.c writes): a little-endian u64 N, N bytes of
JSON header, then the tensor bytes. The header maps each tensor name to
``{"dtype": "F32", "shape": [...], "data_offsets": [begin, end]}``
(offsets into the bytes after the header) and ``"__metadata__"`` to a
string-to-string object: the expanded model spec (``model_spec``),
``input_shape`` ("CxHxW"), ``classes``, ``job``, ``checkpoint``,
``epoch``, ``step`` and every key of the job's training spec.
"""
from __future__ import annotations

import json
import struct
import sys
from array import array
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

from .errors import ProtocolError

__all__ = ["Array", "load", "pick_backend"]

_DTYPES = {"F32": ("f", 4)}


@dataclass
class Array:
    """A tensor without numpy or torch: its ``shape`` and its float32
    values in row-major order (``data``, an ``array('f')``)."""

    shape: Tuple[int, ...]
    data: array

    def tolist(self) -> Any:
        """The values as nested lists of the tensor's shape."""
        flat: List[Any] = list(self.data)
        for dim in reversed(self.shape[1:]):
            flat = [flat[i:i + dim] for i in range(0, len(flat), dim)]
        return flat if self.shape else flat[0]

    def __repr__(self) -> str:
        return f"Array(shape={self.shape}, dtype=float32)"


def pick_backend(backend: Optional[str]) -> str:
    """``"torch"``, ``"numpy"`` or ``"array"``: the one asked for, or (for
    ``None``) torch when importable, else numpy, else the standard library."""
    if backend is not None:
        if backend not in ("torch", "numpy", "array"):
            raise ValueError(f"unknown backend '{backend}' (expected torch, numpy or array)")
        return backend
    for name in ("torch", "numpy"):
        try:
            __import__(name)
            return name
        except ImportError:
            pass
    return "array"


def _header(data: bytes) -> Tuple[Dict[str, Any], int]:
    if len(data) < 8:
        raise ProtocolError("safetensors data shorter than its 8-byte header length")
    (n,) = struct.unpack_from("<Q", data, 0)
    if 8 + n > len(data):
        raise ProtocolError(f"safetensors header of {n} bytes runs past the data")
    try:
        header = json.loads(data[8:8 + n])
    except ValueError as e:
        raise ProtocolError(f"safetensors header is not JSON: {e}") from None
    if not isinstance(header, dict):
        raise ProtocolError("safetensors header is not a JSON object")
    return header, 8 + n


def _tensor(name: str, info: Any, body: memoryview, backend: str) -> Any:
    if not isinstance(info, dict) or info.get("dtype") not in _DTYPES:
        raise ProtocolError(f"tensor '{name}': unsupported entry {info!r:.80}")
    code, size = _DTYPES[info["dtype"]]
    shape = tuple(int(d) for d in info["shape"])
    begin, end = (int(x) for x in info["data_offsets"])
    count = 1
    for d in shape:
        count *= d
    if not 0 <= begin <= end <= len(body) or end - begin != count * size:
        raise ProtocolError(f"tensor '{name}': data_offsets {begin}..{end} do not fit "
                            f"shape {list(shape)}")
    raw = body[begin:end]
    if backend == "array":
        values = array(code)
        values.frombytes(raw)
        if sys.byteorder != "little":
            values.byteswap()
        return Array(shape, values)
    import numpy as np
    arr = np.frombuffer(raw, dtype="<f4").reshape(shape).copy()
    if backend == "numpy":
        return arr
    import torch
    return torch.from_numpy(arr)


def load(data: bytes, backend: Optional[str] = None) -> Tuple[Dict[str, Any], Dict[str, str]]:
    """Parse safetensors ``data``: ``(tensors, metadata)``, the tensors by
    name in file order as torch tensors, numpy arrays or :class:`Array`
    (``backend``: ``"torch"``, ``"numpy"``, ``"array"`` or ``None`` for
    the best one installed)."""
    backend = pick_backend(backend)
    header, start = _header(data)
    meta = header.pop("__metadata__", None) or {}
    body = memoryview(data)[start:]
    tensors = {name: _tensor(name, info, body, backend) for name, info in header.items()}
    return tensors, {str(k): str(v) for k, v in meta.items()}
