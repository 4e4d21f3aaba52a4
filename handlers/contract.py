"""The typed contract between a training step and the handlers that read it.

A step built by ``engine.create_trainer`` / ``create_evaluator`` publishes the book's batch
statistics as ``engine.state.step_output`` (a ``StepOutput``) whatever its ``output_transform``
makes of ``engine.state.output``, and keeps the update count and loss scaler in typed state
fields. Handlers read these through the functions below, never through ad-hoc keys, so a custom
``output_transform`` cannot break the book's metrics, timer or NaN guard.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypedDict

import torch
from ignite.engine import Engine, EventEnum, Events

__all__ = ["StepOutput", "EvalOutput", "BOOK_KEYS", "UpdateEvents", "update_events", "step_output", "optimizer_steps",
           "grad_scaler", "publishes_step_output", "step_started"]


class StepOutput(TypedDict):
    """One batch's figures, on the device: nothing here forces a host sync."""

    loss: torch.Tensor  # sum of the per-example losses (0-dim); absent from an evaluator without a loss
    correct: torch.Tensor  # number of correct predictions (0-dim)
    examples: int  # labels.shape[0]
    predictions: int  # labels.numel(): pixels for segmentation


class EvalOutput(StepOutput, total=False):
    """An evaluator's batch: also the predictions and labels under Ignite's own keys, so any Ignite metric
    (``TopKCategoricalAccuracy``, ``Precision``, ...) attached to it reads them with no output_transform."""

    y_pred: torch.Tensor
    y: torch.Tensor


BOOK_KEYS: tuple[str, ...] = tuple(StepOutput.__annotations__)


class UpdateEvents(EventEnum):
    """The seam for per-update work (schedules, EMA of weights, SWA, a gradient-norm plot): with gradient
    accumulation an update is every k batches, not every iteration. This project's trainer fires them
    inside its step. As Ignite's STARTED/COMPLETED pairs do, both events of one update see one count,
    ``state.update_number`` (the n-th update: ``UPDATE_STARTED(every=2)`` and ``UPDATE_COMPLETED(every=2)``
    fire for updates 2, 4, 6), which is what their ``every=`` / ``once=`` filters read;
    ``state.optimizer_steps`` counts the updates applied (checkpointed). An fp16 update skipped for inf
    gradients fires UPDATE_STARTED but not UPDATE_COMPLETED, and the next update keeps its number."""

    UPDATE_STARTED = "update_started"  # before the first batch of an update's group is computed
    UPDATE_COMPLETED = "update_completed"  # after ``optimizer.step()``; ``state.optimizer_steps`` counts it


def update_events(engine: Engine) -> tuple[Any, Any]:
    """``(started, completed)`` of one optimizer update on ``engine``: ``UpdateEvents`` where the trainer
    fires them, else an iteration's (an Engine not built here updates once per batch)."""
    if engine.has_registered_events(UpdateEvents.UPDATE_COMPLETED):
        return UpdateEvents.UPDATE_STARTED, UpdateEvents.UPDATE_COMPLETED
    return Events.ITERATION_STARTED, Events.ITERATION_COMPLETED


def publishes_step_output(engine: Engine) -> bool:
    """True for Engines made by this project's factories (they declare ``state.step_output``)."""
    return hasattr(engine.state, "step_output")


def step_output(engine: Engine, reader: str = "a book handler", keys: tuple[str, ...] = BOOK_KEYS) -> Mapping[str, Any]:
    """The batch statistics of the last step, checked to hold ``keys``.

    An Engine of this project's factories always has them; another Engine must return a mapping with
    the book's keys from its step, and is told so by name when it does not.
    """
    out = engine.state.step_output if publishes_step_output(engine) else engine.state.output
    if isinstance(out, Mapping) and all(k in out for k in keys):
        return out
    got = sorted(out) if isinstance(out, Mapping) else type(out).__name__
    raise KeyError(
        f"{reader} reads the step's {', '.join(keys)}, but this Engine's output is {got}; build the Engine "
        "with engine.create_trainer / create_evaluator, or return a dict with the keys of handlers.StepOutput "
        "from your step function"
    )


def optimizer_steps(engine: Engine) -> int | None:
    """Optimizer updates so far (fewer than iterations under gradient accumulation); None when not kept."""
    return getattr(engine.state, "optimizer_steps", None)


def grad_scaler(engine: Engine) -> torch.amp.GradScaler | None:
    """The fp16 loss scaler the step uses (checkpointed with the run), if any."""
    return getattr(engine.state, "scaler", None)


def step_started(engine: Engine) -> float | None:
    """``time.perf_counter()`` when the current step began, for an Engine whose step stamps it (this
    project's trainer: a timer then needs no ITERATION_STARTED handler); None for other Engines."""
    return getattr(engine.state, "step_started", None)
