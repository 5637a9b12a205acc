"""advd's model specs as PyTorch modules.

A spec is a line of tokens (README "Model specs"; core/model.c parses the
same): ``convN[kK][sS][pP]``, ``relu``, ``maxpoolK[sS]``, ``avgpoolK[sS]``,
``gap``, ``flatten``, ``fcN`` and ``res[N]``, a residual block
``relu(x + b(relu(a(x))))`` with 3x3 convolutions ``a`` and ``b`` that keep
the channels. A ``flatten`` goes in before the first ``fc`` of an image
input, as the engine does. Each token is one module of an ``nn.Sequential``,
so the parameter names (``0.weight``, ``2.a.bias``, ``7.weight``) are those
the engine gives its parameters and ``advctl export`` writes; for the
presets they are those of the PyTorch peer (../shared/peers/torch_peer.py).
"""
from __future__ import annotations

import re
from typing import Any, List, NamedTuple, Optional, Tuple

__all__ = ["Layer", "parse_spec", "parse_shape", "build"]

_TOKEN = re.compile(r"([a-z-]+)(\d+)?((?:[a-z]\d+)*)$")


class Layer(NamedTuple):
    """One module of the model: its kind and its settings, and the
    activation shape (C, H, W) it takes."""

    kind: str           # conv relu maxpool avgpool gap flatten fc res
    n: int              # channels / outputs / window (0 when none)
    k: int = 0
    s: int = 1
    p: int = 0
    shape_in: Tuple[int, int, int] = (0, 0, 0)


def parse_shape(text: str) -> Tuple[int, int, int]:
    """``"1x28x28"`` as ``(1, 28, 28)``."""
    parts = text.split("x")
    if len(parts) != 3 or not all(p.isdigit() and int(p) > 0 for p in parts):
        raise ValueError(f"invalid input shape '{text}': expected CxHxW")
    c, h, w = (int(p) for p in parts)
    return c, h, w


def _token(text: str) -> Tuple[str, Optional[int], dict]:
    m = _TOKEN.match(text)
    if not m:
        raise ValueError(f"unknown layer '{text}'")
    opts = {o[0]: int(o[1:]) for o in re.findall(r"[a-z]\d+", m.group(3) or "")}
    return m.group(1), int(m.group(2)) if m.group(2) else None, opts


def parse_spec(spec: str, shape: Tuple[int, int, int]) -> List[Layer]:
    """The layers of an expanded spec (presets are expanded by advd; the
    ``model_spec`` of an export's metadata is), with their input shapes."""
    c, h, w = shape
    flat = False
    layers: List[Layer] = []
    for text in spec.split():
        word, num, opt = _token(text)
        here = (c, h, w)
        if word == "fc":
            if not flat:
                layers.append(Layer("flatten", 0, shape_in=here))
                c, h, w, flat = c * h * w, 1, 1, True
            layers.append(Layer("fc", num or 0, shape_in=(c, 1, 1)))
            c = num or 0
        elif word == "conv":
            k, s, p = opt.get("k", 3), opt.get("s", 1), opt.get("p", 0)
            layers.append(Layer("conv", num or 0, k, s, p, here))
            c, h, w = num or 0, (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1
        elif word in ("maxpool", "avgpool"):
            k = num or 0
            s = opt.get("s", k)
            layers.append(Layer(word, k, k, s, 0, here))
            h, w = (h - k) // s + 1, (w - k) // s + 1
        elif word == "res":
            layers.append(Layer("res", c, 3, 1, 1, here))
        elif word == "gap":
            layers.append(Layer("gap", 0, shape_in=here))
            h = w = 1
        elif word == "flatten":
            layers.append(Layer("flatten", 0, shape_in=here))
            c, h, w, flat = c * h * w, 1, 1, True
        elif word == "relu":
            layers.append(Layer("relu", 0, shape_in=here))
        else:
            raise ValueError(f"unknown layer '{text}' (expected conv, relu, maxpool, "
                             "avgpool, gap, flatten, fc or res)")
    return layers


def _residual_class() -> Any:
    """The residual block's module class, defined once torch is needed (so
    that importing advd never imports torch) and kept as ``Residual`` in
    this module, so that whole models pickle (``torch.save(model)``)."""
    cls = globals().get("Residual")
    if cls is not None:
        return cls
    import torch.nn as nn
    import torch.nn.functional as F

    class Residual(nn.Module):
        """relu(x + b(relu(a(x)))), both convolutions 3x3, padding 1."""

        def __init__(self, channels: int) -> None:
            super().__init__()
            self.a = nn.Conv2d(channels, channels, 3, padding=1)
            self.b = nn.Conv2d(channels, channels, 3, padding=1)

        def forward(self, x: Any) -> Any:
            return F.relu(x + self.b(F.relu(self.a(x))))

    Residual.__qualname__ = "Residual"  # found by pickle as advd.model.Residual
    globals()["Residual"] = Residual
    return Residual


def __getattr__(name: str) -> Any:
    if name == "Residual":
        return _residual_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def build(spec: str, shape: Tuple[int, int, int]) -> Any:
    """An ``nn.Sequential`` for ``spec`` on inputs of ``shape`` (C, H, W),
    with PyTorch's default initialisation (load the weights after)."""
    import torch.nn as nn

    residual = _residual_class()
    modules = []
    for layer in parse_spec(spec, shape):
        cin = layer.shape_in[0]
        if layer.kind == "conv":
            modules.append(nn.Conv2d(cin, layer.n, layer.k, stride=layer.s, padding=layer.p))
        elif layer.kind == "fc":
            modules.append(nn.Linear(cin, layer.n))
        elif layer.kind == "relu":
            modules.append(nn.ReLU())
        elif layer.kind == "maxpool":
            modules.append(nn.MaxPool2d(layer.k, layer.s))
        elif layer.kind == "avgpool":
            modules.append(nn.AvgPool2d(layer.k, layer.s))
        elif layer.kind == "gap":
            modules.append(nn.AdaptiveAvgPool2d(1))
        elif layer.kind == "flatten":
            modules.append(nn.Flatten())
        else:
            modules.append(residual(cin))
    return nn.Sequential(*modules)
