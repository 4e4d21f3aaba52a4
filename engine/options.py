"""The step's speed options in one place: mixed precision (dtype, autocast, scaler), channels_last, compile."""
from __future__ import annotations

import contextlib
from typing import Any

import torch

__all__ = ["AMP_DTYPES", "check_amp", "autocast", "make_scaler", "optimize_model", "to_channels_last", "fast_options", "resolve_fast"]

AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def check_amp(amp: str | None) -> str | None:
    if amp is None or amp in AMP_DTYPES:
        return amp
    raise ValueError(f"amp={amp!r} is not a precision; use one of {sorted(AMP_DTYPES)} or None for fp32")


def autocast(device: torch.device, amp: str | None) -> contextlib.AbstractContextManager:
    """``torch.autocast`` for ``amp`` on ``device`` (bf16 works on CPU too); a no-op for fp32."""
    if amp is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=AMP_DTYPES[amp])


def make_scaler(device: torch.device, amp: str | None) -> torch.amp.GradScaler | None:
    """fp16 needs loss scaling so small gradients survive; bf16 has fp32's range and does not."""
    return torch.amp.GradScaler(device.type) if amp == "fp16" else None


def optimize_model(net: torch.nn.Module, *, channels_last: bool = False, compile: bool | dict[str, Any] = False) -> torch.nn.Module:
    """``channels_last`` converts the weights in place; ``compile`` wraps the net (``dict`` = torch.compile kwargs).

    The wrapper shares the parameters, so optimizers and checkpoints keep using the original net.
    """
    if channels_last:
        net.to(memory_format=torch.channels_last)
    if compile:
        return torch.compile(net, **(compile if isinstance(compile, dict) else {}))
    return net


def to_channels_last(X: Any) -> Any:
    """Image batches (4-d tensors) in NHWC memory order; anything else unchanged."""
    if isinstance(X, torch.Tensor) and X.ndim == 4:
        return X.contiguous(memory_format=torch.channels_last)
    if isinstance(X, list):
        return [to_channels_last(x) for x in X]
    return X


def fast_options(device: torch.device, net: torch.nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """What ``fast=True`` turns on, for this device and net.

    On a GPU: bf16 autocast, channels_last for conv nets, the fused optimizer kernel where the
    optimizer has one, and ``torch.compile(mode="reduce-overhead")`` (CUDA graphs): at the book's sizes
    the step is bound by launch and Python overhead, which graphs remove. On a CPU only compile helps
    (bf16 convolutions are slower there than fp32).
    """
    if device.type != "cuda":
        return {"compile": True}
    if isinstance(optimizer, (torch.optim.Adam, torch.optim.AdamW, torch.optim.SGD)):  # their CUDA fused kernels
        for group in optimizer.param_groups:
            if not group.get("foreach") and not group.get("differentiable"):
                group["fused"] = True
    has_conv = any(isinstance(m, torch.nn.Conv2d) for m in net.modules())
    amp = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return {"amp": amp, "channels_last": has_conv, "compile": {"mode": "reduce-overhead"}}


def resolve_fast(
    fast: bool, device: torch.device, net: torch.nn.Module, optimizer: torch.optim.Optimizer,
    amp: str | None, channels_last: bool, compile: bool | dict[str, Any],
) -> tuple[str | None, bool, bool | dict[str, Any]]:
    """``(amp, channels_last, compile)`` after ``fast``: its choices fill in what was not given explicitly."""
    if not fast:
        return amp, channels_last, compile
    chosen = fast_options(device, net, optimizer)
    return amp or chosen.get("amp"), channels_last or chosen.get("channels_last", False), compile or chosen.get(
        "compile", False)
