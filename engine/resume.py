"""Resuming a run: load a checkpoint into the objects of this run, and re-base its counters."""
from __future__ import annotations

from typing import Any

from handlers.checkpoint import load_checkpoint

__all__ = ["resume_run"]


def resume_run(path: str, to_load: dict[str, Any], num_epochs: int, epoch_length: int | None) -> None:
    """Load ``path`` into ``to_load``; what it lacks that this run adds (e.g. a plot) starts fresh.

    A checkpoint from another world size had another number of batches an epoch: the trainer's
    counters are re-based on this run's loader (checkpoints are taken at epoch ends).
    """
    load_checkpoint(path, to_load, required=("model", "optimizer", "trainer"))
    state = to_load["trainer"].state
    if epoch_length is not None and state.epoch_length != epoch_length:
        state.epoch_length, state.iteration = epoch_length, state.epoch * epoch_length
    done = state.epoch
    if done >= num_epochs:
        raise ValueError(f"the checkpoint {path} already completed {done} epochs; "
                         f"pass num_epochs > {done} to train further")
