"""The step's options as one frozen value, checked when made and resolved once for the device.

``StepOptions`` holds what changes how a batch is computed and applied: mixed precision, gradient
accumulation, clipping, channels_last, compile, and the ``fast`` switch that picks some of them
for the device. ``resolve`` turns ``fast`` into explicit choices once; ``prepare_model`` is the
only place that converts the weights to channels_last or compiles the net.
"""
from __future__ import annotations

import contextlib
import weakref
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import torch

__all__ = ["StepOptions", "AMP_DTYPES", "autocast", "prepare_model", "to_channels_last", "fast_options"]

AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass(frozen=True, kw_only=True)
class StepOptions:
    """How each training (and evaluation) step runs; every field is checked here, once.

    A new option is one field here, its one use (``step.py`` / ``updater.py``) and one flag in
    ``engine/app/flags.py``: ``train_ch13``, the factories and the CLI take the fields by name.
    """

    amp: str | None = None  # "bf16" or "fp16" autocast; fp16 adds a GradScaler
    accumulation_steps: int = 1  # batches whose gradients are summed per optimizer update
    clip_grad_norm: float | None = None  # bound on the total gradient norm before each update
    channels_last: bool = False  # NHWC weights and 4-d inputs (conv nets)
    compile: bool | Mapping[str, Any] = False  # torch.compile; a mapping is its keyword arguments
    fast: bool = False  # fill what is not given with fast_options() for the device

    def __post_init__(self) -> None:
        if self.amp is not None and self.amp not in AMP_DTYPES:
            raise ValueError(f"amp={self.amp!r} is not a precision; use one of {sorted(AMP_DTYPES)} or None for fp32")
        k = self.accumulation_steps
        if not isinstance(k, int) or isinstance(k, bool) or k < 1:
            raise ValueError(f"accumulation_steps must be a whole number >= 1, got {k!r}")
        if self.clip_grad_norm is not None and not self.clip_grad_norm > 0:
            raise ValueError(f"clip_grad_norm must be a positive number (a norm bound), got {self.clip_grad_norm!r}")
        if not isinstance(self.compile, (bool, Mapping)):
            raise TypeError(f"compile must be True/False or a dict of torch.compile arguments, got {self.compile!r}")

    def resolve(self, device: torch.device, net: torch.nn.Module,
                optimizer: torch.optim.Optimizer | None = None) -> StepOptions:
        """The options with ``fast`` replaced by explicit choices for ``device``; explicit ones win."""
        if not self.fast:
            return self
        chosen = fast_options(device, net, optimizer)
        return replace(self, fast=False, amp=self.amp or chosen.get("amp"),
                       channels_last=self.channels_last or chosen.get("channels_last", False),
                       compile=self.compile or chosen.get("compile", False))

    def grad_scaler(self, device: torch.device) -> torch.amp.GradScaler | None:
        """fp16 needs loss scaling so small gradients survive; bf16 has fp32's range and does not."""
        return torch.amp.GradScaler(device.type) if self.amp == "fp16" else None


def autocast(device: torch.device, amp: str | None) -> contextlib.AbstractContextManager:
    """``torch.autocast`` for ``amp`` on ``device`` (bf16 works on CPU too); a no-op for fp32."""
    if amp is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=AMP_DTYPES[amp])


_compiled: weakref.WeakKeyDictionary[torch.nn.Module, tuple[str, torch.nn.Module]] = weakref.WeakKeyDictionary()


def prepare_model(net: torch.nn.Module, options: StepOptions) -> torch.nn.Module:
    """The module a step calls: ``net`` in channels_last order and/or compiled, as ``options`` say.

    The one place these are applied. Both are idempotent: the weights convert in place, and a net
    compiled with the same arguments returns the same wrapper, so a trainer and an evaluator of one
    net share it. The wrapper shares the parameters: optimizers and checkpoints use ``net``.
    """
    if options.channels_last:
        net.to(memory_format=torch.channels_last)
    if not options.compile:
        return net
    kwargs = dict(options.compile) if isinstance(options.compile, Mapping) else {}
    key = repr(sorted(kwargs.items()))
    cached = _compiled.get(net)
    if cached is None or cached[0] != key:
        cached = (key, torch.compile(net, **kwargs))
        _compiled[net] = cached
    return cached[1]


def to_channels_last(X: Any) -> Any:
    """Image batches (4-d tensors) in NHWC memory order; anything else unchanged."""
    if isinstance(X, torch.Tensor) and X.ndim == 4:
        return X.contiguous(memory_format=torch.channels_last)
    if isinstance(X, list):
        return [to_channels_last(x) for x in X]
    return X


def fast_options(device: torch.device, net: torch.nn.Module,
                 optimizer: torch.optim.Optimizer | None = None) -> dict[str, Any]:
    """What ``fast=True`` turns on, for this device and net.

    On a GPU: bf16 autocast, channels_last for conv nets, the fused optimizer kernel where the
    optimizer has one, and ``torch.compile(mode="reduce-overhead")`` (CUDA graphs): at the book's sizes
    the step is bound by launch and Python overhead, which graphs remove. On a CPU only compile helps
    (bf16 convolutions are slower there than fp32). An evaluator passes no optimizer.
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
