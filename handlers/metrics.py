"""The book's two running figures as Ignite Metrics, accumulated on the device.

``BookLoss`` = loss sum / examples; ``BookAccuracy`` = correct / predicted elements (pixels for
segmentation). Both read the step's ``StepOutput`` (see ``handlers.contract``), add tensors on the
device without waiting for it, and sync once in ``compute`` -- summed across processes under
``ignite.distributed``. Given an ``output_transform``, they read ``engine.state.output`` through it
instead, as any Ignite metric does. They keep Ignite 0.5's ``Metric`` contract: updates run under
``torch.no_grad`` (no graph kept across an epoch), the running sums are in ``state_dict()`` (a resumed
metric goes on from where it was), and the constructor takes Ignite's keywords.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import ignite.distributed as idist
import torch
from ignite.engine import Engine
from ignite.exceptions import NotComputableError
from ignite.metrics import Metric
from ignite.metrics.metric import reinit__is_reduced

from handlers.contract import step_output

__all__ = ["RatioMetric", "BookLoss", "BookAccuracy", "read_ratios"]


class RatioMetric(Metric):
    """``sum(stats[numerator]) / sum(stats[denominator])`` over the batches since ``reset``."""

    _state_dict_all_req_keys = ("_num", "_den")

    def __init__(
        self,
        numerator: str,
        denominator: str,
        output_transform: Callable[[Any], Any] | None = None,
        device: str | torch.device = "cpu",
        across_processes: bool = True,
        skip_unrolling: bool = False,
        **metric_kwargs: Any,
    ) -> None:
        self.required_output_keys = (numerator, denominator)
        self._reads_step = output_transform is None
        self.across_processes = across_processes  # False: this process's batches only, no collective
        super().__init__(output_transform=output_transform or (lambda out: out), device=device,
                         skip_unrolling=skip_unrolling, **metric_kwargs)

    @torch.no_grad()
    def iteration_completed(self, engine: Engine) -> None:
        if not self._reads_step:
            return super().iteration_completed(engine)
        stats = step_output(engine, type(self).__name__, self.required_output_keys)
        self.update((stats[self.required_output_keys[0]], stats[self.required_output_keys[1]]))

    @reinit__is_reduced
    def reset(self) -> None:
        self._num: torch.Tensor | float = 0.0
        self._den: int = 0

    @reinit__is_reduced
    def update(self, output: tuple[torch.Tensor | float, int]) -> None:
        num, den = output
        if isinstance(num, torch.Tensor):
            num = num.detach()  # a direct update() with an output that requires grad keeps no graph
        self._num = self._num + num  # out of place: never writes into the step's own output
        self._den += int(den)

    def compute(self) -> float:
        num = torch.as_tensor(self._num, dtype=torch.float64)
        den = float(self._den)
        if self.across_processes and idist.get_world_size() > 1:
            num = idist.all_reduce(num.clone())
            den = float(idist.all_reduce(den))
        if den == 0:
            raise NotComputableError(f"{type(self).__name__} needs at least one non-empty batch before compute()")
        return float(num) / den


class BookLoss(RatioMetric):
    """Mean loss per example, as the book prints it."""

    def __init__(self, output_transform: Callable[[Any], Any] | None = None, device: str | torch.device = "cpu",
                 across_processes: bool = True, **metric_kwargs: Any):
        super().__init__("loss", "examples", output_transform, device, across_processes, **metric_kwargs)


class BookAccuracy(RatioMetric):
    """Correct predictions per predicted element (``labels.numel()``), as the book prints it."""

    def __init__(self, output_transform: Callable[[Any], Any] | None = None, device: str | torch.device = "cpu",
                 across_processes: bool = True, **metric_kwargs: Any):
        super().__init__("correct", "predictions", output_transform, device, across_processes, **metric_kwargs)


def read_ratios(metrics: list[RatioMetric]) -> list[float]:
    """``[m.compute() for m in metrics]`` with one device read in all when they can share it (one process, their
    sums on one device): the book's loss and accuracy at a point cost one sync, not one each."""
    nums = [m._num for m in metrics]
    one_read = (all(isinstance(n, torch.Tensor) and n.device == nums[0].device for n in nums)
                and all(m._den > 0 for m in metrics)
                and not any(m.across_processes for m in metrics if idist.get_world_size() > 1))
    if not one_read:
        return [m.compute() for m in metrics]
    values = torch.stack([n.detach().to(torch.float64).reshape(()) for n in nums]).tolist()
    return [v / m._den for v, m in zip(values, metrics)]
