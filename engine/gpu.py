"""What only a GPU run needs decided: native bf16, fused optimizer kernels, CUDA-graph gradients and
autocast inside DataParallel's replica threads.

Each is a fact of torch's CUDA code (see ``shared/reference/gpu-and-processes.md``), kept here so the
step code stays the book's.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import torch
from torch import nn

__all__ = ["native_bf16", "use_fused", "fit_optimizer_state", "uses_cuda_graphs", "keep_grads_allocated",
           "AutocastDataParallel", "amp_data_parallel"]

_FUSED = (torch.optim.Adam, torch.optim.AdamW, torch.optim.SGD)  # the optimizers with a CUDA fused kernel


def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` computes bf16 in hardware (compute capability >= 8.0, Ampere on).

    Not ``torch.cuda.is_bf16_supported()``: by default it also says yes where bf16 is emulated (V100,
    T4: slower than fp32), and it asks the current device rather than the run's.
    """
    return device.type == "cuda" and torch.cuda.get_device_capability(device)[0] >= 8


def use_fused(optimizer: torch.optim.Optimizer | None) -> bool:
    """Switch ``optimizer`` to its fused CUDA kernel where it has one and the caller chose no other
    implementation (``foreach`` / ``differentiable``); True when it now runs fused. A fused optimizer
    takes the GradScaler's inf check on the device, so fp16 needs no host sync per update."""
    if not isinstance(optimizer, _FUSED):
        return False
    groups = [g for g in optimizer.param_groups if not g.get("foreach") and not g.get("differentiable")]
    if len(groups) != len(optimizer.param_groups):
        return False
    if not all(p.is_floating_point() for g in groups for p in g["params"]):
        return False
    for g in groups:
        g["fused"] = True
    optimizer._step_supports_amp_scaling = True  # what the constructor sets for fused=True: the scaler's
    fit_optimizer_state(optimizer)  # inf check then stays on the device, and resumed state fits the kernel
    return True


def fit_optimizer_state(optimizer: torch.optim.Optimizer) -> None:
    """Each state tensor in the layout, device and dtype its group's kernel now needs.

    A loaded state keeps the layout it was saved in and, for ``step``, the saved device: contiguous
    moments beside channels_last weights, or a CPU ``step`` under a fused or capturable group, which
    the fused kernels refuse. An optimizer that makes its state when built (Adagrad) holds it where the
    weights were then, before ``train_ch13`` moved them. Same values, so the next update equals the
    reference optimizer's.
    """
    for group in optimizer.param_groups:
        on_device = bool(group.get("fused") or group.get("capturable"))
        for p in group["params"]:
            state = optimizer.state.get(p)
            for key, value in (state or {}).items():
                if not isinstance(value, torch.Tensor):
                    continue
                if value.shape == p.shape and (value.stride() != p.stride() or value.device != p.device):
                    state[key] = torch.empty_like(p, dtype=value.dtype).copy_(value)
                elif key == "step" and on_device and value.device != p.device:
                    state[key] = value.to(p.device, torch.float32)


def uses_cuda_graphs(compile_option: bool | Mapping[str, Any] | None) -> bool:
    """Whether ``torch.compile`` with these arguments records CUDA graphs (graph trees)."""
    if not isinstance(compile_option, Mapping):
        return False
    mode = compile_option.get("mode") or ""
    extra = compile_option.get("options") or {}
    return mode in ("reduce-overhead", "max-autotune") or bool(extra.get("triton.cudagraphs"))


def keep_grads_allocated(params: Iterable[torch.Tensor]) -> None:
    """Give every trainable parameter a zeroed ``.grad`` of its own memory.

    Under CUDA graph trees a gradient written while ``.grad`` is None is the graph pool's output,
    freed when the next graph runs: a second accumulated micro-batch, the test pass, or a handler
    reading ``p.grad`` afterwards would read overwritten memory. Accumulating into a kept ``.grad``
    copies the output out of the pool.
    """
    for p in params:
        if p.requires_grad:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
            else:
                p.grad.zero_()


class _AutocastReplica(nn.Module):
    """One replica's forward under the run's autocast dtype (entered inside the replica's thread)."""

    def __init__(self, module: nn.Module, dtype: torch.dtype) -> None:
        super().__init__()
        self.module, self.dtype = module, dtype

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        with torch.autocast("cuda", dtype=self.dtype):
            return self.module(*args, **kwargs)


class AutocastDataParallel(nn.DataParallel):
    """DataParallel whose replicas run under ``dtype`` autocast.

    Autocast's dtype is thread-local and ``parallel_apply`` re-enters it in each replica thread with
    ``enabled=`` only, so without this bf16 silently becomes fp16 there (with no loss scaling).
    Shares the wrapped module, so state dicts, the optimizer and the caller's wrapper are unchanged.
    """

    def __init__(self, dp: nn.DataParallel, dtype: torch.dtype) -> None:
        super().__init__(dp.module, device_ids=dp.device_ids, output_device=dp.output_device, dim=dp.dim)
        self.dtype = dtype

    def replicate(self, module: nn.Module, device_ids: Any) -> Any:
        return [_AutocastReplica(r, self.dtype) for r in super().replicate(module, device_ids)]


def amp_data_parallel(model: nn.Module, dtype: torch.dtype | None) -> nn.Module:
    """``model`` as the step calls it: a DataParallel under autocast gets its replicas' dtype."""
    if dtype is None or not isinstance(model, nn.DataParallel) or isinstance(model, AutocastDataParallel):
        return model
    if len(model.device_ids) <= 1:  # one device: DataParallel calls the module in this thread
        return model
    return AutocastDataParallel(model, dtype)
