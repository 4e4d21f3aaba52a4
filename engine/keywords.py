"""Options values passed as keywords: one list of names (the dataclass fields), never restated.

``train_ch13`` and the factories take the fields of ``StepOptions`` (and ``train_ch13`` those of
``RecipeSettings``) as keywords. ``split_keywords`` routes each keyword to its value class, and
``with_keywords`` adds the fields to a function's signature, so ``help()``, Jupyter's completion and
``inspect`` show them while the function body names none of them.
"""
from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import MISSING, fields, replace
from typing import Any, TypeVar

__all__ = ["field_names", "split_keywords", "with_keywords", "updated"]

T = TypeVar("T")


def field_names(cls: type) -> tuple[str, ...]:
    return tuple(f.name for f in fields(cls))


def updated(value: T | None, cls: type[T], keywords: Mapping[str, Any]) -> T:
    """``value`` (default: ``cls()``) with ``keywords`` replacing its fields; checked by ``cls`` itself."""
    base = cls() if value is None else value
    if not isinstance(base, cls):
        raise TypeError(f"expected a {cls.__name__}, got {type(base).__name__}")
    return replace(base, **keywords) if keywords else base


def split_keywords(where: str, keywords: Mapping[str, Any], *classes: type) -> list[dict[str, Any]]:
    """``keywords`` split by the value class whose field each one names; an unknown one is a TypeError."""
    parts: list[dict[str, Any]] = [{} for _ in classes]
    for key, value in keywords.items():
        owner = next((i for i, cls in enumerate(classes) if key in field_names(cls)), None)
        if owner is None:
            known = sorted(name for cls in classes for name in field_names(cls))
            raise TypeError(f"{where}() got an unexpected keyword argument {key!r}; its options are {', '.join(known)}")
        parts[owner][key] = value
    return parts


def with_keywords(func: Callable[..., Any], *classes: type) -> Callable[..., Any]:
    """``func`` whose signature lists the fields of ``classes`` as keyword-only parameters (in place of
    its ``**options``), with their defaults and types."""
    sig = inspect.signature(func)
    params = [p for p in sig.parameters.values() if p.kind is not inspect.Parameter.VAR_KEYWORD]
    for cls in classes:
        for f in fields(cls):
            default = f.default if f.default is not MISSING else f.default_factory()  # type: ignore[misc]
            params.append(inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=default,
                                            annotation=f.type))
    func.__signature__ = sig.replace(parameters=params)  # type: ignore[attr-defined]
    return func
