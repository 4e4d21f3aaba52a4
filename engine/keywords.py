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

__all__ = ["field_names", "split_keywords", "with_keywords", "updated", "IGNITE_NAMES"]

T = TypeVar("T")

# Keywords of Ignite's create_supervised_trainer / _evaluator, and what this project takes in their place
IGNITE_NAMES = {
    "device": "devices=[device] (a list, as the book's train_ch13 takes)",
    "gradient_accumulation_steps": "accumulation_steps=N (the gradients of N batches summed into one update)",
    "amp_mode": "amp='fp16' (with a GradScaler) or amp='bf16'",
    "deterministic": "train_ch13's checkpoints, which resume the random streams and the data order",
    "model_transform": "output_transform=, or a wrapper nn.Module whose forward returns what the loss takes",
    "model_fn": "a wrapper nn.Module whose forward calls the model as it needs",
    "metrics": "metric.attach(evaluator, name) on the Engine create_evaluator returns (Ignite's metrics work)",
}


def field_names(cls: type) -> tuple[str, ...]:
    return tuple(f.name for f in fields(cls))


def updated(value: T | None, cls: type[T], keywords: Mapping[str, Any], where: str | None = None) -> T:
    """``value`` (default: ``cls()``) with ``keywords`` replacing its fields (an unknown one is an error
    from ``where``, as ``split_keywords`` words it); the values are checked by ``cls`` itself."""
    base = cls() if value is None else value
    if not isinstance(base, cls):
        raise TypeError(f"expected a {cls.__name__}, got {type(base).__name__}")
    split_keywords(where or cls.__name__, keywords, cls)
    return replace(base, **keywords) if keywords else base


def split_keywords(where: str, keywords: Mapping[str, Any], *classes: type) -> list[dict[str, Any]]:
    """``keywords`` split by the value class whose field each one names; an unknown one is a TypeError."""
    parts: list[dict[str, Any]] = [{} for _ in classes]
    for key, value in keywords.items():
        owner = next((i for i, cls in enumerate(classes) if key in field_names(cls)), None)
        if owner is None:
            known = sorted(name for cls in classes for name in field_names(cls))
            instead = f" (Ignite's factory keyword); here: {IGNITE_NAMES[key]}" if key in IGNITE_NAMES else \
                f"; its options are {', '.join(known)}"
            raise TypeError(f"{where}() got an unexpected keyword argument {key!r}{instead}")
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
