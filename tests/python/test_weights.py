"""Weights: the safetensors reader, model specs as nn.Sequential (names and
shapes those of the PyTorch peer), export in pieces (the same bytes
`advctl export` writes), state_dict, and torch_model reproducing the clean
accuracy advd stored for the very images of its final evaluation."""
from __future__ import annotations

import gzip
import json
import os
import struct
import subprocess
import sys
import zlib
from array import array

import pytest

import advd
import advd.model
import advd.safetensors as st
from conftest import FINAL_EVAL_LIMIT, ROOT, TINY, TINY_MODEL

PEER = os.path.join(ROOT, "..", "shared", "peers")
# The presets as the engine expands them (core/model.c) for 10 classes.
PRESETS = {
    "cnn-small": "conv32k3p1 relu maxpool2 conv64k3p1 relu maxpool2 fc128 relu fc10",
    "madry": "conv32k5p2 relu maxpool2 conv64k5p2 relu maxpool2 fc1024 relu fc10",
    "resnet-tiny": "conv16k3p1 relu res16 res16 conv32k3s2p1 relu res32 res32 gap fc10",
}


def safetensors_bytes(tensors, meta):
    """A safetensors file as client/export.c lays it out."""
    header, body, off = {"__metadata__": meta}, b"", 0
    for name, (shape, values) in tensors.items():
        raw = array("f", values).tobytes()
        header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [off, off + len(raw)]}
        body += raw
        off += len(raw)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + body


# ------------------------------------------------------------ safetensors


def test_safetensors_standard_library():
    data = safetensors_bytes({"0.weight": ([2, 3], range(6)), "0.bias": ([2], [0.5, -1])},
                             {"model_spec": "fc2", "input_shape": "1x1x3"})
    tensors, meta = st.load(data, "array")
    assert list(tensors) == ["0.weight", "0.bias"] and meta["model_spec"] == "fc2"
    assert tensors["0.weight"].shape == (2, 3)
    assert tensors["0.weight"].tolist() == [[0, 1, 2], [3, 4, 5]]
    assert tensors["0.bias"].tolist() == [0.5, -1.0]


def test_safetensors_numpy_and_torch():
    data = safetensors_bytes({"w": ([2, 2], [1, 2, 3, 4])}, {})
    np = pytest.importorskip("numpy")
    t, _ = st.load(data, "numpy")
    assert isinstance(t["w"], np.ndarray) and t["w"].dtype == np.float32
    assert t["w"].tolist() == [[1, 2], [3, 4]]
    torch = pytest.importorskip("torch")
    t, _ = st.load(data)
    assert isinstance(t["w"], torch.Tensor) and t["w"].shape == (2, 2)


def test_safetensors_damage_is_a_protocol_error():
    good = safetensors_bytes({"w": ([2], [1, 2])}, {})
    with pytest.raises(advd.ProtocolError, match="shorter than"):
        st.load(b"\x01", "array")
    with pytest.raises(advd.ProtocolError, match="runs past"):
        st.load(struct.pack("<Q", 999) + b"{}", "array")
    with pytest.raises(advd.ProtocolError, match="do not fit"):
        st.load(good[:-4], "array")
    with pytest.raises(ValueError, match="unknown backend"):
        st.load(good, "jax")


# ------------------------------------------------------------ model specs


def test_spec_shapes():
    layers = advd.model.parse_spec(PRESETS["resnet-tiny"], (1, 28, 28))
    assert [l.kind for l in layers] == ["conv", "relu", "res", "res", "conv", "relu", "res",
                                        "res", "gap", "flatten", "fc"]
    assert layers[4].shape_in == (16, 28, 28) and layers[6].shape_in == (32, 14, 14)
    assert layers[-1].shape_in == (32, 1, 1)
    layers = advd.model.parse_spec("conv4k3s2 avgpool2s1 flatten fc3", (3, 9, 9))
    assert layers[1].shape_in == (4, 4, 4) and layers[3].shape_in == (36, 1, 1)
    with pytest.raises(ValueError, match="unknown layer 'bogus'"):
        advd.model.parse_spec("bogus fc10", (1, 28, 28))


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_presets_match_the_peer(preset):
    pytest.importorskip("torch", reason="python3-torch is not installed")
    if not os.path.exists(os.path.join(PEER, "torch_peer.py")):
        pytest.skip("no ../shared/peers/torch_peer.py to compare with")
    sys.path.insert(0, PEER)
    try:
        import torch_peer
    finally:
        sys.path.remove(PEER)
    ours = advd.model.build(PRESETS[preset], (1, 28, 28)).state_dict()
    peer = torch_peer.model(preset).state_dict()
    assert [(k, tuple(v.shape)) for k, v in ours.items()] == \
        [(k, tuple(v.shape)) for k, v in peer.items()]


# ----------------------------------------------------------------- export


def test_export(trained, tmp_path):
    data, info = trained.export_bytes("latest")
    assert info["job"] == trained.id and info["format"] == "safetensors"
    assert info["size"] == len(data) and info["epoch"] == 1
    state, sinfo = trained.export_bytes("latest", format="state")
    assert sinfo["format"] == "state" and len(state) == sinfo["size"]
    assert zlib.crc32(state) == sinfo["checksum"]
    path = tmp_path / "m.safetensors"
    written = trained.export(path, checkpoint="best")
    assert written["path"] == str(path) and path.read_bytes() == data
    assert os.listdir(tmp_path) == ["m.safetensors"]


def test_export_matches_advctl(daemon, trained, tmp_path):
    advctl = os.path.abspath(os.environ.get("ADVCTL_BIN") or os.path.join(ROOT, "bin", "advctl"))
    if not os.access(advctl, os.X_OK):
        pytest.skip(f"no advctl at '{advctl}' to compare with (set ADVCTL_BIN)")
    out = tmp_path / "advctl.safetensors"
    r = subprocess.run([advctl, "--socket", daemon.socket, "export", str(trained.id),
                        "-o", str(out)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert out.read_bytes() == trained.export_bytes("latest")[0]


def test_small_pieces(trained, monkeypatch):
    whole, _ = trained.export_bytes("latest")
    pics = trained.images("corruptions", 1, as_pil=False)
    monkeypatch.setattr(advd.client, "PIECE", 1000)
    assert trained.export_bytes("latest")[0] == whole
    # A picture past one piece comes by name (here: forced, in pieces of 1000).
    data, first, same = advd.client._pieces(trained.client, "images", (), job=pics.job.id,
                                            name="corruptions.png")
    assert same and first["size"] == len(data) > 1000
    assert data == pics.raw["corruptions.png"]


def test_export_starts_again_when_the_checkpoint_changes(trained, monkeypatch):
    whole, _ = trained.export_bytes("latest")
    monkeypatch.setattr(advd.client, "PIECE", 4096)
    real, offsets = trained.client.call, []

    def call(cmd, **args):
        r = real(cmd, **args)
        offsets.append(args.get("offset"))
        if len(offsets) == 2:  # as if a newer "latest" came between two pieces
            r["checksum"] += 1
        return r

    monkeypatch.setattr(trained.client, "call", call)
    assert trained.export_bytes("latest")[0] == whole
    assert offsets[:3] == [0, 4096, 0]


def test_export_errors(client, trained):
    with pytest.raises(advd.NotFound):
        trained.export_bytes(checkpoint=7)
    with pytest.raises(advd.InvalidArgument, match="'format'"):
        trained.export_bytes(format="onnx")
    ev = trained.eval(attack="fgsm", eps=0.1, limit=10, sanity=False, calibration=False)
    ev.wait(progress=False)
    with pytest.raises(advd.NotFound):
        ev.state_dict()


def test_export_larger_than_a_piece(client):
    # cnn-small: 1.7 MB of weights, four pieces of 512 KiB.
    job = client.submit(TINY, model="cnn-small", train_limit=128, val_size=0,
                        val_robust_size=0, name="cnn-small")
    assert job.wait(progress=False, timeout=120) == "succeeded"
    tensors, meta = job.load("latest", backend="array")
    assert meta["model_spec"] == PRESETS["cnn-small"] and meta["input_shape"] == "1x28x28"
    assert tensors["7.weight"].shape == (128, 64 * 7 * 7)
    assert sum(len(t.data) for t in tensors.values()) * 4 > 3 * 512 * 1024


def test_state_dict_backends(trained):
    names = ["0.weight", "0.bias", "4.weight", "4.bias"]
    plain = trained.state_dict(backend="array")
    assert list(plain) == names and plain["0.weight"].shape == (8, 1, 3, 3)
    np = pytest.importorskip("numpy")
    arrays = trained.state_dict(backend="numpy")
    assert arrays["4.weight"].shape == (10, 8 * 14 * 14)
    assert arrays["0.bias"].tolist() == pytest.approx(list(plain["0.bias"].data))
    torch = pytest.importorskip("torch")
    tensors = trained.state_dict()
    assert isinstance(tensors["0.weight"], torch.Tensor)
    assert np.array_equal(tensors["4.weight"].numpy(), arrays["4.weight"])


# ------------------------------------------------------------ torch_model


def idx(path):
    with gzip.open(path, "rb") as f:
        magic, = struct.unpack(">I", f.read(4))
        dims = struct.unpack(">" + "I" * (magic & 0xff), f.read(4 * (magic & 0xff)))
        return dims, f.read()


def test_torch_model_reproduces_advds_accuracy(trained):
    torch = pytest.importorskip("torch", reason="python3-torch is not installed")
    np = pytest.importorskip("numpy")
    net = trained.torch_model("latest")
    meta = net.advd_metadata
    assert meta["model_spec"] == TINY_MODEL and meta["dataset"] == "fashion-mnist"
    assert not net.training
    # The final evaluation (daemon/worker.c final_eval) scores the trained
    # model on the first final_eval_limit test images, in file order.
    data = "/usr/share/datasets/fashion-mnist"
    (n, h, w), pixels = idx(os.path.join(data, "t10k-images-idx3-ubyte.gz"))
    _, labels = idx(os.path.join(data, "t10k-labels-idx1-ubyte.gz"))
    k = FINAL_EVAL_LIMIT
    x = torch.from_numpy(np.frombuffer(pixels, np.uint8)[:k * h * w].astype(np.float32) / 255)
    y = torch.from_numpy(np.frombuffer(labels, np.uint8)[:k].astype(np.int64))
    with torch.no_grad():
        pred = net(x.reshape(k, 1, h, w)).argmax(1)
    right = int((pred == y).sum())
    final = [r for r in trained.results() if r["spec"].get("final")][0]
    assert final["n"] == k
    assert right == round(final["clean_acc"] * k)
    stored = [m["value"] for m in trained.metrics(key="test_clean_acc")][-1]
    assert right == round(stored * k)


def test_torch_model_residual_pickles(client, tmp_path):
    torch = pytest.importorskip("torch", reason="python3-torch is not installed")
    job = client.submit(TINY, model="conv4k3p1 relu res4 maxpool2 fc10", val_size=0,
                        val_robust_size=0)
    assert job.wait(progress=False, timeout=120) == "succeeded"
    with pytest.raises(advd.NotFound, match="validation robust accuracy"):
        job.torch_model()  # "best" needs a validation split
    net = job.torch_model("latest")
    assert "2.a.weight" in net.state_dict() and "2.b.bias" in net.state_dict()
    torch.save(net, tmp_path / "net.pt")
    again = torch.load(tmp_path / "net.pt")
    x = torch.rand(3, 1, 28, 28)
    with torch.no_grad():
        assert torch.equal(net(x), again(x))
