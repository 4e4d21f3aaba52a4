"""The optimizer update of a training step: loss scaling, accumulation over k batches, clipping.

Gradients of ``k`` batches are summed before one step, which for the book's sum-of-losses objective
is exactly the gradient of one batch ``k`` times larger (a mean-reduced loss is divided by ``k`` for
the same reason). The last group of an epoch steps even when shorter than ``k``, so no gradient
crosses an epoch boundary. Under DDP, which averages gradients over ``world_size`` processes, a
sum objective is multiplied back so the update equals the one-process update of the global batch.
"""
from __future__ import annotations

from collections.abc import Iterable

import torch

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
        self.optimizer, self.scaler = optimizer, scaler
        self.params = [p for p in params if p.requires_grad]
        self.k, self.clip, self.world = accumulation_steps, clip_grad_norm, world_size
        self.pending = 0  # batches whose gradients wait for a step
        self.mean = False  # whether the last objective was a mean (then divided by k)

    @property
    def starts_update(self) -> bool:
        """Whether the next batch begins a new update's group."""
        return self.pending == 0

    def update(self, objective: torch.Tensor, is_mean: bool, last_of_epoch: bool = False) -> bool:
        """Backpropagate one batch's objective; step after ``k`` batches or at the epoch's last batch.
        Returns whether it stepped."""
        if self.pending == 0:
            self.optimizer.zero_grad(set_to_none=True)
        self.mean = is_mean and self.k > 1
        if self.mean:
            objective = objective / self.k
        elif not is_mean and self.world > 1:
            objective = objective * self.world
        (self.scaler.scale(objective) if self.scaler is not None else objective).backward()
        self.pending += 1
        if self.pending >= self.k or last_of_epoch:
            self.step()
            return True
        return False

    def flush(self) -> bool:
        """Step on what is left (an iterable of unknown length ends its epoch unannounced)."""
        if self.pending:
            self.step()
            return True
        return False

    def step(self) -> None:
        """One optimizer update from the pending gradients."""
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
