"""d2l-ignite: the book's training functions as pytorch-ignite Engines."""
from engine.devices import place_model, resolve_devices, try_all_gpus, try_gpu
from engine.distributed import is_distributed, is_main_process
from engine.options import fast_options
from engine.prefetch import DevicePrefetcher
from engine.factories import create_evaluator, create_trainer, evaluate_accuracy, evaluate_accuracy_gpu
from engine.step import correct_count, prepare_batch
from engine.train import attach_book_metrics, train_ch13

__all__ = [
    "DevicePrefetcher",
    "fast_options",
    "is_distributed",
    "is_main_process",
    "attach_book_metrics",
    "correct_count",
    "create_evaluator",
    "create_trainer",
    "evaluate_accuracy",
    "evaluate_accuracy_gpu",
    "place_model",
    "prepare_batch",
    "resolve_devices",
    "train_ch13",
    "try_all_gpus",
    "try_gpu",
]
