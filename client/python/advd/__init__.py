"""advd: a Python client for the adversarial-training daemon.

A thin, exact mirror of ``advctl`` over advd's Unix socket, standard library
only at its core; numpy, torch, pandas, tqdm and Pillow are used when
installed, never required::

    import advd

    with advd.connect() as c:                        # the socket advctl would use
        job = c.submit(model="cnn-small", epochs=1, method="pgd", eps=0.1)
        job.wait()                                   # a progress bar; "succeeded"
        job.metrics(as_frame=True)                   # pandas, one column per metric
        ev = job.eval(attack="apgd-ce", eps=[0.05, 0.1])
        ev.wait()
        c.compare([job, ev])
        net = job.torch_model()                      # nn.Sequential with advd's weights

Errors are :class:`advd.Error` subclasses carrying the protocol's code
(``NotFound``, ``InvalidArgument``, ...); a daemon that cannot be reached or
goes away raises :class:`advd.ConnectionError`. A :class:`Client` may be
shared between threads (see :mod:`advd.client`).
"""
from .client import Client, Images, Job, __version__, compare, connect
from .connection import PROTOCOL, default_socket
from .errors import (BadRequest, Conflict, ConnectionError, Disconnected, Error, Forbidden,
                     Internal, InvalidArgument, JobFailed, NotFound, ProtocolError, TooLarge,
                     Unreachable)

__all__ = [
    "connect", "compare", "default_socket", "Client", "Job", "Images", "PROTOCOL",
    "__version__", "Error", "BadRequest", "InvalidArgument", "NotFound", "Conflict",
    "TooLarge", "Forbidden", "Internal", "ConnectionError", "Unreachable", "Disconnected",
    "ProtocolError", "JobFailed",
]
