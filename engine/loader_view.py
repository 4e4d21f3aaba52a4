"""A wrapper that is its loader for everything but iteration, with a length exactly when the loader has one.

The prefetcher and a resumed epoch's skip both wrap the training data; handlers and Ignite read the
loader's attributes through them (sampler, generator, batch_size), and ``len()`` must exist only where
the loader's does, or a check for an iterable without a length is fooled.
"""
from __future__ import annotations

import functools
from collections.abc import Iterable
from typing import Any

__all__ = ["LoaderView", "view"]


class LoaderView:
    def __init__(self, loader: Iterable) -> None:
        self.loader = loader

    def __getattr__(self, name: str) -> Any:  # generator, dataset, batch_size ... of the wrapped loader
        return getattr(self.__dict__["loader"], name)


@functools.cache
def _sized(cls: type) -> type:
    return type(cls.__name__, (cls,), {"__len__": lambda self: len(self.loader), "__module__": cls.__module__})


def view(cls: type, loader: Iterable, *args: Any) -> Any:
    """``cls(loader, *args)``, sized exactly when ``loader`` is."""
    return (_sized(cls) if hasattr(loader, "__len__") else cls)(loader, *args)
