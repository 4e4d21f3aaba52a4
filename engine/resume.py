"""Resuming a run, with one policy: the run being started decides, the checkpoint only continues it.

A resumed run keeps the checkpoint's weights, optimizer moments, counters, history, plots and RNG
state, but uses the settings given now: each optimizer group's hyperparameters (lr, weight decay, ...)
as this run built them, this run's ``num_epochs``, and this run's torch LR scheduler (built for the
new total) fast-forwarded to the checkpoint's update count. One line names each saved setting that
was replaced. Everything is checked before anything is loaded: on an error nothing of yours changed.
"""
from __future__ import annotations

import sys
import warnings
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import torch

from engine.gpu import fit_optimizer_state
from engine.loader_view import LoaderView
from handlers.checkpoint import check_checkpoint, load_checkpoint, read_checkpoint, recorded_epochs

__all__ = ["resume_run", "ContinueEpoch"]


def resume_run(path: str, to_load: dict[str, Any], num_epochs: int, epoch_length: int | None,
               updates_per_epoch: int | None = None) -> int:
    """Load ``path`` into ``to_load`` under the policy above; what it lacks (e.g. a plot) starts fresh.
    Returns how many batches of the current epoch the checkpoint had trained (a Ctrl-C mid-epoch): the
    run skips them (``ContinueEpoch``), so the epoch goes on with the examples it had not seen.

    A checkpoint from another world size or batch size had another number of batches an epoch: the
    trainer's counters are re-based on this run's loader, a mid-epoch one at the same fraction of it.
    """
    optimizer, scheduler = to_load["optimizer"], to_load.get("lr_scheduler")
    path, state = read_checkpoint(path)
    rebuilt = isinstance(scheduler, torch.optim.lr_scheduler.LRScheduler) and "lr_scheduler" in state
    parts = {k: v for k, v in to_load.items() if not (k == "lr_scheduler" and rebuilt)}
    required = ("model", "optimizer", "trainer")
    check_checkpoint(path, state, parts, required)
    saved = state.get("trainer") or {}  # Ignite keeps the iteration, or the epoch, and the epoch length
    _count_updates_of_older_files(saved, to_load["trainer"])
    per_epoch = saved.get("epoch_length")
    done = saved.get("epoch") or (saved.get("iteration", 0) // per_epoch if per_epoch else 0)
    if done >= num_epochs:
        raise ValueError(f"the checkpoint {path} already completed {done} epochs; "
                         f"pass num_epochs > {done} to train further")
    unsized = saved.get("iteration", 0) if not per_epoch and "iteration" in saved else 0
    if unsized:  # a stop in an unsized loader's first epoch: Ignite loads no position without a length
        state["trainer"] = {**saved, "iteration": 0}
    given = [{k: v for k, v in g.items() if k != "params"} for g in optimizer.param_groups]
    load_checkpoint(path, parts, required, state=state)
    replaced = _use_given_settings(optimizer, given, state["optimizer"]["param_groups"])
    fit_optimizer_state(optimizer)  # this run's fused / foreach / channels_last, with the saved values
    trainer_state = to_load["trainer"].state
    if rebuilt:
        rebase = updates_per_epoch if per_epoch and epoch_length not in (None, per_epoch) else None
        replaced.append(_position_schedule(scheduler, int(state["lr_scheduler"]["last_epoch"]), saved, rebase,
                                           to_load["trainer"]))
    done = saved.get("iteration", 0) % per_epoch if per_epoch and "iteration" in saved else unsized
    if unsized:
        trainer_state.iteration, trainer_state.epoch = unsized, 0
        if epoch_length is not None:
            replaced.append(f"the interrupted first epoch of an unsized loader goes on after its batch {unsized}")
    if per_epoch and epoch_length is not None and trainer_state.epoch_length != epoch_length:
        done = _rebase(trainer_state, done, per_epoch, epoch_length, replaced)
    if replaced:
        print(f"resume {path}: " + "; ".join(replaced), file=sys.stderr, flush=True)
    return done


class ContinueEpoch(LoaderView):
    """The training data, whose first epoch here skips the ``skip`` batches an interrupted run trained
    (made with ``engine.loader_view.view``, sized exactly when the loader is).

    The checkpoint's random state from the epoch's start draws the same order again; the skipped batches
    are read and dropped (what they cost is one pass of the loader over them), and ``then`` puts back
    the state of the moment of the interruption, so the model's own draws (dropout) continue too.
    """

    def __init__(self, loader: Iterable, skip: int, then: Callable[[], None] = lambda: None) -> None:
        super().__init__(loader)
        self.skip, self.then = skip, then

    def __iter__(self) -> Iterator[Any]:
        batches = iter(self.loader)
        if self.skip:
            for _ in range(self.skip):
                next(batches)
            self.skip = 0
            self.then()
        yield from batches


def _rebase(trainer_state: Any, done: int, per_epoch: int, epoch_length: int, replaced: list[str]) -> int:
    """The trainer's counters in this run's batches an epoch; a mid-epoch position at the same fraction (said)."""
    if done:
        before, done = done, round(done * epoch_length / per_epoch)
        replaced.append(f"the interrupted epoch had {before} of {per_epoch} batches; it goes on after batch {done} "
                        f"of this run's {epoch_length} (examples within one batch of the boundary are seen again or "
                        "not at all)")
    trainer_state.epoch_length = epoch_length
    trainer_state.iteration = trainer_state.epoch * epoch_length + done
    return done


def _count_updates_of_older_files(saved: dict[str, Any], trainer: Any) -> None:
    """Files written before the trainer checkpointed its update count: one update per batch (what they ran
    unless they accumulated gradients)."""
    if "optimizer_steps" in getattr(trainer, "state_dict_user_keys", ()) and "optimizer_steps" not in saved:
        saved["optimizer_steps"] = saved.get("iteration") or saved.get("epoch", 0) * (saved.get("epoch_length") or 0)


def _use_given_settings(optimizer: torch.optim.Optimizer, given: list[dict[str, Any]],
                        saved: list[dict[str, Any]]) -> list[str]:
    """Put this run's hyperparameters back into the loaded groups; describe each one that differs."""
    lines = []
    for i, (group, now, then) in enumerate(zip(optimizer.param_groups, given, saved)):
        for key, value in now.items():
            if key == "initial_lr":  # the schedule's base: reported through lr
                continue
            before = then.get("initial_lr", then.get(key)) if key == "lr" else then.get(key)
            if before != value:
                where = f" (group {i})" if len(given) > 1 else ""
                lines.append(f"{key}{where} {value} instead of the saved {before}")
        group.update(now)
    return lines


def _position_schedule(scheduler: torch.optim.lr_scheduler.LRScheduler, steps: int, saved: dict[str, Any],
                       updates_per_epoch: int | None, trainer: Any) -> str:
    """Step this run's scheduler (built for this run's length) to the run's progress: the saved count when the
    epochs are as long as the checkpoint's, else (``updates_per_epoch`` given: another batch size or world size)
    the epochs done in this run's updates an epoch when it steps per update. The trainer's update count follows,
    so per-update events agree."""
    updates, epochs_done = saved.get("optimizer_steps"), recorded_epochs(saved)
    line = f"the lr schedule is this run's {type(scheduler).__name__}, fast-forwarded to update {steps}"
    if updates_per_epoch and updates and steps == updates and epochs_done:  # it stepped once an update
        now = round(epochs_done * updates_per_epoch)
        if now != steps:
            line = (f"the lr schedule is this run's {type(scheduler).__name__}, positioned at the run's progress "
                    f"({epochs_done:g} epochs): update {now} of this run's {updates_per_epoch} an epoch (the "
                    f"checkpoint's update {steps} counted {updates / epochs_done:g} an epoch)")
            steps = trainer.state.optimizer_steps = now
    _fast_forward(scheduler, steps)
    return line


def _fast_forward(scheduler: torch.optim.lr_scheduler.LRScheduler, steps: int) -> None:
    """Step a fresh scheduler ``steps`` times, as the interrupted run did (no optimizer step between)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "lr_scheduler.step() before optimizer.step()"
        for _ in range(steps):
            scheduler.step()
