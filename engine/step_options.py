"""The step's options as one frozen value, checked when made and resolved once for the device.

``StepOptions`` holds what changes how a batch is computed and applied: mixed precision, gradient
accumulation, clipping, channels_last, compile, and the ``fast`` switch that picks some of them
for the device. ``resolve`` turns ``fast`` into explicit choices once; ``prepare_model`` is the
only place that converts the weights to channels_last or compiles the net.
"""
from __future__ import annotations

import contextlib
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import torch

from engine.gpu import amp_data_parallel, native_bf16, use_fused

__all__ = ["StepOptions", "AMP_DTYPES", "autocast", "prepare_model", "channels_last_weights", "to_channels_last",
           "fast_options"]

AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass(frozen=True, kw_only=True)
class StepOptions:
    """How each training (and evaluation) step runs; every field is checked here, once.

    A new option is one field here, its one use (``step.py`` / ``updater.py``) and one flag in
    ``engine/app/flags.py``: ``train_ch13``, the factories and the CLI take the fields by name.
    """

    amp: str | None = None  # "bf16" or "fp16" autocast (fp16 adds a GradScaler); "fp32" says none, also with fast
    accumulation_steps: int = 1  # batches whose gradients are summed per optimizer update
    clip_grad_norm: float | None = None  # bound on the total gradient norm before each update
    channels_last: bool | None = None  # NHWC weights and 4-d inputs (conv nets); None: off, or fast's choice
    compile: bool | Mapping[str, Any] | None = None  # torch.compile; a mapping is its keyword arguments
    fast: bool = False  # fill what is not given (None) with fast_options() for the device

    def __post_init__(self) -> None:
        if self.amp is not None and self.amp not in AMP_DTYPES and self.amp != "fp32":
            raise ValueError(f"amp={self.amp!r} is not a precision; use one of {sorted(AMP_DTYPES)}, or 'fp32' / None "
                             "for none")
        k = self.accumulation_steps
        if not isinstance(k, int) or isinstance(k, bool) or k < 1:
            raise ValueError(f"accumulation_steps must be a whole number >= 1, got {k!r}")
        if self.clip_grad_norm is not None and not self.clip_grad_norm > 0:
            raise ValueError(f"clip_grad_norm must be a positive number (a norm bound), got {self.clip_grad_norm!r}")
        if self.compile is not None and not isinstance(self.compile, (bool, Mapping)):
            raise TypeError(f"compile must be True/False or a dict of torch.compile arguments, got {self.compile!r}")

    def resolve(self, device: torch.device, net: torch.nn.Module,
                optimizer: torch.optim.Optimizer | None = None) -> StepOptions:
        """Explicit choices for ``device``: ``fast`` fills only what was not given (an explicit ``False``,
        or ``amp="fp32"``, wins), and fp16 on a GPU takes the optimizer's fused kernel where it has one,
        so its loss scaling needs no host sync per update."""
        chosen = fast_options(device, net, optimizer) if self.fast else {}
        amp = self.amp if self.amp is not None else chosen.get("amp")
        if amp == "fp16" and device.type == "cuda" and not self.fast:
            use_fused(optimizer)
        resolved = replace(self, fast=False, amp=None if amp == "fp32" else amp,
                           channels_last=bool(chosen.get("channels_last", False) if self.channels_last is None
                                              else self.channels_last),
                           compile=chosen.get("compile", False) if self.compile is None else self.compile)
        return self if resolved == self else resolved

    def grad_scaler(self, device: torch.device) -> torch.amp.GradScaler | None:
        """fp16 needs loss scaling so small gradients survive; bf16 has fp32's range and does not."""
        return torch.amp.GradScaler(device.type) if self.amp == "fp16" else None


def autocast(device: torch.device, amp: str | None) -> contextlib.AbstractContextManager:
    """``torch.autocast`` for ``amp`` on ``device`` (bf16 works on CPU too); a no-op for fp32."""
    if amp is None or amp == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=AMP_DTYPES[amp])


def prepare_model(net: torch.nn.Module, options: StepOptions) -> torch.nn.Module:
    """The module a step calls: ``net`` in channels_last order and/or compiled, as ``options`` say.

    The one place these are applied. Both are idempotent: the weights convert in place, and a net
    compiled with the same arguments returns the same wrapper, so a trainer and an evaluator of one
    net share it. The wrapper shares the parameters: optimizers and checkpoints use ``net``. The
    wrapper is kept in the net's own ``__dict__`` (not a submodule, not a global cache), so it goes
    when the net goes.
    """
    if options.channels_last:
        _check_not_bucketed(net)
        channels_last_weights(net)
    model = amp_data_parallel(net, AMP_DTYPES.get(options.amp or ""))
    if not options.compile:
        return model
    kwargs = dict(options.compile) if isinstance(options.compile, Mapping) else {}
    key = repr(sorted(kwargs.items()))
    cached = net.__dict__.get("_d2l_compiled")
    if cached is None or cached[0] != key:
        cached = (key, torch.compile(model, **kwargs))
        net.__dict__["_d2l_compiled"] = cached
    return cached[1]


def channels_last_weights(net: torch.nn.Module) -> None:
    """The 4-d weights in NHWC order, in place. A weight with a dimension of size 1 (one input channel) is
    in both orders at once with its ordinary strides: it keeps them, as the gradients computed for it
    have them (DDP otherwise warns that the gradients' strides do not match its buckets')."""
    net.to(memory_format=torch.channels_last)
    for p in net.parameters():
        if p.ndim == 4 and p.is_contiguous() and p.stride() != _ordinary_strides(p.shape):
            p.data = p.data.clone(memory_format=torch.contiguous_format)


def _ordinary_strides(shape: torch.Size) -> tuple[int, ...]:
    strides, step = [], 1
    for size in reversed(shape):
        strides.append(step)
        step *= size
    return tuple(reversed(strides))


def _check_not_bucketed(net: torch.nn.Module) -> None:
    """DDP fixed its gradient buckets' strides when it wrapped the net: converting its weights now fails
    at the first backward ("Grad strides do not match bucket view strides")."""
    if isinstance(net, torch.nn.parallel.DistributedDataParallel) and any(
            p.ndim == 4 and not p.is_contiguous(memory_format=torch.channels_last) for p in net.parameters()):
        raise ValueError("channels_last must be applied before the net is wrapped in DistributedDataParallel; "
                         "convert it first (net.to(memory_format=torch.channels_last)), then wrap it")


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
    use_fused(optimizer)
    has_conv = any(isinstance(m, torch.nn.Conv2d) for m in net.modules())
    amp = "bf16" if native_bf16(device) else "fp16"
    return {"amp": amp, "channels_last": has_conv, "compile": {"mode": "reduce-overhead"}}
