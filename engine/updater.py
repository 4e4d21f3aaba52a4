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

from engine.gpu import keep_grads_allocated

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
        keep_grads: bool = False,
    ) -> None:
        self.optimizer, self.scaler = optimizer, scaler
        self.params = [p for p in params if p.requires_grad]
        self.k, self.clip, self.world = accumulation_steps, clip_grad_norm, world_size
        self.keep_grads = keep_grads  # CUDA graphs: gradients must not live in the graph pool (engine/gpu.py)
        self.applied = False  # whether the last update was applied
        self.skipped = 0  # fp16 updates skipped for inf/nan gradients (counted where known without a sync)
        self.pending = 0  # batches whose gradients wait for a step (0: the next batch begins an update's group)
        self.mean = False  # whether the last objective was a mean (then divided by k)

    def steps_after(self, last_of_epoch: bool) -> bool:
        """Whether the coming batch completes its group (then DDP must all-reduce its gradients)."""
        return self.pending + 1 >= self.k or last_of_epoch

    def update(self, objective: torch.Tensor, is_mean: bool, last_of_epoch: bool = False) -> bool:
        """Backpropagate one batch's objective; step after ``k`` batches or at the epoch's last batch.
        Returns whether an update was applied (an fp16 update skipped for inf gradients is not)."""
        completes = self.steps_after(last_of_epoch)
        if self.pending == 0:
            if self.keep_grads:
                keep_grads_allocated(self.params)
            else:
                self.optimizer.zero_grad(set_to_none=True)
        self.mean = is_mean and self.k > 1
        if self.mean:
            objective = objective / self.k
        elif not is_mean and self.world > 1:
            objective = objective * self.world
        (self.scaler.scale(objective) if self.scaler is not None else objective).backward()
        self.pending += 1
        return self.step() if completes else False

    def flush(self) -> bool:
        """Step on what is left (an iterable of unknown length ends its epoch unannounced)."""
        return self.step() if self.pending else False

    def step(self) -> bool:
        """One optimizer update from the pending gradients; False when fp16 loss scaling skipped it."""
        if self.mean and self.pending < self.k:  # a short last group: its mean counts fully
            for p in self.params:
                if p.grad is not None:
                    p.grad.mul_(self.k / self.pending)
        if self.scaler is not None and self.clip is not None:
            self.scaler.unscale_(self.optimizer)
        if self.clip is not None:
            torch.nn.utils.clip_grad_norm_(self.params, self.clip)
        self.pending = 0
        if self.scaler is None:
            self.optimizer.step()
            self.applied = True
            return True
        self.scaler.step(self.optimizer)
        self.applied = self._applied()
        self.scaler.update()
        self.skipped += not self.applied
        return self.applied

    def _applied(self) -> bool:
        """Whether ``scaler.step`` ran the optimizer. A non-fused optimizer made the scaler read the inf
        flag on the host already, so asking again costs no new wait; a fused one keeps the check on the
        device, and reading it would add a sync per update: its skipped updates count as updates."""
        if getattr(self.optimizer, "_step_supports_amp_scaling", False):
            return True
        found = self.scaler._found_inf_per_device(self.optimizer)  # type: ignore[union-attr]
        return not any(v.item() for v in found.values())
