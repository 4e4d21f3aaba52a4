"""The run's figures, named from the Engines' metrics: what the History keeps, the per-epoch line prints and
the book window draws, so a new figure is one metric attached to an Engine.

A figure is a metric of the trainer (its running figures: ``train <name>``), of the evaluator (``test <name>``)
or of the EMA weights' evaluator (``test <name> (ema)``). The step timer's examples/sec and the learning rate
describe the run, not the model: they are kept apart (the History's ``examples_per_sec``, the lr window).
"""
from __future__ import annotations

import torch
from ignite.engine import Engine

__all__ = ["Figures", "RUN_FIGURES", "field_name"]

RUN_FIGURES = ("examples/sec", "lr")


def field_name(figure: str) -> str:
    """The History attribute of a figure: ``test acc (ema)`` is ``test_acc_ema``, ``train loss`` ``train_loss``."""
    return figure.replace(" (ema)", "_ema").replace(" ", "_").replace("/", "_per_")


class Figures:
    def __init__(self, trainer: Engine, evaluator: Engine | None = None, ema_evaluator: Engine | None = None) -> None:
        self.trainer, self.evaluator, self.ema_evaluator = trainer, evaluator, ema_evaluator

    def running(self) -> dict[str, float]:
        """The trainer's figures now (at a book point: the epoch's running ones)."""
        return _named(self.trainer, "train {}")

    def tests(self) -> dict[str, float]:
        """The evaluators' figures of the last test pass."""
        return {**_named(self.evaluator, "test {}"), **_named(self.ema_evaluator, "test {} (ema)")}

    def epoch(self) -> dict[str, float]:
        """Every figure at an epoch's end, after its test pass."""
        return {**self.running(), **self.tests()}


def _named(engine: Engine | None, pattern: str) -> dict[str, float]:
    if engine is None:
        return {}
    return {pattern.format(k): float(v) for k, v in engine.state.metrics.items() if k not in RUN_FIGURES and (
        isinstance(v, (int, float)) and not isinstance(v, bool) or isinstance(v, torch.Tensor) and v.numel() == 1)}
