"""Showing a job's progress while :meth:`advd.Job.wait` follows it: a tqdm
bar when tqdm is importable (``tqdm.auto``: a widget in notebooks), else a
plain text line like ``advctl watch``'s:

    job 3 [########............]  42% epoch 1/2 batch 20/47 ETA 0m31s 640 img/s loss 1.234 val 71.0%

On a terminal or in a notebook the line is redrawn in place (``\\r``);
written to a file or a pipe, a new line goes out at most every 10 seconds
and at the end, so logs stay short.
"""
from __future__ import annotations

import math
import sys
import time
from typing import Any, Dict, Optional, TextIO

__all__ = ["Progress", "make_progress"]

_ACCURACIES = (("train_acc", "train"), ("val_clean_acc", "val"), ("val_robust_acc", "robust"))


class Progress:
    """What the events of one job tell so far (mirrors client/show.c)."""

    def __init__(self, job: int, epochs: int = 0) -> None:
        self.job, self.epochs = job, epochs
        self.progress = 0.0
        self.epoch = self.step = 0
        self.loss = math.nan
        self.images_per_s = 0.0
        self.acc: Dict[str, float] = {}
        self._t0: Optional[float] = None
        self._p0 = 0.0

    def update(self, ev: Dict[str, Any]) -> None:
        """Take in a progress event."""
        self.progress = float(ev.get("progress") or 0.0)
        if self._t0 is None:
            self._t0, self._p0 = time.monotonic(), self.progress
        metrics = ev.get("metrics")
        # Metrics events number epochs from 0 and repeat an older progress.
        if not isinstance(metrics, dict):
            if isinstance(ev.get("epoch"), int):
                self.epoch = ev["epoch"]
            if isinstance(ev.get("step"), int):
                self.step = ev["step"]
        if isinstance(ev.get("loss"), (int, float)):
            self.loss = float(ev["loss"])
        if isinstance(ev.get("images_per_s"), (int, float)):
            self.images_per_s = float(ev["images_per_s"])
        if isinstance(metrics, dict):
            for key, _ in _ACCURACIES:
                if isinstance(metrics.get(key), (int, float)):
                    self.acc[key] = float(metrics[key])

    def eta(self) -> Optional[float]:
        """Seconds left at the rate seen so far (None before any rate)."""
        if self._t0 is None or self.progress <= self._p0:
            return None
        dt = time.monotonic() - self._t0
        return (1 - self.progress) * dt / (self.progress - self._p0)

    def where(self) -> str:
        """``epoch E/N batch B/M`` for training jobs, else empty."""
        if self.epochs <= 0 or self.progress <= 0 or self.step <= 0:
            return ""
        per_epoch = round(self.step / self.progress / self.epochs)
        batch, epoch = (self.step - self.epoch * per_epoch if per_epoch > 0 else 0), self.epoch + 1
        if batch <= 0 and self.epoch > 0:  # at an epoch's end
            batch, epoch = per_epoch, self.epoch
        return f"epoch {epoch}/{self.epochs} batch {batch}/{per_epoch}"

    def details(self) -> str:
        """Rate, loss and accuracies as ``640 img/s loss 1.234 val 71.0%``."""
        parts = []
        if self.images_per_s > 0:
            parts.append(f"{self.images_per_s:.0f} img/s")
        if not math.isnan(self.loss):
            parts.append(f"loss {self.loss:.3f}")
        parts += [f"{name} {100 * self.acc[key]:.1f}%" for key, name in _ACCURACIES
                  if key in self.acc]
        return " ".join(parts)

    def line(self) -> str:
        fill = int(self.progress * 20 + 0.5)
        eta = self.eta()
        eta_s = "?" if eta is None or eta > 1e7 else (
            f"{int(eta) // 3600}h{int(eta) % 3600 // 60:02d}m" if eta >= 3600
            else f"{int(eta) // 60}m{int(eta) % 60:02d}s")
        text = (f"job {self.job} [{'#' * fill}{'.' * (20 - fill)}] {100 * self.progress:3.0f}%"
                f" {self.where()} ETA {eta_s} {self.details()}")
        return " ".join(text.split())


class _Plain:
    """The plain text line."""

    def __init__(self, state: Progress, out: TextIO) -> None:
        self.state, self.out = state, out
        try:
            inplace = out.isatty()
        except (AttributeError, ValueError):
            inplace = False
        self.inplace = inplace or "ipykernel" in sys.modules
        self.last = 0.0
        self.width = 0

    def show(self, final: bool = False) -> None:
        line = self.state.line()
        if self.inplace:
            pad = max(0, self.width - len(line))
            self.width = len(line)
            self.out.write("\r" + line + " " * pad + ("\n" if final else ""))
        elif final or time.monotonic() - self.last >= 10:
            self.last = time.monotonic()
            self.out.write(line + "\n")
        self.out.flush()

    def close(self, message: str) -> None:
        self.show(final=True)
        self.out.write(message + "\n")
        self.out.flush()

    def abort(self) -> None:
        """End the line when the wait ends early (an exception)."""
        if self.inplace and self.width:
            self.out.write("\n")
            self.out.flush()


class _Tqdm:
    """A tqdm bar in percent."""

    def __init__(self, state: Progress, out: Optional[TextIO], tqdm: Any) -> None:
        self.state, self.out, self.tqdm = state, out, tqdm
        self.bar = tqdm(total=100, desc=f"job {state.job}", unit="%", file=out,
                        bar_format="{desc}: {percentage:3.0f}%|{bar}| "
                                   "[{elapsed}<{remaining}{postfix}]")

    def show(self, final: bool = False) -> None:
        self.bar.n = round(100 * self.state.progress, 1)
        post = " ".join(p for p in (self.state.where(), self.state.details()) if p)
        self.bar.set_postfix_str(post, refresh=False)
        self.bar.refresh()

    def close(self, message: str) -> None:
        self.show(final=True)
        self.bar.close()
        self.tqdm.write(message, file=self.out if self.out is not None else sys.stderr)

    def abort(self) -> None:
        self.bar.close()


def make_progress(state: Progress, progress: Any, out: Optional[TextIO]) -> Any:
    """The renderer for ``Job.wait(progress=...)``: ``True`` a tqdm bar when
    tqdm is importable, else the plain line; ``"plain"`` the plain line;
    ``False`` or ``None`` nothing."""
    if not progress:
        return None
    if progress is True:
        try:
            from tqdm.auto import tqdm
        except ImportError:
            tqdm = None
        if tqdm is not None:
            return _Tqdm(state, out, tqdm)
    elif progress != "plain":
        raise ValueError(f"invalid progress {progress!r}: expected True, False or 'plain'")
    return _Plain(state, out if out is not None else sys.stderr)
