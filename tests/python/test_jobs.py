"""The verbs on jobs, against a real advd: submit, jobs, job, status, wait,
watch, cancel, metrics, results, reports, checkpoints, eval, compare,
images; every error class the daemon answers; threads sharing a client."""
from __future__ import annotations

import io
import json
import os
import sqlite3
import sys
import threading
import time

import pytest

import advd
from conftest import TINY, TINY_MODEL


# ------------------------------------------------------------- errors


def test_invalid_argument_names_the_key(client):
    with pytest.raises(advd.InvalidArgument) as e:
        client.submit(TINY, epochs=0)
    assert e.value.code == "invalid_argument"
    assert e.value.message == "invalid 'epochs': expected an integer in [1, 100000], got 0"
    assert str(e.value) == f"invalid_argument: {e.value.message}"
    with pytest.raises(advd.InvalidArgument, match="bogus"):
        client.submit(TINY, bogus=1)
    with pytest.raises(advd.InvalidArgument, match="unknown layer 'nope'"):
        client.submit(TINY, model="nope fc10")


def test_values_from_notebooks(client):
    np = pytest.importorskip("numpy")
    job = client.submit(TINY, lr=np.float32(0.05), epochs=np.int64(1), name="numpy")
    assert job.spec["epochs"] == 1 and job.spec["lr"] == pytest.approx(0.05)
    job.wait(progress=False)
    ev = job.eval(attack="fgsm", eps=np.array([0.05, 0.1]), limit=10, sanity=False)
    assert ev.spec["eps"] == pytest.approx([0.05, 0.1])
    with pytest.raises(advd.InvalidArgument, match="cannot encode the request"):
        client.submit(TINY, lr=float("nan"))
    with pytest.raises(advd.InvalidArgument, match="'object' is not a JSON value"):
        client.submit(TINY, name=object())
    ev.wait(progress=False)


def test_not_found(client):
    with pytest.raises(advd.NotFound) as e:
        client.job(999999)
    assert e.value.code == "not_found" and "999999" in e.value.message
    with pytest.raises(advd.NotFound):
        advd.Job(client, 999999).metrics()


def test_bad_request(client):
    with pytest.raises(advd.BadRequest, match="'bogus'"):
        client.call("bogus")
    with pytest.raises(advd.BadRequest, match="did you mean 'status'"):
        client.call("stauts")


def test_conflict(client, trained):
    with pytest.raises(advd.Conflict, match=f"job {trained.id} is already succeeded"):
        trained.cancel()


def test_too_large_then_reconnects(client):
    # A line over the protocol's 1 MiB: too_large, and advd closes the connection.
    with pytest.raises(advd.TooLarge):
        client.submit(TINY, name="x" * (1 << 21))
    assert client.ping() is True  # a new connection


def test_internal_and_job_failed_on_a_corrupt_checkpoint(daemon, client):
    job = client.submit(TINY, name="to-corrupt")
    assert job.wait(progress=False, timeout=120) == "succeeded"
    db = sqlite3.connect(daemon.db, timeout=30)
    with db:
        db.execute("UPDATE checkpoints SET checksum = checksum + 1 WHERE job = ?", (job.id,))
    db.close()
    with pytest.raises(advd.Internal, match="checksum"):
        job.export_bytes(format="state")
    ev = job.eval(attack="fgsm", eps=0.1, limit=20)
    with pytest.raises(advd.JobFailed) as e:
        ev.wait(progress=False, timeout=120)
    assert e.value.job == ev.id and e.value.code == "failed"
    assert f"job {ev.id} failed: " in str(e.value)
    assert ev.state == "failed"


def test_unknown_codes_still_errors():
    e = advd.errors.error_for("brand_new", "a newer daemon's code")
    assert type(e) is advd.Error and e.code == "brand_new"
    assert isinstance(advd.errors.error_for("forbidden", "x"), advd.Forbidden)
    assert repr(advd.NotFound("no job 3")) == "NotFound(code='not_found', message='no job 3')"


# -------------------------------------------------------------- verbs


def test_submit_forms_and_job_lookup(client, tmp_path):
    spec_file = tmp_path / "job.json"
    spec_file.write_text(json.dumps(dict(TINY, epochs=3)))
    job = client.submit(str(spec_file), epochs=1, name="from-file", priority=-5)
    assert isinstance(job, advd.Job) and job.id >= 1
    st = job.status()
    assert st["spec"]["epochs"] == 1 and st["spec"]["model"] == TINY_MODEL
    assert st["name"] == "from-file" and st["priority"] == -5 and st["kind"] == "train"
    same = client.job(job.id)
    assert same == job and hash(same) == hash(job) and int(same) == job.id
    assert job.spec["train_limit"] == 512 and job.parent is None
    bad = tmp_path / "bad.json"
    bad.write_text("[1, 2]")
    with pytest.raises(advd.InvalidArgument, match="does not hold a JSON object"):
        client.submit(bad)
    with pytest.raises(advd.InvalidArgument, match="cannot read job file"):
        client.submit(tmp_path / "missing.json")
    assert job.wait(progress=False, timeout=120) == "succeeded"


def test_relative_dataset_made_absolute(client, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(advd.InvalidArgument) as e:
        client.submit(TINY, dataset="mnist:data")
    assert f"{tmp_path}/data" in e.value.message


def test_repr_and_state(client, trained):
    job = client.job(trained.id)
    assert repr(job) == f"<advd.Job {job.id} train 'tiny' succeeded>"
    assert job.state == "succeeded" and job.done
    assert job.info["owner"] == os.getuid()


def test_jobs_filters(client, trained):
    jobs = client.jobs()
    assert trained in jobs and all(isinstance(j, advd.Job) for j in jobs)
    assert all(j.info["state"] == "succeeded" for j in client.jobs(state="succeeded"))
    assert all(j.info["kind"] == "eval" for j in client.jobs(kind="eval"))
    assert len(client.jobs(limit=1)) == 1
    assert trained in client.jobs(mine=True)
    with pytest.raises(advd.InvalidArgument, match="'state'"):
        client.jobs(state="sleeping")


def test_metrics(trained):
    rows = trained.metrics()
    keys = {r["key"] for r in rows}
    assert {"train_loss", "val_clean_acc", "val_robust_acc", "test_clean_acc"} <= keys
    assert set(rows[0]) == {"key", "step", "epoch", "value", "time"}
    only = trained.metrics(key="train_loss")
    assert only and all(r["key"] == "train_loss" for r in only)
    pd = pytest.importorskip("pandas")
    frame = trained.metrics(as_frame=True)
    assert isinstance(frame, pd.DataFrame)
    assert list(frame.index.names) == ["epoch", "step"]
    assert "val_clean_acc" in frame.columns and "test_clean_acc" in frame.columns
    last = [r["value"] for r in rows if r["key"] == "test_clean_acc"][-1]
    assert frame["test_clean_acc"].dropna().iloc[-1] == pytest.approx(last)


def test_results_and_checkpoints(trained):
    res = trained.results()
    final = [r for r in res if r["spec"].get("final")]
    assert len(final) == 1 and final[0]["n"] == 200 and 0 <= final[0]["clean_acc"] <= 1
    cks = trained.checkpoints()
    assert len(cks) == 1 and cks[0]["epoch"] == 1 and cks[0]["best"] is True
    pd = pytest.importorskip("pandas")
    frame = trained.results(as_frame=True)
    assert isinstance(frame, pd.DataFrame) and len(frame) == len(res)


def test_eval_compare_reports(client, trained):
    with pytest.raises(advd.InvalidArgument, match="give attack=NAME or suite=NAME"):
        trained.eval()
    ev = trained.eval(attack="pgd", eps=[0.05, 0.1], steps=3, limit=40, sanity=False,
                      name="pgd-3")
    assert ev.wait(progress=False, timeout=120) == "succeeded"
    assert ev.parent == trained and ev.info["kind"] == "eval"
    res = ev.results()
    assert [r["eps"] for r in res] == [0.05, 0.1] and all(r["n"] == 40 for r in res)
    assert isinstance(res[0]["survival"], bytes) and len(res[0]["survival"]) == 40
    kinds = {r["kind"] for r in ev.reports()}
    assert "calibration" in kinds
    ev2 = client.eval(trained.id, attack="fgsm", eps=0.1, limit=20, sanity=False,
                      calibration=False)
    assert ev2.wait(progress=False, timeout=120) == "succeeded"
    rows = client.compare([trained, ev, ev2.id])
    assert [r["job"] for r in rows] == [trained.id, ev.id, ev2.id]
    assert rows[0]["state"] == "succeeded" and rows[0]["test_clean_acc"] is not None
    assert rows[1]["ece"] is not None and rows[1]["name"] == "pgd-3"
    assert advd.compare([trained, ev]) == rows[:2]
    pd = pytest.importorskip("pandas")
    frame = client.compare([trained, ev], as_frame=True)
    assert list(frame.index) == [trained.id, ev.id]
    assert pd.isna(frame.loc[ev.id, "test_clean_acc"])  # None becomes NaN
    assert frame.loc[trained.id, "test_clean_acc"] == pytest.approx(rows[0]["test_clean_acc"])


def test_cancel_queued_and_running(own_daemon):
    with own_daemon.client() as c:
        # One worker: the first job runs, the second waits its turn.
        long = dict(TINY, train_limit=60000, epochs=50, val_size=0, val_robust_size=0)
        running = c.submit(long, name="long")
        queued = c.submit(TINY, name="waits")
        assert queued.cancel() == {"job": queued.id, "state": "cancelled"}
        assert queued.wait(progress=False) == "cancelled"
        for ev in running.watch():  # until it runs
            if ev["event"] == "progress" or ev.get("state") == "running":
                break
        r = running.cancel()
        assert r["state"] in ("running", "cancelled")
        assert running.wait(progress=False, timeout=60) == "cancelled"
        assert running.state == "cancelled"


def test_watch_yields_progress_then_final_state(client):
    job = client.submit(TINY, name="watched")
    events = list(job.watch())
    assert events[-1]["event"] == "state" and events[-1]["state"] == "succeeded"
    assert any(e["event"] == "progress" for e in events)
    assert all(e["job"] == job.id for e in events)
    # A finished job's watch is its final state alone.
    assert list(job.watch()) == [{"event": "state", "job": job.id, "state": "succeeded"}]


def test_wait_plain_progress_without_tqdm(client, monkeypatch):
    monkeypatch.setitem(sys.modules, "tqdm", None)
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)
    out = io.StringIO()
    job = client.submit(TINY, name="plain")
    assert job.wait(progress=True, file=out) == "succeeded"
    lines = out.getvalue().splitlines()
    assert lines[-1] == f"job {job.id} succeeded"
    assert lines[-2].startswith(f"job {job.id} [####################] 100% epoch 1/1")
    assert "img/s" in lines[-2] and "loss" in lines[-2]


def test_wait_with_tqdm(client):
    pytest.importorskip("tqdm")
    out = io.StringIO()
    job = client.submit(TINY, name="bar")
    assert job.wait(progress=True, file=out) == "succeeded"
    text = out.getvalue()
    assert f"job {job.id}: 100%" in text and f"job {job.id} succeeded" in text


def test_wait_timeout(own_daemon):
    # The client's timeout bounds answers; a wait has its own.
    with advd.connect(own_daemon.socket, timeout=0.2) as c:
        job = c.submit(dict(TINY, train_limit=60000, epochs=50, val_size=0, val_robust_size=0))
        queued = c.submit(TINY)  # one worker: it sends nothing while it waits
        t0 = time.monotonic()
        with pytest.raises(TimeoutError, match=f"job {queued.id} did not end"):
            queued.wait(progress=False, timeout=1.0)
        assert time.monotonic() - t0 >= 0.9
        assert job.state in ("queued", "running")  # it goes on
        job.cancel()
        assert queued.wait(progress=False, timeout=60) == "succeeded"


def test_wait_plain_progress_on_a_terminal(client):
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    out = Terminal()
    job = client.submit(TINY, name="tty")
    assert job.wait(progress="plain", file=out) == "succeeded"
    text = out.getvalue()
    assert text.startswith(f"\rjob {job.id} [") and text.endswith(f"job {job.id} succeeded\n")
    assert "\n" not in text[:text.rindex("100%")]  # redrawn in place until the end


def test_images(client, trained):
    with pytest.raises(advd.InvalidArgument, match="give kind"):
        trained.images()
    with pytest.raises(advd.InvalidArgument, match="give kind"):
        trained.images("bogus")
    pics = trained.images("adversarial", 3, eps=0.1)
    assert {"clean.png", "adversarial.png", "perturbation.png", "index.tsv"} <= set(pics)
    assert pics.job.parent == trained and repr(pics).startswith(f"<advd.Images of job {pics.job.id}")
    assert isinstance(pics["index.tsv"], str) and len(pics["index.tsv"].splitlines()) >= 4
    for name, data in pics.raw.items():
        if name.endswith(".png"):
            assert data.startswith(b"\x89PNG\r\n\x1a\n")
    try:
        import PIL.Image
        assert isinstance(pics["clean.png"], PIL.Image.Image)
        assert pics["clean.png"].size[0] > 0
    except ImportError:
        assert isinstance(pics["clean.png"], bytes)
    again = pics.job.images(as_pil=False)
    assert again.raw == pics.raw and isinstance(again["clean.png"], bytes)
    with pytest.raises(advd.InvalidArgument, match="is an evaluation"):
        pics.job.images("saliency")


def test_images_save(client, trained, tmp_path):
    pics = trained.images("saliency", 2, as_pil=False)
    paths = pics.save(tmp_path / "pics")
    assert sorted(os.path.basename(p) for p in paths) == sorted(pics.raw)
    with open(tmp_path / "pics" / "saliency.png", "rb") as f:
        assert f.read() == pics.raw["saliency.png"]


# ------------------------------------------------------------ threads


def test_threads_share_a_client(client, trained):
    errors = []

    def work(n):
        try:
            for i in range(40):
                if i % 2:
                    assert client.job(trained.id).id == trained.id
                else:
                    assert client.ping() is True
                with pytest.raises(advd.NotFound):
                    client.job(900000 + n)
        except Exception as e:  # reported below: a thread's assert does not fail the test
            errors.append(e)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
