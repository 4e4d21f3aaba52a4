"""Early stopping on a chosen figure, through Ignite's own ``EarlyStopping``."""
from __future__ import annotations


from ignite.engine import Engine, Events
from ignite.handlers import EarlyStopping

__all__ = ["attach_early_stopping", "STOP_METRICS"]

# name -> (engine it is read from, metric key, which direction is better)
STOP_METRICS = {
    "test_acc": ("evaluator", "acc", "max"),
    "test_loss": ("evaluator", "loss", "min"),
    "train_acc": ("trainer", "acc", "max"),
    "train_loss": ("trainer", "loss", "min"),
}


def attach_early_stopping(
    trainer: Engine, evaluator: Engine, patience: int, metric: str = "test_acc", min_delta: float = 0.0
) -> EarlyStopping:
    """Stop ``trainer`` after ``patience`` epochs without improvement of ``metric``.

    Attach after the evaluation handler: the score is read at the trainer's EPOCH_COMPLETED.
    """
    if metric not in STOP_METRICS:
        raise ValueError(f"early stopping metric {metric!r} is unknown; choose one of {sorted(STOP_METRICS)}")
    if not isinstance(patience, int) or isinstance(patience, bool) or patience < 1:
        raise ValueError(f"early stopping patience must be a whole number >= 1, got {patience!r}")
    source, key, mode = STOP_METRICS[metric]
    engine = evaluator if source == "evaluator" else trainer

    def score(_: Engine) -> float:
        return float(engine.state.metrics[key])

    stopper = EarlyStopping(patience, score, trainer, threshold=min_delta, mode=mode)
    trainer.add_event_handler(Events.EPOCH_COMPLETED, stopper)
    return stopper
