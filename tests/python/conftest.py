"""Fixtures for the Python client's tests: a real advd (the binary $ADV_BIN,
set by `make check`; else bin/advd) on a socket and database in a fresh
temporary directory, as tests/daemon_harness.h starts it for the C tests:
ready once its log says it listens, killed at teardown (and by the kernel
if pytest dies first: PR_SET_PDEATHSIG; its workers follow it).

The package is imported from client/python, the tree's copy.
"""
from __future__ import annotations

import ctypes
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from typing import Iterator, List, Optional

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "client", "python"))

import advd  # noqa: E402

# A model small enough that a job takes well under a second on one thread.
TINY_MODEL = "conv8k3p1 relu maxpool2 fc10"
TINY = dict(model=TINY_MODEL, epochs=1, method="clean", train_limit=512, val_size=128,
            val_robust_size=64, batch=64)
# Test images of a training job's final evaluation (--final-eval-limit).
FINAL_EVAL_LIMIT = 200


def advd_bin() -> str:
    b = os.environ.get("ADV_BIN") or os.path.join(ROOT, "bin", "advd")
    return os.path.abspath(b)


def _pdeathsig() -> None:
    """In the child: die with the test process (Linux prctl)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


class Daemon:
    """A running advd in its own directory: .socket, .db, .log, .proc."""

    def __init__(self, extra: Optional[List[str]] = None) -> None:
        self.dir = tempfile.mkdtemp(prefix="advd-py-", dir=os.environ.get("ADV_TEST_TMP"))
        self.socket = os.path.join(self.dir, "advd.sock")
        self.db = os.path.join(self.dir, "advd.db")
        self.log = os.path.join(self.dir, "advd.log")
        self.extra = list(extra or [])
        self.proc: Optional[subprocess.Popen] = None
        self.start()

    def start(self) -> None:
        argv = [advd_bin(), "--foreground", "--socket", self.socket, "--db", self.db,
                "--threads", "1", "--final-eval-limit", str(FINAL_EVAL_LIMIT), "--grace", "5",
                *self.extra]
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=log, preexec_fn=_pdeathsig)
        needle = f"advd[{self.proc.pid}]: advd {advd.__version__} listening on"
        t0 = time.monotonic()
        while needle not in self.read_log():
            if self.proc.poll() is not None:
                raise RuntimeError(f"advd exited at startup: {self.read_log()}")
            if time.monotonic() - t0 > 10:
                raise RuntimeError(f"advd did not listen within 10 s: {self.read_log()}")
            time.sleep(0.005)

    def read_log(self) -> str:
        try:
            with open(self.log, encoding="utf-8", errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def stop(self, sig: int = signal.SIGKILL) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=20)
        self.proc = None

    def client(self) -> advd.Client:
        return advd.connect(self.socket)

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="session")
def daemon() -> Iterator[Daemon]:
    """One advd for the tests that leave it running (two workers)."""
    if not os.access(advd_bin(), os.X_OK):
        pytest.fail(f"no advd binary at '{advd_bin()}' (build it, or set ADV_BIN)")
    d = Daemon(["--workers", "2"])
    yield d
    d.close()


@pytest.fixture
def own_daemon() -> Iterator[Daemon]:
    """An advd of the test's own (to kill, or with settings of its own)."""
    d = Daemon(["--workers", "1"])
    yield d
    d.close()


@pytest.fixture
def client(daemon: Daemon) -> Iterator[advd.Client]:
    with daemon.client() as c:
        yield c


@pytest.fixture(scope="session")
def trained(daemon: Daemon) -> Iterator[advd.Job]:
    """A tiny training job, finished (succeeded)."""
    with daemon.client() as c:
        job = c.submit(TINY, name="tiny")
        assert job.wait(progress=False, timeout=120) == "succeeded"
        yield job
