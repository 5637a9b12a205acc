"""The client: :func:`connect`, :class:`Client` and :class:`Job`.

The verbs are ``advctl``'s, one to one (client/main.c's command table):

    advctl submit       Client.submit(spec, **keys) -> Job
    advctl eval         Job.eval(attack=..., eps=[...], ...) -> Job   (Client.eval(job, ...))
    advctl list         Client.jobs(state=, kind=, limit=, mine=) -> [Job]
    advctl status       Job.status() -> dict                         (Client.job(id) -> Job)
    advctl watch        Job.watch() (events), Job.wait() (a bar, the final state)
    advctl cancel       Job.cancel()
    advctl results      Job.results(), Job.reports()
    advctl metrics      Job.metrics(key=, as_frame=)
    advctl checkpoints  Job.checkpoints()
    advctl compare      Client.compare(jobs), advd.compare(jobs)
    advctl export       Job.export(path), Job.state_dict(), Job.torch_model()
    advctl images       Job.images(kind, n)
    advctl ping         Client.ping()
    advctl version      Client.version()
    (request info)      Client.info()

Job specs are plain keyword arguments named as the job-spec keys (README
"The client (advctl)"); the daemon validates them and its message names
the key at fault (:class:`advd.InvalidArgument`).

Threads: a :class:`Client` may be shared. Its requests go over one
connection under a lock (one request and its answer at a time); every
``watch``/``wait`` opens a connection of its own for the events, closed
when it ends, so that waiting on one job never blocks the others' requests.
"""
from __future__ import annotations

import base64
import json
import math
import os
import socket as _socket
import threading
import time
import zlib
from typing import (Any, Dict, Iterable, Iterator, List, Mapping, Optional, Sequence,
                    TextIO, Tuple, Union)

from . import safetensors as _st
from .connection import PROTOCOL, Connection, default_socket
from .errors import Disconnected, InvalidArgument, JobFailed, NotFound, ProtocolError
from .progress import Progress, make_progress

__all__ = ["Client", "Job", "Images", "connect", "compare", "__version__"]

#: This package's version, advd's (ADV_VERSION in proto/proto.h).
__version__ = "0.4.0"

FINAL_STATES = ("succeeded", "failed", "cancelled")
IMAGE_KINDS = ("adversarial", "saliency", "smoothgrad", "ig", "corruptions")
# Bytes asked for per piece of an export or a picture: the daemon's largest
# (ADV_CHUNK_MAX), which it also gives when asked for more.
PIECE = 512 * 1024

Checkpoint = Union[str, int]
JobRef = Union["Job", int]


def connect(socket: Union[str, "os.PathLike[str]", None] = None,
            timeout: Optional[float] = None) -> "Client":
    """Connect to advd and check its greeting.

    ``socket`` is the daemon's socket; ``None`` finds it as ``advctl``
    does (``$ADVD_SOCKET``, else ``$XDG_RUNTIME_DIR/advd.sock`` or
    ``/tmp/advd-UID.sock`` when it exists, else the system service's
    ``/run/advd/advd.sock`` when that exists). ``timeout`` bounds connecting
    and each answer, in seconds (``None``: no limit). Raises
    :class:`advd.Unreachable` when no daemon answers there and
    :class:`advd.ProtocolError` when it speaks another protocol.
    Use it as a context manager to close the connection::

        with advd.connect() as c:
            print(c.jobs())
    """
    return Client(socket, timeout)


class Client:
    """A connection to advd (see :func:`connect`)."""

    def __init__(self, socket: Union[str, "os.PathLike[str]", None] = None,
                 timeout: Optional[float] = None) -> None:
        self.socket: str = os.fspath(socket) if socket else default_socket()
        self.timeout = timeout
        self._lock = threading.Lock()
        self._conn: Optional[Connection] = Connection(self.socket, timeout)

    # ---------------------------------------------------------- plumbing

    def _connection(self) -> Connection:
        """The request connection, opened again when an earlier one broke
        (e.g. the daemon was restarted)."""
        with self._lock:
            if self._conn is None or self._conn.closed:
                self._conn = Connection(self.socket, self.timeout)
            return self._conn

    def call(self, cmd: str, **args: Any) -> Dict[str, Any]:
        """Send one raw request (``cmd`` and its arguments; ``None`` values
        are left out) and return the daemon's result object. A connection
        found broken before the request went out (the daemon restarted
        since) is replaced once; after that, the error is the caller's."""
        try:
            return self._connection().call(cmd, **args)
        except Disconnected as e:
            if not e.unsent:
                raise
        return self._connection().call(cmd, **args)

    def _open(self) -> Connection:
        """A new connection of its own (for a watch)."""
        return Connection(self.socket, self.timeout)

    @property
    def server_version(self) -> str:
        """The daemon's version, from its greeting."""
        return self._connection().server_version

    def close(self) -> None:
        """Close the connection (a later request opens a new one)."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        conn = self._conn
        state = f"advd {conn.server_version}" if conn and not conn.closed else "not connected"
        return f"<advd.Client {self.socket!r} ({state})>"

    # ------------------------------------------------------------ trivia

    def ping(self) -> bool:
        """True when advd answers (else an exception says why)."""
        return self.call("ping").get("pong") is True

    def version(self) -> Dict[str, Any]:
        """The daemon's versions (``version``, ``protocol``, ``sqlite``,
        ``jansson``, ``libuv``) and this client's (``client``,
        ``client_protocol``)."""
        r = self.call("version")
        r["client"], r["client_protocol"] = __version__, PROTOCOL
        return r

    def info(self) -> Dict[str, Any]:
        """The daemon's connection counters (clients, refusals, ...)."""
        return self.call("info")

    # -------------------------------------------------------------- jobs

    def submit(self, spec: Union[Mapping[str, Any], str, "os.PathLike[str]", None] = None,
               **keys: Any) -> "Job":
        """Queue a job and return it (``advctl submit``).

        ``spec`` is a job spec (a dict, or the path of a JSON file holding
        one); ``keys`` are job-spec keys that override it (``epochs=5,
        lr=0.05``). The kind defaults to ``"train"``; nothing at all gives
        the default job (cnn-small, PGD-7 on Fashion-MNIST, eps 0.1). A
        relative data-set directory (``"png:data"``) is made absolute, as
        the daemon runs elsewhere.
        """
        full = _load_spec(spec)
        full.update(keys)
        full.setdefault("kind", "train")
        _absolute_dataset(full)
        r = self.call("submit", spec=full)
        return Job(self, r["job"], {"id": r["job"], "state": r.get("state"),
                                    "kind": full["kind"], "name": full.get("name")})

    def eval(self, job: JobRef, attack: Optional[str] = None, suite: Optional[str] = None,
             eps: Union[float, Sequence[float], None] = None,
             checkpoint: Optional[Checkpoint] = None, **keys: Any) -> "Job":
        """Queue an evaluation of a checkpoint of training job ``job``
        (``advctl eval``); see :meth:`Job.eval`."""
        if attack is None and suite is None and "attack" not in keys and "suite" not in keys:
            raise InvalidArgument("give attack=NAME or suite=NAME")
        spec: Dict[str, Any] = {"kind": "eval", "job": _job_id(job)}
        for key, value in (("attack", attack), ("suite", suite), ("checkpoint", checkpoint)):
            if value is not None:
                spec[key] = value
        if eps is not None:
            spec["eps"] = [eps] if isinstance(eps, (int, float)) else list(eps)
        spec.update(keys)
        return self.submit(spec)

    def jobs(self, state: Optional[str] = None, kind: Optional[str] = None,
             limit: Optional[int] = None, mine: Optional[bool] = None) -> List["Job"]:
        """The jobs, newest first (``advctl list``): only those in ``state``
        (queued, running, succeeded, failed, cancelled), of ``kind`` (train,
        eval), at most ``limit``, only this user's with ``mine=True``."""
        r = self.call("list", state=state, kind=kind, limit=limit, mine=mine)
        return [Job(self, j["id"], j) for j in r.get("jobs", [])]

    def job(self, job: JobRef) -> "Job":
        """Job ``job`` (an id), with its status; :class:`advd.NotFound` when
        there is none."""
        j = Job(self, _job_id(job))
        j.status()
        return j

    def compare(self, jobs: Iterable[JobRef], as_frame: bool = False) -> Any:
        """The headline numbers of each job side by side (``advctl
        compare``): one dict per job (``job``, ``state``, ``name``, the last
        ``val_clean_acc``, ``val_robust_acc``, ``test_clean_acc``,
        ``test_pgd20_acc`` and, from its evaluations' reports,
        ``corruption_acc``, ``ece``, ``ece_t`` (after temperature scaling),
        ``expl_rand``, ``expl_adv``; None when absent), or a pandas
        DataFrame indexed by job with ``as_frame=True``."""
        rows = [_compare_row(self, _job_id(j)) for j in jobs]
        if not as_frame:
            return rows
        import pandas as pd
        numbers = [{k: math.nan if v is None and k not in ("state", "name") else v
                    for k, v in r.items()} for r in rows]
        return pd.DataFrame(numbers).set_index("job")


def compare(jobs: Iterable[JobRef], as_frame: bool = False,
            socket: Optional[str] = None) -> Any:
    """:meth:`Client.compare` for jobs (:class:`Job` objects, or ids read
    through a connection to ``socket`` opened for the call)."""
    jobs = list(jobs)
    client = next((j.client for j in jobs if isinstance(j, Job)), None)
    if client is not None:
        return client.compare(jobs, as_frame)
    with connect(socket) as c:
        return c.compare(jobs, as_frame)


class Job:
    """A job of advd: ``job.id``, its last known ``job.info`` (the daemon's
    job object) and the requests about it. Get one from
    :meth:`Client.submit`, :meth:`Client.job` or :meth:`Client.jobs`."""

    def __init__(self, client: Client, id: int, info: Optional[Dict[str, Any]] = None) -> None:
        self.client = client
        self.id = int(id)
        self.info: Dict[str, Any] = dict(info or {"id": self.id})

    def __repr__(self) -> str:
        i = self.info
        parts = [f"<advd.Job {self.id}"]
        if i.get("kind"):
            parts.append(str(i["kind"]))
        if i.get("name"):
            parts.append(repr(i["name"]))
        if i.get("state"):
            state = str(i["state"])
            if state == "running" and isinstance(i.get("progress"), (int, float)):
                state += f" {100 * i['progress']:.0f}%"
            parts.append(state)
        return " ".join(parts) + ">"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Job) and other.id == self.id and \
            other.client.socket == self.client.socket

    def __hash__(self) -> int:
        return hash((self.client.socket, self.id))

    def __int__(self) -> int:
        return self.id

    # ------------------------------------------------------------- state

    def status(self) -> Dict[str, Any]:
        """The job as the daemon has it now (``advctl status``): id, kind,
        name, state, progress, priority, attempts, parent, created, started,
        finished, error and its canonical ``spec``."""
        self.info = self.client.call("status", job=self.id)
        return self.info

    @property
    def state(self) -> str:
        """The job's state now (asks the daemon)."""
        return str(self.status()["state"])

    @property
    def done(self) -> bool:
        """Whether the job has ended (asks the daemon)."""
        return self.state in FINAL_STATES

    @property
    def spec(self) -> Dict[str, Any]:
        """The job's canonical spec, every key with its value."""
        if not isinstance(self.info.get("spec"), dict):
            self.status()
        return dict(self.info["spec"])

    @property
    def parent(self) -> Optional["Job"]:
        """The training job an evaluation evaluates (None for training)."""
        if "parent" not in self.info:
            self.status()
        p = self.info.get("parent")
        return Job(self.client, p) if p else None

    def cancel(self) -> Dict[str, Any]:
        """Cancel the job (``advctl cancel``): a queued job is cancelled at
        once (``{"state": "cancelled"}``); a running one answers
        ``{"state": "running", "cancelling": True}`` and ends ``cancelled``
        once its worker stopped (:meth:`wait` for it). A job already ended
        raises :class:`advd.Conflict`."""
        return self.client.call("cancel", job=self.id)

    # ---------------------------------------------------- following it

    def watch(self) -> Iterator[Dict[str, Any]]:
        """The job's events as they come (``advctl watch --json``), on a
        connection of its own, until its final state: progress events
        ``{"event": "progress", "job", "progress", "epoch", "step",
        "images_per_s", "loss"}`` (or ``"metrics": {...}`` at an epoch's
        end) and state events ``{"event": "state", "job", "state",
        "error"}``. Raises :class:`advd.Disconnected` if the daemon goes
        away first."""
        with self.client._open() as conn:
            yield from self._events(conn, None)

    def _events(self, conn: Connection, deadline: Optional[float]) -> Iterator[Dict[str, Any]]:
        """Watch on conn: the events up to the final state one; past the
        monotonic deadline, TimeoutError."""
        try:
            r = conn.call("watch", job=self.id)
            if isinstance(r.get("job"), dict):
                self.info.update(r["job"])
            events = conn.events()
            # A queued job may send nothing for hours: the client's timeout
            # bounds answers, not the wait for an event.
            conn.settimeout(None)
            while True:
                if deadline is not None:
                    conn.settimeout(max(deadline - time.monotonic(), 0.001))
                try:
                    ev = next(events)
                except _socket.timeout:
                    raise TimeoutError(f"job {self.id} did not end within the timeout "
                                       "(it goes on)") from None
                if ev.get("job") != self.id:
                    continue
                if ev.get("event") == "progress" and isinstance(ev.get("progress"), float):
                    self.info["progress"] = ev["progress"]
                if ev.get("event") == "state":
                    self.info["state"] = ev.get("state")
                yield ev
                if ev.get("event") == "state" and ev.get("state") in FINAL_STATES:
                    return
        except Disconnected as e:
            raise Disconnected(f"lost advd while watching job {self.id}: {e.message}") from None

    def wait(self, progress: Union[bool, str] = True, timeout: Optional[float] = None,
             file: Optional[TextIO] = None) -> str:
        """Wait for the job to end and return its final state
        (``"succeeded"`` or ``"cancelled"``); raise :class:`advd.JobFailed`
        with the daemon's reason when it failed.

        ``progress``: ``True`` shows a tqdm bar when tqdm is installed, else
        a plain line (``"plain"`` forces it; ``False`` shows nothing), on
        ``file`` (default: tqdm's, or standard error). ``timeout`` in
        seconds raises ``TimeoutError`` (the job keeps running).
        Raises :class:`advd.Disconnected` if the daemon goes away first.
        """
        epochs = 0
        if progress:
            spec = self.status().get("spec") or {}
            epochs = int(spec.get("epochs") or 0) if self.info.get("kind") == "train" else 0
        state = Progress(self.id, epochs)
        shown = make_progress(state, progress, file)
        deadline = None if timeout is None else time.monotonic() + timeout
        final, error = "", None
        try:
            with self.client._open() as conn:
                for ev in self._events(conn, deadline):
                    if ev.get("event") == "progress":
                        state.update(ev)
                        if shown:
                            shown.show()
                    elif ev.get("event") == "state" and ev.get("state") in FINAL_STATES:
                        final, error = str(ev["state"]), ev.get("error")
        except BaseException:
            if shown:
                shown.abort()
            raise
        if shown:
            shown.close(f"job {self.id} {final}" + (f": {error}" if error else ""))
        if final == "failed":
            raise JobFailed(self.id, str(error or "no reason given"))
        return final

    # ------------------------------------------------------------- data

    def metrics(self, key: Optional[str] = None, since: Optional[int] = None,
                as_frame: bool = False) -> Any:
        """The recorded metrics (``advctl metrics``): a list of dicts
        ``{"key", "step", "epoch", "value", "time"}`` in order (``value``
        None for NaN), only ``key`` if given, only steps after ``since``.
        ``as_frame=True`` gives a pandas DataFrame with one row per (epoch,
        step) and one column per key, as ``advctl metrics`` prints it::

            job.metrics(as_frame=True).plot(y=["val_clean_acc", "val_robust_acc"])
        """
        rows = self.client.call("metrics", job=self.id, key=key, since=since)["metrics"]
        if not as_frame:
            return rows
        import pandas as pd
        if not rows:
            return pd.DataFrame(columns=["epoch", "step"]).set_index(["epoch", "step"])
        frame = pd.DataFrame(rows).pivot_table(index=["epoch", "step"], columns="key",
                                               values="value", aggfunc="last", dropna=False,
                                               sort=False)
        frame = frame.sort_index(level=["step", "epoch"])
        frame.columns.name = None
        return frame

    def _results(self) -> Dict[str, Any]:
        return self.client.call("results", job=self.id)

    def results(self, as_frame: bool = False) -> Any:
        """The evaluations of the job (``advctl results``), its own and its
        evaluation jobs': dicts with ``job``, ``spec`` (the attack),
        ``eps``, ``n``, ``clean_acc``, ``robust_acc``, ``warnings``,
        ``survival`` (bytes, 1 per example that kept its label) and more;
        a pandas DataFrame with ``as_frame=True``."""
        rows = self._results().get("results", [])
        for r in rows:
            if isinstance(r.get("survival"), str):
                r["survival"] = base64.b64decode(r["survival"])
        if not as_frame:
            return rows
        import pandas as pd
        return pd.DataFrame(rows)

    def reports(self) -> List[Dict[str, Any]]:
        """The reports of the job's evaluations (``advctl results``' tables):
        ``{"job", "kind" (calibration, corruptions, explanations), "data",
        "created"}``."""
        return self._results().get("reports", [])

    def checkpoints(self) -> List[Dict[str, Any]]:
        """The stored checkpoints (``advctl checkpoints``): ``{"id", "epoch",
        "step", "val_robust_acc", "best", "checksum", "size", "created"}``."""
        return self.client.call("checkpoints", job=self.id)["checkpoints"]

    def eval(self, attack: Optional[str] = None, suite: Optional[str] = None,
             eps: Union[float, Sequence[float], None] = None,
             checkpoint: Optional[Checkpoint] = None, **keys: Any) -> "Job":
        """Queue an evaluation of this training job's checkpoint
        (``advctl eval``) and return the new job: ``attack`` (fgsm, pgd,
        apgd-ce, apgd-t, fab-t, square, noise) or ``suite`` (autoattack, pgd,
        strong), ``eps`` a number or a list, ``checkpoint`` ``"latest"``,
        ``"best"`` or an epoch, and any other eval-spec key (``steps=100,
        limit=1000, corruptions=True, explain=True``)::

            ev = job.eval(attack="apgd-ce", eps=[0.05, 0.1], steps=100)
            ev.wait()
        """
        return self.client.eval(self, attack, suite, eps, checkpoint, **keys)

    def images(self, kind: Optional[str] = None, n: int = 16, *,
               progress: Union[bool, str] = False, as_pil: Optional[bool] = None,
               **keys: Any) -> "Images":
        """Pictures of the model at work (``advctl images``).

        On a training job, ``kind`` (adversarial, saliency, smoothgrad, ig,
        corruptions) queues a small evaluation that draws them for the first
        ``n`` test images (priority 1000; PGD at the job's training eps
        unless ``attack=``/``eps=`` say otherwise; other eval-spec keys such
        as ``checkpoint``, ``seed``, ``explain_class`` are passed on), waits
        for it (``progress`` as in :meth:`wait`) and fetches them. On an
        evaluation job without ``kind``, fetches the pictures it drew.

        Returns an :class:`Images`: file name to PIL image (when Pillow is
        installed and ``as_pil`` is not False) or PNG bytes, and
        ``"index.tsv"`` as text.
        """
        info = self.status()
        if info.get("kind") == "eval":
            if kind is not None:
                raise InvalidArgument(f"job {self.id} is an evaluation: give its training job "
                                      "to draw pictures, or no kind to fetch the ones it drew")
            drawer = self
        else:
            if kind not in IMAGE_KINDS:
                raise InvalidArgument(f"give kind: one of {', '.join(IMAGE_KINDS)}"
                                      + (f" (not {kind!r})" if kind is not None else ""))
            drawer = self.client.submit(_drawing_spec(self.id, kind, n, info.get("spec"), keys))
            drawer.wait(progress=progress)
        files = self.client.call("images", job=drawer.id).get("images", [])
        if not files:
            raise NotFound(f"job {drawer.id} drew no pictures (call images(kind) on its "
                           "training job)")
        raw = {}
        for f in files:  # past one piece in all, the rest come by name
            raw[f["name"]] = _b64(f["data"]) if isinstance(f.get("data"), str) else \
                _pieces(self.client, "images", (), job=drawer.id, name=f["name"])[0]
        return Images(drawer, raw, as_pil)

    # ----------------------------------------------------------- weights

    def export_bytes(self, checkpoint: Checkpoint = "latest",
                     format: str = "safetensors") -> Tuple[bytes, Dict[str, Any]]:
        """A checkpoint's bytes, pulled in chunks, and the daemon's
        description of it (``job``, ``checkpoint``, ``epoch``, ``step``,
        ``format``, ``size``, ``checksum``). ``format`` ``"safetensors"``
        gives exactly the file ``advctl export`` writes; ``"state"`` the
        engine's own checkpoint."""
        for _ in range(3):
            data, info = self._pull(checkpoint, format)
            if data is not None:
                return data, info
        raise ProtocolError(f"job {self.id}: checkpoint '{checkpoint}' kept changing while "
                            "it was read")

    def _pull(self, checkpoint: Checkpoint,
              format: str) -> Tuple[Optional[bytes], Dict[str, Any]]:
        """One pass over the pieces; (None, info) when the checkpoint
        changed under us (e.g. "latest" while the job trains)."""
        data, first, same = _pieces(self.client, "export", ("checkpoint", "size", "checksum"),
                                    job=self.id, checkpoint=checkpoint, format=format)
        info = {k: v for k, v in first.items() if k not in ("data", "offset", "eof")}
        if not same:
            return None, info
        # The checksum is the stored checkpoint's (crc32 of its state bytes).
        if format == "state" and isinstance(info.get("checksum"), int) \
                and zlib.crc32(data) != info["checksum"]:
            raise ProtocolError(f"export of job {self.id}: the bytes fail their crc32")
        return data, info

    def export(self, path: Union[str, "os.PathLike[str]"], checkpoint: Checkpoint = "latest",
               format: str = "safetensors") -> Dict[str, Any]:
        """Write a checkpoint to ``path`` (``advctl export``): safetensors
        (F32 tensors under PyTorch's names, ``__metadata__`` with the
        model spec) or the engine's ``"state"``. Written through a
        temporary file and a rename, so ``path`` never holds half a file.
        Returns the daemon's description with ``"path"``."""
        data, info = self.export_bytes(checkpoint, format)
        path = os.fspath(path)
        tmp = f"{path}.tmp-{os.getpid()}"
        try:
            with open(tmp, "wb") as f:
                f.write(data)
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
        info["path"] = path
        return info

    def load(self, checkpoint: Checkpoint = "best",
             backend: Optional[str] = None) -> Tuple[Dict[str, Any], Dict[str, str]]:
        """``(tensors, metadata)`` of a checkpoint's safetensors (see
        :func:`advd.safetensors.load`); the metadata holds ``model_spec``,
        ``input_shape``, ``classes`` and the training spec's keys."""
        data, _ = self.export_bytes(checkpoint, "safetensors")
        return _st.load(data, backend)

    def state_dict(self, checkpoint: Checkpoint = "best",
                   backend: Optional[str] = None) -> Dict[str, Any]:
        """A checkpoint's weights by PyTorch name (``0.weight``, ...): torch
        tensors when torch is installed, else numpy arrays, else
        :class:`advd.safetensors.Array` (``backend`` picks one:
        ``"torch"``, ``"numpy"``, ``"array"``). ``checkpoint``: ``"best"``
        (by validation robust accuracy), ``"latest"`` or an epoch."""
        return self.load(checkpoint, backend)[0]

    def torch_model(self, checkpoint: Checkpoint = "best") -> Any:
        """The job's model as an ``nn.Sequential`` in eval mode with the
        checkpoint's weights loaded (strictly: every name and shape), so
        that ``model(x)`` on inputs in [0, 1] of the data set's shape
        (N x C x H x W) gives advd's own logits. ``model.advd_metadata``
        holds the export's metadata (model spec, input shape, classes,
        training spec)."""
        from .model import build, parse_shape
        tensors, meta = self.load(checkpoint, "torch")
        if "model_spec" not in meta or "input_shape" not in meta:
            raise ProtocolError(f"job {self.id}: the export names no model_spec/input_shape")
        net = build(meta["model_spec"], parse_shape(meta["input_shape"]))
        net.load_state_dict(tensors, strict=True)
        net.eval()
        net.advd_metadata = meta
        return net


class Images(dict):
    """Pictures an evaluation job drew: file name to a PIL image (PNG files,
    when Pillow is installed) or bytes, and ``"index.tsv"`` (each example's
    class and predictions) as text. ``.job`` is the job that drew them,
    ``.raw`` the files' bytes; :meth:`save` writes them into a directory
    (the files ``advctl images -o DIR`` writes)."""

    def __init__(self, job: Job, raw: Dict[str, bytes], as_pil: Optional[bool] = None) -> None:
        self.job = job
        self.raw = raw
        pil = None
        if as_pil is not False:
            try:
                from PIL import Image as pil
            except ImportError:
                if as_pil:
                    raise
        super().__init__({name: _image_value(name, data, pil) for name, data in raw.items()})

    def save(self, directory: Union[str, "os.PathLike[str]"]) -> List[str]:
        """Write every file into ``directory`` (created); the paths."""
        os.makedirs(directory, exist_ok=True)
        paths = []
        for name, data in self.raw.items():
            if not name or "/" in name or name.startswith("."):
                raise ProtocolError(f"the daemon sent an unusable image name {name!r}")
            path = os.path.join(os.fspath(directory), name)
            with open(path, "wb") as f:
                f.write(data)
            paths.append(path)
        return paths

    def __repr__(self) -> str:
        return f"<advd.Images of job {self.job.id}: {', '.join(self)}>"


# -------------------------------------------------------------- helpers


def _b64(text: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except ValueError as e:
        raise ProtocolError(f"bad base64 from advd: {e}") from None


def _pieces(client: Client, cmd: str, fixed: Tuple[str, ...],
            **args: Any) -> Tuple[bytes, Dict[str, Any], bool]:
    """Pull a thing in pieces (export, images by name): request at growing
    "offset" until "eof". Returns the bytes, the first answer, and whether
    the ``fixed`` fields (and "size") stayed the same in every answer."""
    parts: List[bytes] = []
    first: Optional[Dict[str, Any]] = None
    offset = 0
    keys = ("size",) + fixed
    while True:
        r = client.call(cmd, offset=offset, length=PIECE, **args)
        if first is None:
            first = r
        elif any(r.get(k) != first.get(k) for k in keys):
            return b"", first, False
        if r.get("offset") != offset:
            raise ProtocolError(f"{cmd}: asked for offset {offset}, got {r.get('offset')}")
        chunk = _b64(r.get("data") or "")
        parts.append(chunk)
        offset += len(chunk)
        if r.get("eof") is True:
            break
        if not chunk:
            raise ProtocolError(f"{cmd}: an empty piece at offset {offset} before the end")
    data = b"".join(parts)
    if first.get("size") != len(data):
        raise ProtocolError(f"{cmd}: got {len(data)} bytes of {first.get('size')}")
    return data, first, True


def _job_id(job: JobRef) -> int:
    if isinstance(job, Job):
        return job.id
    if isinstance(job, bool) or not isinstance(job, int) or job < 1:
        raise InvalidArgument(f"invalid job {job!r}: expected a job id (an integer >= 1)")
    return job


def _load_spec(spec: Union[Mapping[str, Any], str, "os.PathLike[str]", None]) -> Dict[str, Any]:
    """The spec as a new dict: a mapping copied, a path read as JSON."""
    if spec is None:
        return {}
    if isinstance(spec, Mapping):
        return dict(spec)
    path = os.fspath(spec)
    try:
        with open(path, encoding="utf-8") as f:
            obj = json.load(f)
    except (OSError, ValueError) as e:
        raise InvalidArgument(f"cannot read job file '{path}': {e}") from None
    if not isinstance(obj, dict):
        raise InvalidArgument(f"job file '{path}' does not hold a JSON object")
    return obj


def _absolute_dataset(spec: Dict[str, Any]) -> None:
    """"fmt:DIR" with a relative DIR becomes "fmt:/abs/DIR" (as advctl)."""
    ds = spec.get("dataset")
    if not isinstance(ds, str) or ":" not in ds:
        return
    fmt, _, d = ds.partition(":")
    if not d or d.startswith("/"):
        return
    d = os.path.realpath(d) if os.path.exists(d) else os.path.join(os.getcwd(), d)
    spec["dataset"] = f"{fmt}:{d}"


def _drawing_spec(job: int, kind: str, n: int, train_spec: Optional[Dict[str, Any]],
                  keys: Dict[str, Any]) -> Dict[str, Any]:
    """The eval spec that draws pictures (client/images.c's drawing_spec):
    the caller's keys over these defaults, eps that of the job's
    adversarial training unless given."""
    spec: Dict[str, Any] = {"kind": "eval", "job": job, "name": "images", "priority": 1000,
                            "limit": n, "images": kind, "images_n": n, "sanity": False,
                            "calibration": False, "attack": "pgd"}
    ts = train_spec or {}
    eps = ts.get("eps")
    if ts.get("method") not in (None, "clean") and isinstance(eps, (int, float)) and eps > 0:
        spec["eps"] = eps
    spec.update(keys)
    return spec


def _image_value(name: str, data: bytes, pil: Any) -> Any:
    if name.endswith(".tsv"):
        return data.decode("utf-8", "replace")
    if pil is not None and name.endswith(".png"):
        import io
        img = pil.open(io.BytesIO(data))
        img.load()
        return img
    return data


_COMPARE_METRICS = ("val_clean_acc", "val_robust_acc", "test_clean_acc", "test_pgd20_acc")
# (column, report kind, dotted path into its data), client/reports.c's summary.
_COMPARE_REPORTS = (
    ("corruption_acc", "corruptions", "mean_accuracy"),
    ("ece", "calibration", "clean.before.ece"),
    ("ece_t", "calibration", "clean.after.ece"),
    ("expl_rand", "explanations", "fragility.random.topk"),
    ("expl_adv", "explanations", "fragility.adversarial.topk"),
)


def _dotted(data: Any, path: str) -> Optional[float]:
    for part in path.split("."):
        data = data.get(part) if isinstance(data, dict) else None
    return float(data) if isinstance(data, (int, float)) and not isinstance(data, bool) else None


def _compare_row(client: Client, job: int) -> Dict[str, Any]:
    st = client.call("status", job=job)
    metrics = client.call("metrics", job=job)["metrics"]
    reports = client.call("results", job=job).get("reports", [])
    row: Dict[str, Any] = {"job": job, "state": st.get("state"), "name": st.get("name")}
    for key in _COMPARE_METRICS:
        row[key] = None
    for m in metrics:  # in order: the last value wins
        if m.get("key") in _COMPARE_METRICS and isinstance(m.get("value"), (int, float)):
            row[m["key"]] = float(m["value"])
    for col, _, _ in _COMPARE_REPORTS:
        row[col] = None
    for r in reports:  # oldest job first: the latest of each kind wins
        for col, kind, path in _COMPARE_REPORTS:
            if r.get("kind") == kind:
                row[col] = _dotted(r.get("data"), path)
    return row
