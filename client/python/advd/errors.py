"""The exceptions of the advd client.

Every failure the daemon reports is an :class:`Error` carrying the
protocol's stable error code (``.code``) and its one-line message
(``.message``); each code has its own subclass so that callers can catch
exactly what they expect (``except advd.NotFound``). Failures of the
connection itself are :class:`ConnectionError` (also a subclass of the
built-in ``ConnectionError``), a finished job that failed is
:class:`JobFailed`, and a server that does not speak our protocol is
:class:`ProtocolError`.
"""
from __future__ import annotations

import builtins
from typing import Dict, Type

__all__ = [
    "Error", "BadRequest", "InvalidArgument", "NotFound", "Conflict", "TooLarge",
    "Forbidden", "Internal", "ConnectionError", "Unreachable", "Disconnected",
    "ProtocolError", "JobFailed", "error_for",
]


class Error(Exception):
    """An error reported by advd (or found by this client).

    ``code`` is the protocol's machine-readable error code (e.g.
    ``"not_found"``), ``message`` the human-readable line, which names the
    field at fault (e.g. ``invalid 'epochs': expected an integer in
    [1, 100000], got 0``).
    """

    code: str = "error"

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code!r}, message={self.message!r})"


class BadRequest(Error):
    """The request was not a well-formed protocol message (``bad_request``)."""
    code = "bad_request"


class InvalidArgument(Error):
    """A well-formed request with a bad value, e.g. a bad job-spec key
    (``invalid_argument``)."""
    code = "invalid_argument"


class NotFound(Error):
    """No such job, checkpoint or evaluation (``not_found``)."""
    code = "not_found"


class Conflict(Error):
    """The request conflicts with the job's state, e.g. cancelling a finished
    job (``conflict``)."""
    code = "conflict"


class TooLarge(Error):
    """A message or answer over the protocol's size limits (``too_large``)."""
    code = "too_large"


class Forbidden(Error):
    """This user may not connect, or may not act on that job (``forbidden``)."""
    code = "forbidden"


class Internal(Error):
    """The daemon failed on its side, e.g. a damaged checkpoint (``internal``)."""
    code = "internal"


class ConnectionError(Error, builtins.ConnectionError):
    """The daemon cannot be reached, or the connection to it broke."""
    code = "unreachable"


class Unreachable(ConnectionError):
    """No daemon answers at the socket (``.socket`` names it)."""

    def __init__(self, socket: str, why: str) -> None:
        self.socket = socket
        super().__init__(
            f"cannot reach advd at '{socket}': {why}; start it with `advd` (or "
            f"`advd --socket {socket}`), or point the client at it with "
            f"advd.connect(socket=PATH) or ADVD_SOCKET")


class Disconnected(ConnectionError):
    """The daemon closed the connection or went away in the middle of a
    request or a watch (e.g. it was stopped or killed). ``unsent`` is True
    when the request never reached it whole (so it did nothing)."""
    code = "disconnected"
    unsent = False


class ProtocolError(Error):
    """The peer is not advd, speaks another protocol version, or sent a
    message this client cannot read."""
    code = "protocol"


class JobFailed(Error):
    """A job the client waited for ended ``failed``; ``.job`` is its id and
    the message the daemon's reason."""
    code = "failed"

    def __init__(self, job: int, message: str) -> None:
        self.job = job
        super().__init__(f"job {job} failed: {message}")


_BY_CODE: Dict[str, Type[Error]] = {
    cls.code: cls
    for cls in (BadRequest, InvalidArgument, NotFound, Conflict, TooLarge, Forbidden, Internal)
}


def error_for(code: str, message: str) -> Error:
    """The exception for a protocol error code (a code this client does not
    know, from a newer daemon, still gives an :class:`Error` with that code)."""
    cls = _BY_CODE.get(code)
    return cls(message) if cls else Error(message, code)
