"""d2l-ignite: the book's training functions as pytorch-ignite Engines."""
from engine._shadow import check_sibling

check_sibling("handlers")  # before anything imports it

from engine.book import Accumulator, Timer, accuracy, train_batch_ch13, train_ch6  # noqa: E402
from engine.checks import updates_per_epoch  # noqa: E402
from engine.train_recipe import BookRecipe, attach_book_metrics, attach_book_recipe, book_recipe  # noqa: E402
from engine.devices import try_all_gpus, try_gpu  # noqa: E402
from engine.factories import create_evaluator, create_trainer, evaluate_accuracy, evaluate_accuracy_gpu  # noqa: E402
from engine.step_options import StepOptions  # noqa: E402
from engine.recipe import Part, Recipe, Stage  # noqa: E402
from engine.settings import RecipeSettings  # noqa: E402
from engine.batch import prepare_batch  # noqa: E402
from engine.step import correct_count  # noqa: E402
from engine.train import train_ch13  # noqa: E402
from handlers.plot import Animator  # noqa: E402


__all__ = [
    "train_ch13",
    "updates_per_epoch",
    "create_trainer",
    "create_evaluator",
    "evaluate_accuracy_gpu",
    "evaluate_accuracy",
    "attach_book_metrics",
    "attach_book_recipe",
    "book_recipe",
    "Recipe",
    "BookRecipe",
    "Part",
    "RecipeSettings",
    "Stage",
    "StepOptions",
    "prepare_batch",
    "correct_count",
    "try_gpu",
    "try_all_gpus",
    "train_batch_ch13",
    "train_ch6",
    "accuracy",
    "Accumulator",
    "Timer",
    "Animator",
]
