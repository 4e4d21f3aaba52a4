"""Handlers that attach to any Ignite Engine: metrics, timer, progress, history (and plots)."""
from handlers.cadence import BOOK_POINTS, BookCadence, book_cadence, epoch_fraction
from handlers.checkpoint import CheckpointError, RngState, attach_checkpoints, find_checkpoint, load_checkpoint
from handlers.guards import Interrupt, NonFiniteGuard
from handlers.history import History
from handlers.metrics import BookAccuracy, BookLoss, RatioMetric
from handlers.plot import VisdomPlotter, attach_book_plot, save_png
from handlers.progress import attach_progress, wants_progress
from handlers.lr_schedule import attach_lr_scheduler
from handlers.stopping import attach_early_stopping
from handlers.throughput import StepTimer
from handlers.visdom_server import LocalVisdom

__all__ = [
    "CheckpointError",
    "Interrupt",
    "NonFiniteGuard",
    "RngState",
    "attach_checkpoints",
    "attach_early_stopping",
    "attach_lr_scheduler",
    "find_checkpoint",
    "load_checkpoint",
    "BOOK_POINTS",
    "BookAccuracy",
    "BookCadence",
    "BookLoss",
    "History",
    "LocalVisdom",
    "VisdomPlotter",
    "attach_book_plot",
    "save_png",
    "RatioMetric",
    "StepTimer",
    "attach_progress",
    "book_cadence",
    "epoch_fraction",
    "wants_progress",
]
