"""Device discovery and placement: the one place that decides the device list."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

__all__ = ["try_gpu", "try_all_gpus", "resolve_devices", "devices_label", "place_model"]


def try_gpu(i: int = 0) -> torch.device:
    """GPU ``i`` if it exists, else the CPU (the book's helper)."""
    if torch.cuda.device_count() >= i + 1:
        return torch.device(f"cuda:{i}")
    return torch.device("cpu")


def try_all_gpus() -> list[torch.device]:
    """Every GPU, or ``[cpu]`` -- never an empty list, unlike d2l-en 1.x."""
    return [torch.device(f"cuda:{i}") for i in range(torch.cuda.device_count())] or [torch.device("cpu")]


def resolve_devices(devices: Sequence[torch.device | str | int] | torch.device | str | None) -> list[torch.device]:
    """Normalise a user's ``devices`` argument, rejecting what cannot work before any step runs.

    ``None`` or ``[]`` means all GPUs (or the CPU), evaluated now rather than at import as in the book
    (whose ``try_all_gpus()`` is ``[]`` on a machine without GPU).
    """
    if devices is None or (isinstance(devices, Sequence) and not isinstance(devices, str) and len(devices) == 0):
        return try_all_gpus()
    if isinstance(devices, (torch.device, str, int)):
        devices = [devices]
    if not isinstance(devices, Sequence) or len(devices) == 0:
        raise ValueError(f"devices must be a non-empty list such as [torch.device('cpu')], got {devices!r}")
    out = []
    for d in devices:
        try:
            dev = torch.device(f"cuda:{d}" if isinstance(d, int) else d)
        except (RuntimeError, TypeError) as e:
            raise ValueError(f"devices: {d!r} is not a device name; use 'cpu', 'cuda:0', ... ({e})") from None
        out.append(dev)
    if len({d.type for d in out}) > 1:
        raise ValueError(f"devices mixes device types {[str(d) for d in out]}; use GPUs only or ['cpu'] alone")
    out = [_available(d) for d in out]
    if len(set(out)) != len(out):
        raise ValueError(f"devices lists a device twice: {[str(d) for d in out]}")
    if len(out) > 1 and out[0].type != "cuda":
        raise ValueError(f"several devices are only supported for GPUs (DataParallel), got {[str(d) for d in out]}")
    return out


def _available(dev: torch.device) -> torch.device:
    """``dev`` if this machine can train on it, else a ValueError naming it (before the model moves)."""
    if dev.type == "cpu":
        return dev
    if dev.type == "meta":
        raise ValueError("devices: 'meta' holds no data (moving the model there would drop its weights); "
                         "use 'cpu' or a GPU such as 'cuda:0'")
    if dev.type == "cuda":
        index = 0 if dev.index is None else dev.index
        if index >= torch.cuda.device_count():
            raise ValueError(f"devices: {dev} does not exist here ({torch.cuda.device_count()} GPU(s) visible); "
                             "pass devices=None to use what is available")
        return torch.device("cuda", index)
    backend = torch.backends.mps if dev.type == "mps" else getattr(torch, dev.type, None)
    is_available = getattr(backend, "is_available", None)
    if is_available is None or not is_available():
        raise ValueError(f"devices: {dev.type} is not available on this machine; pass devices=None (every GPU, "
                         "else the CPU) or 'cpu'")
    return dev


def devices_label(devices: Any, resolved: list[torch.device]) -> str:
    """The device list as the closing line prints it: what the caller passed, as the book prints it."""
    return str(resolved) if devices is None or (isinstance(devices, Sequence) and len(devices) == 0) else str(devices)


def place_model(net: nn.Module, devices: list[torch.device]) -> nn.Module:
    """Move ``net`` to ``devices[0]``; wrap it in DataParallel when several GPUs are given, as the book does."""
    net.to(devices[0])
    if len(devices) > 1:
        return nn.DataParallel(net, device_ids=devices, output_device=devices[0])
    return net
