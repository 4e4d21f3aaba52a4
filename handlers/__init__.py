"""Handlers that attach to any Ignite Engine: the book's metrics, timer, history, plots, checkpoints."""
from handlers.cadence import BOOK_POINTS, BookCadence, BookEvents, book_cadence, book_points, epoch_fraction
from handlers.checkpoint import CheckpointError, Checkpoints, RngState, attach_checkpoints, load_checkpoint
from handlers.contract import StepOutput, UpdateEvents
from handlers.guards import Interrupt, NonFiniteGuard
from handlers.history import History
from handlers.lr_schedule import attach_lr_scheduler
from handlers.metrics import BookAccuracy, BookLoss, RatioMetric
from handlers.plot import (
    Animator, GradsScalarHandler, OptimizerParamsHandler, OutputHandler, VisdomLogger, VisdomPlotter,
    WeightsScalarHandler, attach_book_plot, global_step_from_engine, save_png,
)
from handlers.progress import attach_progress
from handlers.running import RunningMetrics
from handlers.stopping import attach_early_stopping
from handlers.throughput import StepTimer
from handlers.visdom_server import LocalVisdom


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
    "VisdomPlotter",
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
