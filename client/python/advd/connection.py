"""One connection to advd: the socket path, the greeting, requests and their
answers, and the events a ``watch`` pushes.

Wire format (proto/proto.h): newline-delimited JSON over a Unix stream
socket, one object per line. On connect the daemon greets with
``{"hello":"advd","version":"0.4.0","protocol":2}`` (or answers a refusal,
``{"id":null,"ok":false,"error":{...}}``, and closes); a request is
``{"id":N,"cmd":NAME,...arguments}``; its answer ``{"id":N,"ok":true,
"result":{...}}`` or ``{"id":N,"ok":false,"error":{"code","message"}}``;
a watched job's events ``{"event":"progress"|"state","job":N,...}``.

A :class:`Connection` is safe to share between threads: one lock makes each
request and its answer one exchange. Events arrive only on a connection
that asked to ``watch``; :meth:`Connection.events` reads them.
"""
from __future__ import annotations

import json
import os
import socket as _socket
import threading
from typing import Any, Dict, Iterator, Optional, Union

from .errors import Disconnected, InvalidArgument, ProtocolError, Unreachable, error_for

__all__ = ["PROTOCOL", "SYSTEM_SOCKET", "default_socket", "Connection"]

#: The protocol version this client speaks (ADV_PROTOCOL in proto/proto.h).
PROTOCOL = 2
#: The system service's socket (etc/advd.service), the last resort.
SYSTEM_SOCKET = "/run/advd/advd.sock"
# Seconds a connection waits for the greeting when no timeout is given.
GREETING_TIMEOUT = 30.0
# sizeof(struct sockaddr_un.sun_path) on Linux, terminating NUL included.
_SUN_PATH_MAX = 108


def default_socket() -> str:
    """The socket ``advctl`` would use: ``$ADVD_SOCKET``; else the user's own
    daemon (``$XDG_RUNTIME_DIR/advd.sock``, else ``/tmp/advd-UID.sock``) when
    that socket exists; else the system service's socket when it exists;
    else the user's default (so that the error says where a daemon should
    be)."""
    env = os.environ.get("ADVD_SOCKET")
    if env:
        return env
    run = os.environ.get("XDG_RUNTIME_DIR")
    path = f"{run}/advd.sock" if run else f"/tmp/advd-{os.getuid()}.sock"
    if not os.path.exists(path) and os.path.exists(SYSTEM_SOCKET):  # access(F_OK)
        return SYSTEM_SOCKET
    return path


class Connection:
    """A connection to advd at ``path``, greeted and checked.

    :meth:`call` sends one request and returns its result object, raising
    the daemon's error as an :class:`advd.Error` subclass. ``timeout`` (in
    seconds, ``None``: none) bounds connecting and every read.
    """

    def __init__(self, path: Union[str, "os.PathLike[str]", None] = None,
                 timeout: Optional[float] = None) -> None:
        self.path = os.fspath(path) if path else default_socket()
        self.server_version = ""
        self._lock = threading.Lock()
        self._buf = bytearray()
        self._next_id = 1
        self._sock: Optional[_socket.socket] = None
        if len(os.fsencode(self.path)) >= _SUN_PATH_MAX:
            raise Unreachable(self.path, "socket path too long")
        sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
        sock.settimeout(timeout)
        try:
            sock.connect(self.path)
        except OSError as e:
            sock.close()
            raise Unreachable(self.path, e.strerror or str(e)) from None
        self._sock = sock
        try:
            # advd greets at once; a peer that says nothing is not advd (or
            # is stuck): bounded even without a timeout.
            sock.settimeout(timeout if timeout is not None else GREETING_TIMEOUT)
            try:
                self._greet()
            except _socket.timeout:
                raise Unreachable(self.path, "no greeting within "
                                  f"{sock.gettimeout():g} s (is it advd?)") from None
            sock.settimeout(timeout)
        except BaseException:
            self.close()
            raise

    # -------------------------------------------------------- lifecycle

    def close(self) -> None:
        """Close the socket (idempotent)."""
        sock, self._sock = self._sock, None
        if sock is not None:
            sock.close()

    @property
    def closed(self) -> bool:
        return self._sock is None

    def __enter__(self) -> "Connection":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"advd {self.server_version}"
        return f"<advd.Connection {self.path!r} ({state})>"

    def settimeout(self, timeout: Optional[float]) -> None:
        """Bound each later read by ``timeout`` seconds (``None``: wait)."""
        if self._sock is not None:
            self._sock.settimeout(timeout)

    # ---------------------------------------------------------- reading

    def _read_message(self) -> Dict[str, Any]:
        """The next line from the daemon as a JSON object."""
        while True:
            nl = self._buf.find(b"\n")
            if nl >= 0:
                line = bytes(self._buf[:nl]).rstrip(b"\r")
                del self._buf[:nl + 1]
                if not line.strip():
                    continue
                try:
                    msg = json.loads(line)
                except ValueError as e:
                    raise ProtocolError(f"bad message from advd: {e}") from None
                if not isinstance(msg, dict):
                    raise ProtocolError("bad message from advd: not a JSON object")
                return msg
            if self._sock is None:
                raise Disconnected("the connection to advd is closed")
            try:
                chunk = self._sock.recv(1 << 16)
            except _socket.timeout:  # an OSError too, but not a lost connection
                raise
            except OSError as e:
                self.close()
                raise Disconnected(f"lost the connection to advd at '{self.path}': "
                                   f"{e.strerror or e}") from None
            if not chunk:
                self.close()
                what = "in the middle of a message" if self._buf else "(is it still running?)"
                raise Disconnected(f"advd at '{self.path}' closed the connection {what}")
            self._buf += chunk

    def _greet(self) -> None:
        msg = self._read_message()
        if msg.get("ok") is False:
            err = msg.get("error") or {}
            raise error_for(str(err.get("code", "internal")),
                            f"advd refused the connection: {err.get('message', '')}")
        hello, proto, ver = msg.get("hello"), msg.get("protocol"), msg.get("version")
        if hello != "advd" or not isinstance(proto, int) or not isinstance(ver, str):
            raise ProtocolError("the server did not greet as advd")
        if proto != PROTOCOL:
            raise ProtocolError(f"server '{ver[:40]}' speaks protocol {proto}, "
                                f"this client speaks {PROTOCOL}")
        self.server_version = ver

    # ---------------------------------------------------------- requests

    def _send(self, obj: Dict[str, Any]) -> None:
        if self._sock is None:
            raise Disconnected("the connection to advd is closed")
        try:
            text = json.dumps(obj, separators=(",", ":"), allow_nan=False, default=_plain)
        except (TypeError, ValueError) as e:
            raise InvalidArgument(f"cannot encode the request: {e}") from None
        data = (text + "\n").encode()
        try:
            self._sock.sendall(data)
        except OSError as e:
            err = Disconnected(f"cannot write to advd at '{self.path}': {e.strerror or e}")
            err.unsent = True  # no whole line went out: the daemon did nothing
            raise err from None

    def call(self, cmd: str, **args: Any) -> Dict[str, Any]:
        """Send ``{"cmd": cmd, **args}`` and return the result object.

        Arguments whose value is ``None`` are left out. Raises the daemon's
        error (:class:`advd.NotFound`, ...) or :class:`advd.ConnectionError`.
        """
        req = {k: v for k, v in args.items() if v is not None}
        with self._lock:
            rid = self._next_id
            self._next_id += 1
            req["id"], req["cmd"] = rid, cmd
            try:
                self._send(req)
            except Disconnected:
                # The daemon may have answered before it closed (e.g.
                # too_large for a line over its limit): that answer says more.
                try:
                    self._answer(rid)
                except (Disconnected, _socket.timeout):
                    pass
                finally:
                    self.close()
                raise
            try:
                return self._answer(rid)
            except (KeyboardInterrupt, _socket.timeout, ProtocolError):
                # Out of step with the daemon: the next call starts afresh.
                self.close()
                raise

    def _answer(self, rid: int) -> Dict[str, Any]:
        """Read up to the answer to request rid. An error without an id
        answers a line the daemon could not read (too long, not JSON):
        ours, as one request is on the way at a time."""
        while True:
            msg = self._read_message()
            if "event" in msg:
                continue
            if msg.get("id") == rid or (msg.get("id") is None and msg.get("ok") is False):
                return _result(msg)
            # else: the answer of a call interrupted earlier (e.g. Ctrl-C)

    def events(self) -> Iterator[Dict[str, Any]]:
        """The events the daemon pushes on this connection (after a
        ``watch``), as they come; answers to requests are skipped."""
        while True:
            with self._lock:
                msg = self._read_message()
            if isinstance(msg.get("event"), str):
                yield msg


def _plain(value: Any) -> Any:
    """What JSON cannot say by itself: numpy and torch numbers and arrays
    (from a notebook's computations) as their Python values, paths as
    strings."""
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    raise TypeError(f"{type(value).__name__!r} is not a JSON value")


def _result(msg: Dict[str, Any]) -> Dict[str, Any]:
    ok = msg.get("ok")
    if ok is True:
        result = msg.get("result")
        if not isinstance(result, dict):
            raise ProtocolError("response without a 'result' object")
        return result
    if ok is False:
        err = msg.get("error")
        if not isinstance(err, dict) or not isinstance(err.get("code"), str) \
                or not isinstance(err.get("message"), str):
            raise ProtocolError("failed response without 'error.code' and 'error.message'")
        raise error_for(err["code"], err["message"])
    raise ProtocolError("message from the server is neither a greeting, a response nor an event")
