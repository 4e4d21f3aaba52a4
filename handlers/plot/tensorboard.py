"""``TensorboardPlotter``: the run's record, also written as TensorBoard event files through Ignite's own
``TensorboardLogger`` (``pip install tensorboard``; ``--plot tensorboard``, ``D2L_IGNITE_PLOT=tensorboard``).

Each trace is a scalar tag ``window/trace`` (``train_ch13/train loss``, ``lr/lr``) whose step is the trainer's
iteration (TensorBoard counts whole steps; the record keeps the epoch fractions). Values are written as they
come, from the training thread: a one-element tensor is read there (at the book's points, where the figures
are already read).
"""
from __future__ import annotations

import os

from handlers.plot.base import Plotter

__all__ = ["TensorboardPlotter"]


class TensorboardPlotter(Plotter):
    def __init__(self, env: str = "main", *, out_dir: str | None = None, log_dir: str | None = None,
                 close_timeout: float = 10.0) -> None:
        folder = os.path.abspath(log_dir or os.path.join(out_dir or env, "tensorboard"))
        try:
            from ignite.handlers.tensorboard_logger import TensorboardLogger
            self.logger = TensorboardLogger(log_dir=folder)
        except (ImportError, ModuleNotFoundError, RuntimeError) as e:
            raise ModuleNotFoundError(f"--plot tensorboard needs the tensorboard package ({e}): pip install "
                                      "tensorboard, or choose --plot visdom / off") from None
        super().__init__(env, out_dir=out_dir, close_timeout=close_timeout)
        self.live = True  # the event files are there to view while the run goes on
        self._counts: dict[tuple[str, str], int] = {}  # points written per trace

    @property
    def url(self) -> str:
        return f"event files in {self.logger.writer.log_dir} (view: tensorboard --logdir {self.logger.writer.log_dir})"

    def _shown(self, window: str, trace: str | None = None, step: int | None = None) -> None:
        if trace is None:  # a window declared, or restored whole (a resume): write what it has not yet
            for name in list(self.store.windows[window].traces):
                self._write(window, name)
        else:
            self._write(window, trace, step)

    def _write(self, window: str, trace: str, step: int | None = None) -> None:
        done = self._counts.get((window, trace), 0)
        points = self.store.points(window, trace, done)
        for i, (x, y) in enumerate(points):
            at = step if step is not None and i == len(points) - 1 else done + i + 1
            self.logger.writer.add_scalar(f"{window}/{trace}", y, at)
        self._counts[(window, trace)] = done + len(points)

    def _delivered(self, timeout: float) -> bool:
        self.logger.writer.flush()
        return True

    def _finish(self, timeout: float) -> bool:
        self.logger.close()
        return True
