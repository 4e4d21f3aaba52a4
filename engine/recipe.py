"""A recipe: handlers attached to a trainer/evaluator pair in a declared order, with a registry of
what checkpoints hold.

Ignite calls the handlers of one event in the order they were attached, and the book's handlers
depend on that order (the timer must see a step end first, the test pass must run before anything
reads test acc, the RNG snapshot must follow every handler that draws random numbers, the NaN guard
must stop an epoch before its checkpoint is written). Each part of a recipe names its ``Stage``;
``Recipe.attach`` attaches them in stage order, so the rule is stated where the part is added.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

from ignite.engine import Engine

__all__ = ["Stage", "Recipe"]


class Stage(IntEnum):
    """Where a part's callbacks go among the others, for every event they share."""

    TIMER = 10  # first to see each step end, so only the step is timed (the book's timer and running
    #             figures are one handler here: handlers/running.py)
    METRICS = 20  # your own running metrics, after the book's figures
    EVALUATE = 30  # the test pass at epoch end, before anything reads test figures
    RECORD = 40  # history, sampler epochs: read the epoch's figures
    SCHEDULE = 50  # learning-rate schedules, before the plot reads the rate
    PLOT = 60  # plots read every figure above
    USER = 70  # your handlers: after the figures exist, before the run's state is snapshot
    STOPPING = 80  # early stopping on the epoch's figures
    RNG = 90  # the RNG snapshot, after every handler that draws random numbers
    GUARD = 100  # the NaN guard, before checkpoints: a bad epoch never overwrites a good file
    CHECKPOINT = 110  # checkpoints hold everything registered above
    INTERRUPT = 120  # Ctrl-C saves through the checkpoint handler
    PROGRESS = 130  # the progress bar shows what is already computed


Attach = Callable[["Recipe"], Any]


@dataclass
class Recipe:
    """Parts to attach to ``trainer`` (and ``evaluator``) in ``Stage`` order.

    ``to_save`` is the checkpoint registry: a part added with ``save=NAME`` registers what its attach
    function returns when that has ``state_dict`` / ``load_state_dict``, and a checkpoint part of a
    later stage holds it. ``attached`` maps each part's name to what its attach function returned.
    """

    trainer: Engine
    evaluator: Engine | None = None
    to_save: dict[str, Any] = field(default_factory=dict)
    attached: dict[str, Any] = field(default_factory=dict)
    parts: list[tuple[Stage, str, Attach, str | None]] = field(default_factory=list)

    def add(self, name: str, attach: Attach, stage: Stage = Stage.USER, save: str | None = None) -> Recipe:
        """Add a part; ``attach(recipe)`` runs at ``attach()`` time, after every part of an earlier stage."""
        if name in self.attached or any(name == p[1] for p in self.parts):
            raise ValueError(f"the recipe already has a part named {name!r}; give each part its own name")
        self.parts.append((Stage(stage), name, attach, save))
        return self

    def attach(self) -> Recipe:
        """Attach every part added so far, stage by stage (parts of one stage in the order added)."""
        parts, self.parts = sorted(self.parts, key=lambda p: p[0]), []
        for _stage, name, attach, save in parts:
            result = attach(self)
            self.attached[name] = result
            if save is not None and hasattr(result, "state_dict") and hasattr(result, "load_state_dict"):
                self.to_save[save] = result
        return self
