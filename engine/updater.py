"""The optimizer update of a training step: loss scaling, accumulation over k batches, clipping.

Gradients of ``k`` batches are summed before one step, which for the book's sum-of-losses objective
is exactly the gradient of one batch ``k`` times larger (a mean-reduced loss is divided by ``k`` for
the same reason). The last group of an epoch steps even when shorter than ``k``, so no gradient
crosses an epoch boundary.
"""
from __future__ import annotations

from collections.abc import Iterable

import torch
from ignite.engine import Engine

__all__ = ["Updater"]


class Updater:
    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        params: Iterable[torch.nn.Parameter],
        *,
        scaler: torch.amp.GradScaler | None = None,
        accumulation_steps: int = 1,
        clip_grad_norm: float | None = None,
        world_size: int = 1,
    ) -> None:
        if not isinstance(accumulation_steps, int) or isinstance(accumulation_steps, bool) or accumulation_steps < 1:
            raise ValueError(f"accumulation_steps must be a whole number >= 1, got {accumulation_steps!r}")
        if clip_grad_norm is not None and not clip_grad_norm > 0:
            raise ValueError(f"clip_grad_norm must be a positive number (a norm bound), got {clip_grad_norm!r}")
        self.optimizer, self.scaler = optimizer, scaler
        self.params = [p for p in params if p.requires_grad]
        self.k, self.clip = accumulation_steps, clip_grad_norm
        self.pending = 0  # batches whose gradients wait for a step
        self.mean = False  # whether the last objective was a mean (then divided by k)
        self.world = world_size  # DDP averages gradients over processes; a sum objective undoes that

    def backward(self, objective: torch.Tensor, is_mean: bool) -> None:
        if self.pending == 0:
            self.optimizer.zero_grad(set_to_none=True)
        self.mean = is_mean and self.k > 1
        if self.mean:
            objective = objective / self.k
        elif not is_mean and self.world > 1:
            objective = objective * self.world
        (self.scaler.scale(objective) if self.scaler is not None else objective).backward()
        self.pending += 1

    def after_batch(self, engine: Engine) -> None:
        """Step after ``k`` batches or at the epoch's last batch (when its length is known)."""
        n = engine.state.epoch_length
        last = n is not None and engine.state.iteration % n == 0
        if self.pending >= self.k or last:
            self.step(engine)

    def flush(self, engine: Engine) -> None:
        """At epoch end, step on what is left (an iterable of unknown length ends the epoch unannounced)."""
        if self.pending:
            self.step(engine)

    def step(self, engine: Engine) -> None:
        """One optimizer update from the pending gradients, counted in ``engine.state.optimizer_steps``."""
        if self.mean and self.pending < self.k:  # a short last group: its mean counts fully
            for p in self.params:
                if p.grad is not None:
                    p.grad.mul_(self.k / self.pending)
        if self.scaler is not None and self.clip is not None:
            self.scaler.unscale_(self.optimizer)
        if self.clip is not None:
            torch.nn.utils.clip_grad_norm_(self.params, self.clip)
        if self.scaler is not None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        self.pending = 0
        engine.state.optimizer_steps += 1
