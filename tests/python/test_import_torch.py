"""Import: a model written by PyTorch (an nn.Sequential with its input
normalisation as a module holding the buffers "mean" and "std") imports with
`advctl import` and evaluates in advd to the clean accuracy PyTorch measures
on the same test images, within 0.1 point; in float32, float16 and bfloat16.

Needs python3-torch: skipped with a message where it is not installed."""
from __future__ import annotations

import gzip
import json
import os
import struct
import subprocess

import pytest

from conftest import ROOT

DATA = "/usr/share/datasets/fashion-mnist"
SPEC = "norm(0.286;0.353) conv8k3p1 relu maxpool2 fc10"
LIMIT = 500


def idx(path):
    with gzip.open(path, "rb") as f:
        magic, = struct.unpack(">I", f.read(4))
        dims = struct.unpack(">" + "I" * (magic & 0xff), f.read(4 * (magic & 0xff)))
        return dims, f.read()


def images(torch, np, split, k):
    p = "train" if split == "train" else "t10k"
    (n, h, w), pixels = idx(os.path.join(DATA, f"{p}-images-idx3-ubyte.gz"))
    _, labels = idx(os.path.join(DATA, f"{p}-labels-idx1-ubyte.gz"))
    x = np.frombuffer(pixels, np.uint8)[:k * h * w].astype(np.float32) / 255
    y = np.frombuffer(labels, np.uint8)[:k].astype(np.int64)
    return torch.from_numpy(x).reshape(k, 1, h, w), torch.from_numpy(y)


def save(torch, state, path, dt):
    """safetensors by hand (the safetensors package may be missing too):
    the weights in dt, the norm buffers in float32 (the spec's constants)."""
    kinds = {torch.float32: ("F32", torch.int32), torch.float16: ("F16", torch.int16),
             torch.bfloat16: ("BF16", torch.int16)}
    header, body, off = {"__metadata__": {"format": "pt"}}, b"", 0
    for name, t in state.items():
        d = torch.float32 if name.endswith((".mean", ".std")) else dt
        raw = t.detach().to(d).contiguous().view(kinds[d][1]).numpy().tobytes()
        header[name] = {"dtype": kinds[d][0], "shape": list(t.shape),
                        "data_offsets": [off, off + len(raw)]}
        body, off = body + raw, off + len(raw)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    path.write_bytes(struct.pack("<Q", len(text)) + text + body)


@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
def test_torch_model_imports_with_its_accuracy(daemon, tmp_path, dtype):
    torch = pytest.importorskip("torch", reason="python3-torch is not installed: "
                                                "the PyTorch import test is skipped")
    np = pytest.importorskip("numpy")
    advctl = os.path.abspath(os.environ.get("ADVCTL_BIN") or os.path.join(ROOT, "bin", "advctl"))
    if not os.access(advctl, os.X_OK):
        pytest.skip(f"no advctl at '{advctl}' (set ADVCTL_BIN)")
    nn = torch.nn

    class Norm(nn.Module):
        def __init__(self, mean, std):
            super().__init__()
            self.register_buffer("mean", torch.tensor([mean]))
            self.register_buffer("std", torch.tensor([std]))

        def forward(self, x):
            return (x - self.mean.view(1, -1, 1, 1)) / self.std.view(1, -1, 1, 1)

    torch.manual_seed(0)
    net = nn.Sequential(Norm(0.286, 0.353), nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(),
                        nn.MaxPool2d(2), nn.Flatten(), nn.Linear(8 * 14 * 14, 10))
    x, y = images(torch, np, "train", 2000)
    opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9)
    for i in range(0, 2000, 100):
        opt.zero_grad()
        nn.functional.cross_entropy(net(x[i:i + 100]), y[i:i + 100]).backward()
        opt.step()
    dt = getattr(torch, dtype)
    with torch.no_grad():  # the weights as the file holds them
        for p in net.parameters():
            p.copy_(p.to(dt).to(torch.float32))
    state = net.state_dict()
    assert set(state) == {"0.mean", "0.std", "1.weight", "1.bias", "5.weight", "5.bias"}
    path = tmp_path / f"torch-{dtype}.safetensors"
    save(torch, state, path, dt)
    tx, ty = images(torch, np, "test", LIMIT)
    with torch.no_grad():
        torch_acc = float((net(tx).argmax(1) == ty).float().mean())
    run = lambda *a: subprocess.run([advctl, "--socket", daemon.socket, *a],
                                    capture_output=True, text=True, timeout=300)
    r = run("import", str(path), "--model", SPEC, "--name", f"torch-{dtype}")
    assert r.returncode == 0, r.stderr
    job = r.stdout.split()[0]
    r = run("eval", job, "--attack", "fgsm", "--eps", "0", "--limit", str(LIMIT),
            "--no-sanity", "--no-calibration", "--wait")
    assert r.returncode == 0, r.stdout + r.stderr
    ev = r.stdout.split()[0]
    r = run("results", ev, "--json")
    row = json.loads(r.stdout.splitlines()[0])["results"][0]
    assert row["n"] == LIMIT
    assert abs(row["clean_acc"] - torch_acc) <= 0.001, (row["clean_acc"], torch_acc)

