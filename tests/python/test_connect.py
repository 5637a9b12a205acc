"""Connecting: the socket advctl would use, the greeting and its checks,
refusals, context managers, and the versions agreeing with proto/proto.h."""
from __future__ import annotations

import builtins
import json
import os
import re
import socket
import subprocess
import sys
import threading

import pytest

import advd
import advd.connection
from conftest import ROOT, Daemon


def proto_h(name: str) -> str:
    with open(os.path.join(ROOT, "proto", "proto.h"), encoding="utf-8") as f:
        m = re.search(rf"#define {name} (\S+)", f.read())
    assert m, name
    return m.group(1).strip('"')


def test_versions_follow_proto_h():
    assert advd.__version__ == proto_h("ADV_VERSION")
    assert advd.PROTOCOL == int(proto_h("ADV_PROTOCOL"))
    assert advd.connection.SYSTEM_SOCKET == proto_h("ADV_SYSTEM_SOCKET")
    tomllib = pytest.importorskip("tomllib")
    with open(os.path.join(ROOT, "client", "python", "pyproject.toml"), "rb") as f:
        assert tomllib.load(f)["project"]["version"] == advd.__version__


def test_default_socket_order(monkeypatch, tmp_path):
    system = tmp_path / "system.sock"
    monkeypatch.setattr(advd.connection, "SYSTEM_SOCKET", str(system))
    monkeypatch.setenv("ADVD_SOCKET", "/x/y.sock")
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    assert advd.default_socket() == "/x/y.sock"
    monkeypatch.delenv("ADVD_SOCKET")
    # No daemon of the user's and no system service: the user's default.
    assert advd.default_socket() == f"{tmp_path}/advd.sock"
    monkeypatch.delenv("XDG_RUNTIME_DIR")
    assert advd.default_socket() == f"/tmp/advd-{os.getuid()}.sock"
    # The system service's socket once it exists and the user's does not.
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    system.touch()
    assert advd.default_socket() == str(system)
    (tmp_path / "advd.sock").touch()
    assert advd.default_socket() == f"{tmp_path}/advd.sock"
    monkeypatch.setenv("ADVD_SOCKET", "")
    assert advd.default_socket() == f"{tmp_path}/advd.sock"


def test_connect_uses_advd_socket(daemon, monkeypatch):
    monkeypatch.setenv("ADVD_SOCKET", daemon.socket)
    with advd.connect() as c:
        assert c.socket == daemon.socket
        assert c.ping() is True


def test_unreachable(tmp_path):
    path = str(tmp_path / "nobody.sock")
    with pytest.raises(advd.Unreachable) as e:
        advd.connect(tmp_path / "nobody.sock")  # a str or a path
    err = e.value
    assert isinstance(err, advd.ConnectionError) and isinstance(err, builtins.ConnectionError)
    assert isinstance(err, advd.Error) and err.code == "unreachable" and err.socket == path
    assert f"cannot reach advd at '{path}': No such file or directory" in str(err)
    assert "start it with `advd`" in str(err) and "ADVD_SOCKET" in str(err)
    with pytest.raises(advd.Unreachable, match="socket path too long"):
        advd.connect("/tmp/" + "x" * 200)


def fake_server(path: str, lines: list) -> threading.Thread:
    """A server at path that sends lines to its first client and closes."""
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    srv.listen(1)

    def serve():
        conn, _ = srv.accept()
        for line in lines:
            conn.sendall(line.encode() + b"\n")
        conn.close()
        srv.close()

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    return t


@pytest.mark.parametrize("greeting, error, message", [
    ({"hello": "advd", "version": "9.0.0", "protocol": 99}, advd.ProtocolError,
     f"server '9.0.0' speaks protocol 99, this client speaks {advd.PROTOCOL}"),
    ({"hello": "redis"}, advd.ProtocolError, "the server did not greet as advd"),
    ({"id": None, "ok": False, "error": {"code": "forbidden", "message": "not you"}},
     advd.Forbidden, "advd refused the connection: not you"),
    ({"id": None, "ok": False, "error": {"code": "conflict", "message": "too many"}},
     advd.Conflict, "advd refused the connection: too many"),
])
def test_greeting_checked(tmp_path, greeting, error, message):
    path = str(tmp_path / "fake.sock")
    t = fake_server(path, [json.dumps(greeting)])
    with pytest.raises(error) as e:
        advd.connect(path)
    assert e.value.message == message
    t.join(5)


def test_silent_server(tmp_path, monkeypatch):
    monkeypatch.setattr(advd.connection, "GREETING_TIMEOUT", 0.2)
    path = str(tmp_path / "silent.sock")
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    srv.listen(1)
    try:
        with pytest.raises(advd.Unreachable, match=r"no greeting within 0\.2 s \(is it advd\?\)"):
            advd.connect(path)
    finally:
        srv.close()


def test_garbage_from_server(tmp_path):
    path = str(tmp_path / "fake.sock")
    fake_server(path, ["this is not json"])
    with pytest.raises(advd.ProtocolError, match="bad message from advd"):
        advd.connect(path)


def test_context_manager_and_repr(daemon):
    with advd.connect(daemon.socket) as c:
        assert repr(c) == f"<advd.Client {daemon.socket!r} (advd {advd.__version__})>"
        assert c.server_version == advd.__version__
    assert repr(c).endswith("(not connected)>")
    # A closed client connects again when used.
    assert c.ping() is True
    c.close()


def test_ping_version_info(client):
    assert client.ping() is True
    v = client.version()
    assert v["version"] == advd.__version__ and v["protocol"] == advd.PROTOCOL
    assert v["client"] == advd.__version__ and v["client_protocol"] == advd.PROTOCOL
    assert {"sqlite", "jansson", "libuv"} <= set(v)
    info = client.info()
    assert isinstance(info, dict) and info


def test_connection_refused_for_too_many(tmp_path):
    d = Daemon(["--max-clients", "1"])
    try:
        with advd.connect(d.socket) as c:
            assert c.ping()
            with pytest.raises(advd.Conflict, match="advd refused the connection: too many "
                                                   "connections"):
                advd.connect(d.socket)
    finally:
        d.close()


def as_nobody(code: str, **kw) -> subprocess.CompletedProcess:
    """Run Python code as uid 65534 (nobody) with this package importable."""
    r = subprocess.run([sys.executable, "-c", "import advd\n" + code], user=65534,
                       capture_output=True, text=True, timeout=30,
                       env={"PYTHONPATH": os.path.join(ROOT, "client", "python"),
                            "PYTHONDONTWRITEBYTECODE": "1"}, **kw)
    if "No module named 'advd'" in r.stderr or "Permission denied: '" in r.stderr:
        pytest.skip(f"uid 65534 cannot read the package: {r.stderr.strip()[-200:]}")
    return r


@pytest.mark.skipif(os.getuid() != 0, reason="needs root to connect as another user")
def test_forbidden_to_connect():
    d = Daemon(["--socket-mode", "0666"])
    os.chmod(d.dir, 0o755)
    try:
        r = as_nobody("try:\n"
                      f"    advd.connect({d.socket!r})\n"
                      "except advd.Forbidden as e:\n"
                      "    print(e.code, e.message)\n")
        assert r.stdout.startswith("forbidden advd refused the connection: connections from "
                                   "uid 65534 are not allowed"), (r.stdout, r.stderr)
    finally:
        d.close()


@pytest.mark.skipif(os.getuid() != 0, reason="needs root to act as another user")
def test_forbidden_on_anothers_job():
    import grp
    try:
        group = grp.getgrgid(65534).gr_name
    except KeyError:
        pytest.skip("no group 65534 to share the socket with")
    d = Daemon(["--socket-group", group, "--socket-mode", "0660"])
    os.chmod(d.dir, 0o755)
    try:
        with d.client() as c:
            job = c.submit(model="conv4k3p1 relu maxpool2 fc10", epochs=1, method="clean",
                           train_limit=64, val_size=0, val_robust_size=0)
            job.wait(progress=False)
        r = as_nobody(f"c = advd.connect({d.socket!r})\n"
                      f"j = c.job({job.id})\n"
                      "print(j.info['user'], len(c.jobs(mine=True)))\n"
                      "try:\n"
                      "    j.cancel()\n"
                      "except advd.Forbidden as e:\n"
                      "    print(e.code, e.message)\n",
                      group=65534, extra_groups=[])
        lines = r.stdout.splitlines()
        assert lines[0] == "root 0", (r.stdout, r.stderr)
        assert lines[1].startswith(f"forbidden job {job.id} belongs to 'root': you (uid 65534) "
                                   "may not cancel it"), (r.stdout, r.stderr)
    finally:
        d.close()
