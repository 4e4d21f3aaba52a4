"""The center: a typed step output the book's handlers read whatever output_transform returns, the
recipe's declared order, its checkpoint registry, and step options resolved once."""
from __future__ import annotations

import dataclasses
import time

import pytest
import torch
from conftest import loaders, small_cnn
from ignite.engine import Engine, Events
from ignite.metrics import Accuracy
from torch import nn

from engine import (
    Recipe, Stage, StepOptions, attach_book_metrics, book_recipe, create_evaluator, create_trainer, train_ch13,
)
from handlers import BOOK_POINTS, BookAccuracy, BookCadence, BookLoss, NonFiniteGuard, StepTimer
from handlers.running import RunningMetrics

LOSS = nn.CrossEntropyLoss(reduction="none")


def test_a_custom_output_transform_keeps_the_book_metrics(digits):
    X, y = digits
    tr, _ = loaders(X, y, 96, 0, 16)
    net = small_cnn()
    trainer = create_trainer(net, LOSS, torch.optim.SGD(net.parameters(), 0.05),
                             output_transform=lambda X, y, y_hat, stats: (y_hat.detach(), y))
    attach_book_metrics(trainer)
    Accuracy().attach(trainer, "ignite_acc")  # Ignite's own metric reads the (y_hat, y) output
    state = trainer.run(tr, max_epochs=1)
    assert 0 <= state.metrics["acc"] <= 1 and state.metrics["loss"] > 0
    assert state.metrics["ignite_acc"] == pytest.approx(state.metrics["acc"])
    assert isinstance(state.output, tuple) and set(state.step_output) == {"loss", "correct", "examples", "predictions"}


def test_an_engine_without_the_book_keys_is_told_which_keys_and_how(digits):
    X, y = digits
    tr, _ = loaders(X, y, 32, 0, 16)
    plain = Engine(lambda e, batch: {"loss": torch.tensor(1.0)})
    attach_book_metrics(plain)
    with pytest.raises(KeyError, match=r"RunningMetrics reads the step's loss, correct, examples, predictions, but "
                                         r"this Engine's output is \['loss'\]"):
        plain.run(tr, max_epochs=1)


def test_a_step_that_drops_the_keys_later_is_named_too(digits):
    """The keys are checked on the first step; a later step without them is still named, not a bare KeyError."""
    X, y = digits
    tr, _ = loaders(X, y, 160, 0, 16)

    def step(engine, batch):
        full = {"loss": torch.tensor(1.0), "correct": torch.tensor(3), "examples": 4, "predictions": 4}
        return full if engine.state.iteration < 3 else {"loss": torch.tensor(1.0)}

    plain = Engine(step)
    attach_book_metrics(plain)
    with pytest.raises(KeyError, match=r"RunningMetrics reads .* this Engine's output is \['loss'\]"):
        plain.run(tr, max_epochs=1)


def test_a_hand_made_step_may_return_numbers(digits):
    X, y = digits
    tr, _ = loaders(X, y, 160, 0, 16)
    plain = Engine(lambda e, batch: {"loss": 2.0 * len(batch[1]), "correct": 1, "examples": len(batch[1]),
                                     "predictions": len(batch[1])})
    attach_book_metrics(plain)
    state = plain.run(tr, max_epochs=1)
    assert state.metrics["loss"] == pytest.approx(2.0)
    assert state.metrics["acc"] == pytest.approx(len(tr) / len(tr.dataset))


def test_stages_order_the_parts_not_the_order_they_were_added():
    seen = []
    trainer = Engine(lambda e, b: None)
    recipe = Recipe(trainer)
    recipe.add("late", lambda r: seen.append("late"), Stage.CHECKPOINT)
    recipe.add("user", lambda r: seen.append("user"))
    recipe.add("early", lambda r: seen.append("early"), Stage.TIMER)
    recipe.attach()
    assert seen == ["early", "user", "late"]
    with pytest.raises(ValueError, match="already has a part named 'user'"):
        recipe.add("user", lambda r: None)


class Counter:
    """A user handler with state: counts iterations, checkpointed through the recipe's registry."""

    def __init__(self) -> None:
        self.seen = 0

    def __call__(self, trainer: Engine, evaluator: Engine) -> "Counter":
        trainer.add_event_handler(Events.ITERATION_COMPLETED, lambda _: setattr(self, "seen", self.seen + 1))
        return self

    def state_dict(self) -> dict:
        return {"seen": self.seen}

    def load_state_dict(self, state: dict) -> None:
        self.seen = state["seen"]


def test_user_handler_state_is_checkpointed_and_resumed(digits, tmp_path):
    X, y = digits
    tr, te = loaders(X, y, 96, 32, 16)
    net = small_cnn()
    first = Counter()
    train_ch13(net, tr, te, LOSS, torch.optim.SGD(net.parameters(), 0.05), 2, plot=False, verbose=False,
               checkpoint_dir=str(tmp_path / "a"), handlers=[first])
    saved = torch.load(tmp_path / "a" / "last_checkpoint_2.pt", weights_only=True)
    assert saved["handlers[0]"] == {"seen": 12}
    again = Counter()
    train_ch13(net, tr, te, LOSS, torch.optim.SGD(net.parameters(), 0.05), 3, plot=False, verbose=False,
               checkpoint_dir=str(tmp_path / "b"), resume=str(tmp_path / "a"), handlers=[again])
    assert again.seen == 18  # 12 restored + 6 of the third epoch


def test_the_recipe_on_engines_you_build_gives_train_ch13s_figures(digits):
    X, y = digits
    tr, te = loaders(X, y, 96, 32, 16)
    a, b = small_cnn(), small_cnn()
    book = train_ch13(a, tr, te, LOSS, torch.optim.SGD(a.parameters(), 0.05), 2, plot=False, verbose=False)
    trainer = create_trainer(b, LOSS, torch.optim.SGD(b.parameters(), 0.05))
    recipe = book_recipe(trainer, create_evaluator(b), te, num_epochs=2)
    recipe.attach()
    trainer.run(tr, max_epochs=2)
    history = recipe.attached["history"]
    assert history.train_loss == book.train_loss and history.test_acc == book.test_acc


def test_step_options_are_checked_once_and_frozen():
    with pytest.raises(ValueError, match="accumulation_steps must be a whole number"):
        StepOptions(accumulation_steps=0)
    with pytest.raises(ValueError, match="amp='fp8' is not a precision"):
        StepOptions(amp="fp8")
    options = StepOptions(fast=True)
    with pytest.raises(dataclasses.FrozenInstanceError):
        options.amp = "bf16"  # type: ignore[misc]
    net = nn.Linear(2, 2)
    resolved = options.resolve(torch.device("cpu"), net, torch.optim.SGD(net.parameters(), 0.1))
    assert resolved == StepOptions(compile=True, channels_last=False)
    assert resolved.resolve(torch.device("cpu"), net, None) is resolved


class SlowBatches:
    """A data source that takes 30 ms to produce each batch (a slow loader), the step itself taking ~10 ms."""

    def __init__(self, batches: list) -> None:
        self.batches = batches

    def __iter__(self):
        for b in self.batches:
            time.sleep(0.03)
            yield b


@pytest.mark.parametrize("ours", [True, False], ids=["create_trainer (stamped start)", "a plain Engine"])
def test_the_step_timer_times_the_step_not_the_loading(digits, ours):
    X, y = digits
    batches = [(X[i:i + 16], y[i:i + 16]) for i in range(0, 96, 16)]
    net = small_cnn()
    if ours:
        inner = create_trainer(net, nn.CrossEntropyLoss(reduction="none"), torch.optim.SGD(net.parameters(), 0.1))
        trainer = inner
        trainer.add_event_handler(Events.ITERATION_STARTED, lambda _: time.sleep(0.01))  # before the step: not timed
    else:
        inner = create_trainer(net, nn.CrossEntropyLoss(reduction="none"), torch.optim.SGD(net.parameters(), 0.1))
        trainer = Engine(lambda e, batch: inner._process_function(inner, batch))
    timer = attach_book_metrics(trainer)
    trainer.add_event_handler(Events.ITERATION_COMPLETED, lambda _: time.sleep(0.01))  # after the lap: not timed
    t0 = time.perf_counter()
    trainer.run(SlowBatches(batches), max_epochs=1)
    untimed = 6 * (0.03 + 0.01 + (0.01 if ours else 0))  # loading and the sleeping handlers
    assert timer.examples == 96 and 0 < timer.seconds <= time.perf_counter() - t0 - untimed


def test_a_hand_made_step_that_reuses_its_output_dict_is_summed_right(digits):
    X, y = digits
    tr, _ = loaders(X, y, 160, 0, 16)
    out = {"loss": torch.zeros(()), "correct": torch.zeros((), dtype=torch.long), "examples": 0, "predictions": 0}

    def step(engine, batch):  # writes into the same dict and tensors every time
        out["loss"].fill_(float(engine.state.iteration))
        out["correct"].fill_(1)
        out["examples"] = out["predictions"] = len(batch[1])
        return out

    plain = Engine(step)
    attach_book_metrics(plain)
    state = plain.run(tr, max_epochs=1)
    assert state.metrics["loss"] == pytest.approx(sum(range(1, 11)) / 160)


def _figures_at_points(attach, batches, epochs=2):
    """Train a fresh small CNN with the pieces ``attach`` adds; the metrics at each book point."""
    net = small_cnn()
    trainer = create_trainer(net, nn.CrossEntropyLoss(reduction="none"), torch.optim.SGD(net.parameters(), 0.1))
    timer, guard = attach(trainer)
    seen = []
    trainer.add_event_handler(BOOK_POINTS, lambda e: seen.append((e.state.iteration, e.state.metrics["loss"],
                                                                  e.state.metrics["acc"])))
    trainer.run(batches, max_epochs=epochs)
    return seen, timer, guard


def test_each_piece_alone_gives_the_fused_handlers_figures(digits):
    """StepTimer, BookLoss, BookAccuracy and NonFiniteGuard attached one by one, as any Ignite user would,
    give what the one fused handler gives: the same points, figures, example count and NaN iteration."""
    X, y = digits
    X = X.clone()
    X[7 * 16 + 3] = float("nan")  # the 8th batch of the first epoch
    batches = [(X[i:i + 16], y[i:i + 16]) for i in range(0, 160, 16)]

    def fused(trainer):
        figures = RunningMetrics().attach(trainer)
        return figures.timer, NonFiniteGuard().attach(trainer)  # reads the losses RunningMetrics.on(trainer) folds

    def alone(trainer):
        timer = StepTimer().attach(trainer)
        BookLoss().attach(trainer, "loss", usage=BookCadence())
        BookAccuracy().attach(trainer, "acc", usage=BookCadence())
        return timer, NonFiniteGuard().attach(trainer)

    clean = [(X[i:i + 16].nan_to_num(), y[i:i + 16]) for i in range(0, 160, 16)]
    (a, ta, _), (b, tb, _) = _figures_at_points(fused, clean), _figures_at_points(alone, clean)
    assert [p[0] for p in a] == [p[0] for p in b] == [2, 4, 6, 8, 10, 12, 14, 16, 18, 20]
    assert [v for p in a for v in p[1:]] == pytest.approx([v for p in b for v in p[1:]], rel=1e-6)
    assert ta.examples == tb.examples == 320 and len(ta.epoch_seconds) == len(tb.epoch_seconds) == 2
    (_, _, ga), (_, _, gb) = _figures_at_points(fused, batches), _figures_at_points(alone, batches)
    assert ga.iteration == gb.iteration == 8 and ga.epoch == gb.epoch == 1


def test_a_part_whose_attach_fails_leaves_nothing_and_a_retry_attaches_the_rest(digits, tmp_path):
    """Issue 38: a Part whose attach raised left the empty checkpoint folder, and a failed attach() dropped that
    part and every later one (a retry then said the user had removed them)."""
    from engine import Part, Stage, book_recipe, create_evaluator, create_trainer

    _, te = loaders(*digits, 64, 32, 16)
    net = small_cnn()
    trainer = create_trainer(net, LOSS, torch.optim.SGD(net.parameters(), 0.1))
    calls = []

    def flaky(recipe):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("not yet")
        return "ok"

    recipe = book_recipe(trainer, create_evaluator(net), te, num_epochs=1, checkpoint_dir=str(tmp_path / "ck"),
                         to_save={"model": net}, parts=[Part("late", flaky, Stage.PROGRESS)])
    with pytest.raises(RuntimeError, match="not yet"):
        recipe.attach()
    assert not (tmp_path / "ck").exists()  # the folder made for the run went with it
    assert "late" in [p.name for p in recipe.parts]
    recipe.attach()  # the retry attaches what is left, once
    assert recipe.attached["late"] == "ok" and len(calls) == 2
