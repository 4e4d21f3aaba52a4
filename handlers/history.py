"""What ``train_ch13`` returns instead of ``None``: the per-epoch figures the book prints."""
from __future__ import annotations

import math
from dataclasses import dataclass, field, fields

from ignite.engine import Engine, Events

from handlers.figures import Figures, field_name

__all__ = ["History"]


@dataclass(repr=False)
class History:
    """Per-epoch train loss, train acc, test acc and cumulative examples/sec (the book's definition); the test
    loss when the evaluator computes it, the EMA weights' test acc when they are kept, and every other figure of
    the Engines' metrics (``handlers.figures``: a top-5 accuracy attached to the evaluator as ``top5`` is
    ``history.test_top5``, kept in ``extra``)."""

    devices: str = "[]"  # printed as the book prints its device list
    train_loss: list[float] = field(default_factory=list)
    train_acc: list[float] = field(default_factory=list)
    test_acc: list[float] = field(default_factory=list)
    examples_per_sec: list[float] = field(default_factory=list)
    test_loss: list[float] = field(default_factory=list)
    test_acc_ema: list[float] = field(default_factory=list)
    extra: dict[str, list[float]] = field(default_factory=dict)  # the other figures, by History name

    def attach(self, trainer: Engine, evaluator: Engine | None = None, ema_evaluator: Engine | None = None) -> History:
        """Record at each trainer EPOCH_COMPLETED, after the handlers attached before it (evaluation)."""
        trainer.add_event_handler(Events.EPOCH_COMPLETED, self._record, Figures(trainer, evaluator, ema_evaluator))
        return self

    def __getattr__(self, name: str) -> list[float]:
        extra = self.__dict__.get("extra", {})
        if name in extra:
            return extra[name]
        raise AttributeError(f"History has no figure {name!r} (it keeps {', '.join(self.figures())})")

    def figures(self) -> list[str]:
        """The names of the figures kept (each a list with one entry an epoch)."""
        return [n for n in _FIXED if getattr(self, n)] + list(self.extra)

    def _record(self, trainer: Engine, figures: Figures) -> None:
        epochs = len(self.train_loss) + 1
        now = {field_name(k): v for k, v in figures.epoch().items()}
        kept = set(self.figures()) - {"examples_per_sec"} | {"train_loss", "train_acc"}
        for name in list(now) + [n for n in kept if n not in now]:
            figures_of = getattr(self, name) if name in _FIXED else self.extra.setdefault(name, [])
            # a figure some epochs lack (a resume turned the test loss or the EMA on or off): nan for those
            # epochs, so each list keeps one entry an epoch and ``history.test_loss[i]`` is epoch ``i + 1``'s
            figures_of.extend([math.nan] * (epochs - 1 - len(figures_of)))
            figures_of.append(now.get(name, math.nan))
        self.examples_per_sec.append(float(trainer.state.metrics.get("examples/sec", 0.0)))

    def __repr__(self) -> str:
        """One line (a notebook cell ending in ``train_ch13(...)`` shows it); the lists stay attributes."""
        if not self.train_loss:
            return "History(no epochs)"
        test = f", test acc {self.test_acc[-1]:.3f}" if self.test_acc else ""
        return (f"History({len(self.train_loss)} epochs: loss {self.train_loss[-1]:.3f}, train acc "
                f"{self.train_acc[-1]:.3f}{test}, {self.examples_per_sec[-1]:.1f} examples/sec)")

    def last(self) -> dict[str, float | int]:
        """The last epoch's figures by name (``{}`` before the first epoch ends), for a run's manifest."""
        figures: dict[str, float | int] = {n: getattr(self, n)[-1] for n in self.figures()}
        return {"epochs": len(self.train_loss), **figures} if self.train_loss else {}

    def summary(self) -> str:
        """The book's two closing lines, for the last epoch (with the EMA weights' test acc when kept)."""
        test = f", test acc {self.test_acc[-1]:.3f}" if self.test_acc else ""
        test += f", test acc (ema) {self.test_acc_ema[-1]:.3f}" if self.test_acc_ema else ""
        return (
            f"loss {self.train_loss[-1]:.3f}, train acc {self.train_acc[-1]:.3f}{test}\n"
            f"{self.examples_per_sec[-1]:.1f} examples/sec on {self.devices}"
        )

    def state_dict(self) -> dict:
        return {k: (list(v) if isinstance(v, list) else {n: list(f) for n, f in v.items()} if isinstance(v, dict)
                    else v) for k, v in self.__dict__.items()}

    def load_state_dict(self, state: dict) -> None:
        """Restore the figures; ``devices`` stays this run's (a resumed run may use other devices)."""
        for key, value in state.items():
            if key == "devices":
                continue
            setattr(self, key, list(value) if isinstance(value, list) else
                    {n: list(f) for n, f in value.items()} if isinstance(value, dict) else value)


_FIXED = tuple(f.name for f in fields(History) if f.name not in ("devices", "extra"))  # the lists, in their order
