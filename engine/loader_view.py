"""A wrapper that is its loader for everything but iteration, with a length exactly when the loader has one.

The prefetcher and a resumed epoch's skip both wrap the training data; handlers and Ignite read the
loader's attributes through them (sampler, generator, batch_size), and ``len()`` must exist only where
the loader's does, or a check for an iterable without a length is fooled.
"""
from __future__ import annotations

import functools
from collections.abc import Iterable
from typing import Any

__all__ = ["length", "LoaderView", "view"]


class LoaderView:
    def __init__(self, loader: Iterable) -> None:
        self.loader = loader

    def __getattr__(self, name: str) -> Any:  # generator, dataset, batch_size ... of the wrapped loader
        return getattr(self.__dict__["loader"], name)


@functools.cache
def _sized(cls: type) -> type:
    return type(cls.__name__, (cls,), {"__len__": lambda self: len(self.loader), "__module__": cls.__module__})


def length(loader: Iterable) -> int | None:
    """``len(loader)``, or None for an unsized one. A DataLoader always has ``__len__``, yet over an
    ``IterableDataset`` without one (a stream) it raises ``TypeError``: asking ``hasattr`` is not enough."""
    try:
        return len(loader)  # type: ignore[arg-type]
    except TypeError:
        return None


def view(cls: type, loader: Iterable, *args: Any) -> Any:
    """``cls(loader, *args)``, sized exactly when ``loader`` is."""
    return (_sized(cls) if length(loader) is not None else cls)(loader, *args)
