"""What ``train_ch13`` returns instead of ``None``: the per-epoch figures the book prints."""
from __future__ import annotations

from dataclasses import dataclass, field

from ignite.engine import Engine, Events

__all__ = ["History"]


@dataclass(repr=False)
class History:
    """Per-epoch train loss, train acc, test acc and cumulative examples/sec (the book's definition);
    the test loss when the evaluator computes it, and the EMA weights' test acc when they are kept."""

    devices: str = "[]"  # printed as the book prints its device list
    train_loss: list[float] = field(default_factory=list)
    train_acc: list[float] = field(default_factory=list)
    test_acc: list[float] = field(default_factory=list)
    examples_per_sec: list[float] = field(default_factory=list)
    test_loss: list[float] = field(default_factory=list)
    test_acc_ema: list[float] = field(default_factory=list)

    def attach(self, trainer: Engine, evaluator: Engine | None = None, ema_evaluator: Engine | None = None) -> History:
        """Record at each trainer EPOCH_COMPLETED, after the handlers attached before it (evaluation)."""
        trainer.add_event_handler(Events.EPOCH_COMPLETED, self._record, evaluator, ema_evaluator)
        return self

    def _record(self, trainer: Engine, evaluator: Engine | None, ema_evaluator: Engine | None) -> None:
        metrics = trainer.state.metrics
        self.train_loss.append(float(metrics["loss"]))
        self.train_acc.append(float(metrics["acc"]))
        if evaluator is not None:
            self.test_acc.append(float(evaluator.state.metrics["acc"]))
            if "loss" in evaluator.state.metrics:
                self.test_loss.append(float(evaluator.state.metrics["loss"]))
        if ema_evaluator is not None:
            self.test_acc_ema.append(float(ema_evaluator.state.metrics["acc"]))
        self.examples_per_sec.append(float(metrics.get("examples/sec", 0.0)))

    def __repr__(self) -> str:
        """One line (a notebook cell ending in ``train_ch13(...)`` shows it); the lists stay attributes."""
        if not self.train_loss:
            return "History(no epochs)"
        test = f", test acc {self.test_acc[-1]:.3f}" if self.test_acc else ""
        return (f"History({len(self.train_loss)} epochs: loss {self.train_loss[-1]:.3f}, train acc "
                f"{self.train_acc[-1]:.3f}{test}, {self.examples_per_sec[-1]:.1f} examples/sec)")

    def last(self) -> dict[str, float | int]:
        """The last epoch's figures by name (``{}`` before the first epoch ends), for a run's manifest."""
        names = ("train_loss", "train_acc", "test_acc", "test_loss", "test_acc_ema", "examples_per_sec")
        figures: dict[str, float | int] = {n: getattr(self, n)[-1] for n in names if getattr(self, n)}
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
        return {k: (list(v) if isinstance(v, list) else v) for k, v in self.__dict__.items()}

    def load_state_dict(self, state: dict) -> None:
        """Restore the figures; ``devices`` stays this run's (a resumed run may use other devices)."""
        for key, value in state.items():
            if key == "devices":
                continue
            setattr(self, key, list(value) if isinstance(value, list) else value)
