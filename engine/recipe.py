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

__all__ = ["Stage", "Part", "Recipe"]


class Stage(IntEnum):
    """Where a part's callbacks go among the others, for every event they share."""

    TIMER = 10  # first to see each step end, so only the step is timed (the book's timer and running
    #             metrics are one handler here, handlers/running.py; it fires BookEvents.BOOK_POINT)
    METRICS = 20  # your own running metrics, after the book's
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


@dataclass(frozen=True)
class Part:
    """One part of a recipe: ``attach(recipe)`` runs in ``stage`` order; with ``save``, what it returns is
    checkpointed under that name (when it has ``state_dict`` / ``load_state_dict``)."""

    name: str
    attach: Attach
    stage: Stage = Stage.USER
    save: str | None = None


@dataclass
class Recipe:
    """Parts to attach to ``trainer`` (and ``evaluator``) in ``Stage`` order.

    ``to_save`` is the checkpoint registry; ``attached`` maps each part's name to what its attach
    function returned; ``events`` to the events it added handlers to. ``required`` names the parts
    this recipe cannot run without: ``attach()`` refuses to start when one was removed or never added.
    """

    trainer: Engine
    evaluator: Engine | None = None
    to_save: dict[str, Any] = field(default_factory=dict)
    attached: dict[str, Any] = field(default_factory=dict)
    parts: list[Part] = field(default_factory=list)
    required: tuple[str, ...] = ()
    events: dict[str, list[str]] = field(default_factory=dict)

    def add(self, part: Part | str, attach: Attach | None = None, stage: Stage = Stage.USER,
            save: str | None = None) -> Recipe:
        """Add a ``Part`` (or its fields); it attaches at ``attach()`` time, after every part of an earlier stage."""
        part = part if isinstance(part, Part) else Part(part, attach, stage, save)  # type: ignore[arg-type]
        if part.name in self.attached or any(part.name == p.name for p in self.parts):
            raise ValueError(f"the recipe already has a part named {part.name!r}; give each part its own name")
        self.parts.append(Part(part.name, part.attach, Stage(part.stage), part.save))
        return self

    def remove(self, name: str) -> Part:
        """Take a part out before ``attach()`` (e.g. to add your own in its place)."""
        for part in self.parts:
            if part.name == name:
                self.parts.remove(part)
                return part
        raise KeyError(f"the recipe has no part named {name!r}; its parts are {[p.name for p in self.parts]}")

    def attach(self) -> Recipe:
        """Attach every part added so far, stage by stage (parts of one stage in the order added)."""
        missing = [name for name in self.required if name not in self.attached and
                   all(p.name != name for p in self.parts)]
        if missing:
            raise ValueError(f"this recipe needs its parts {missing} (removed or never added); add a part of that "
                             "name in their place")
        for part in sorted(self.parts, key=lambda p: p.stage):
            if part.name in self.attached:  # attached by an earlier call
                continue
            before = _handler_counts(self.trainer, self.evaluator)
            try:
                result = part.attach(self)
            except BaseException:  # the parts stay added (a retry attaches the rest); what was made for them goes
                for made in self.attached.values():
                    getattr(made, "abandon", lambda: None)()
                raise
            self.attached[part.name] = result
            self.events[part.name] = _new_events(before, _handler_counts(self.trainer, self.evaluator))
            if part.save is not None and hasattr(result, "state_dict") and hasattr(result, "load_state_dict"):
                self.to_save[part.save] = result
        return self

    def describe(self) -> str:
        """The recipe as a table: stage, part, the events it attached to (once attached), what is saved."""
        rows = [("stage", "part", "events", "saved as")]
        for p in sorted(self.parts, key=lambda p: p.stage):
            events = ", ".join(self.events.get(p.name, ["(not attached yet)"])) or "-"
            saved = p.save if p.save in self.to_save or p.name not in self.attached else "-"
            rows.append((p.stage.name, p.name, events, saved or "-"))
        rows += [("", name, "", name) for name in self.to_save if all(name != p.save for p in self.parts)]
        widths = [max(len(r[i]) for r in rows) for i in range(3)]
        return "\n".join(f"{r[0]:<{widths[0]}}  {r[1]:<{widths[1]}}  {r[2]:<{widths[2]}}  {r[3]}".rstrip()
                         for r in rows)


def _handler_counts(*engines: Engine | None) -> dict[str, int]:
    """How many handlers each event of each engine holds (Ignite keeps them in ``_event_handlers``)."""
    counts: dict[str, int] = {}
    for role, engine in zip(("trainer", "evaluator"), engines):
        if engine is not None:
            for event, handlers in engine._event_handlers.items():
                counts[f"{role}.{getattr(event, 'name', event)}"] = len(handlers)
    return counts


def _new_events(before: dict[str, int], after: dict[str, int]) -> list[str]:
    return [event for event, n in after.items() if n > before.get(event, 0)]
