"""Handlers that attach to any Ignite Engine: the book's metrics, timer, history, plots, checkpoints. The plot
back-ends (``VisdomPlotter``, ``VisdomLogger``, ``TensorboardPlotter``, ``LocalVisdom``, ...) load when first named."""
from typing import Any

from handlers.cadence import BOOK_POINTS, BookCadence, BookEvents, book_cadence, book_points, epoch_fraction
from handlers.checkpoint import CheckpointError, Checkpoints, RngState, attach_checkpoints, load_checkpoint
from handlers.contract import StepOutput, UpdateEvents
from handlers.guards import Interrupt, NonFiniteGuard
from handlers.history import History
from handlers.lr_schedule import attach_lr_scheduler
from handlers.metrics import BookAccuracy, BookLoss, RatioMetric
from handlers.plot import Animator, Plotter, attach_book_plot, save_png
from handlers.progress import attach_progress
from handlers.running import RunningMetrics
from handlers.stopping import attach_early_stopping
from handlers.throughput import StepTimer


__all__ = [
    "StepOutput",
    "UpdateEvents",
    "BOOK_POINTS",
    "BookEvents",
    "book_points",
    "RunningMetrics",
    "BookCadence",
    "book_cadence",
    "epoch_fraction",
    "BookAccuracy",
    "BookLoss",
    "RatioMetric",
    "StepTimer",
    "History",
    "Plotter",
    "VisdomPlotter",
    "TensorboardPlotter",
    "Animator",
    "VisdomLogger",
    "OutputHandler",
    "OptimizerParamsHandler",
    "WeightsScalarHandler",
    "GradsScalarHandler",
    "global_step_from_engine",
    "attach_book_plot",
    "save_png",
    "LocalVisdom",
    "attach_lr_scheduler",
    "attach_early_stopping",
    "attach_progress",
    "NonFiniteGuard",
    "Interrupt",
    "RngState",
    "attach_checkpoints",
    "Checkpoints",
    "load_checkpoint",
    "CheckpointError",
]

def __getattr__(name: str) -> Any:
    """The plot back-ends listed in ``__all__``, from ``handlers.plot``, which imports each when first named."""
    if name not in __all__:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import handlers.plot

    return getattr(handlers.plot, name)
