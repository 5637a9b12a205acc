"""A daemon that dies while the client waits: a clear ConnectionError, never
a hang or a raw socket error; and a client that outlives a restart."""
from __future__ import annotations

import builtins
import signal
import threading
import time

import pytest

import advd
from conftest import TINY

LONG = dict(TINY, train_limit=60000, epochs=50, val_size=0, val_robust_size=0)


def running(job: advd.Job) -> None:
    for ev in job.watch():
        if ev["event"] == "progress" or ev.get("state") == "running":
            return


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_daemon_killed_mid_wait(own_daemon, sig):
    c = own_daemon.client()
    job = c.submit(LONG, name="doomed")
    running(job)
    killer = threading.Timer(0.3, own_daemon.stop, args=(sig,))
    killer.start()
    t0 = time.monotonic()
    with pytest.raises(advd.Disconnected) as e:
        job.wait(progress=False)
    killer.join()
    assert time.monotonic() - t0 < 30
    err = e.value
    assert isinstance(err, advd.ConnectionError) and isinstance(err, builtins.ConnectionError)
    assert err.message.startswith(f"lost advd while watching job {job.id}: advd at "
                                  f"'{own_daemon.socket}' closed the connection")
    with pytest.raises(advd.Unreachable, match="cannot reach advd at"):
        c.ping()
    # Started again, the same client goes on (a SIGTERM'd job was requeued).
    own_daemon.start()
    assert c.ping() is True
    assert c.job(job.id).info["state"] in ("queued", "running", "failed")
    c.job(job.id).cancel()
    c.close()


def test_watch_generator_raises_too(own_daemon):
    with own_daemon.client() as c:
        job = c.submit(LONG)
        events = job.watch()
        first = next(events)
        assert first["job"] == job.id
        own_daemon.stop()
        with pytest.raises(advd.Disconnected, match=f"while watching job {job.id}"):
            for _ in events:
                pass
