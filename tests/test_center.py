"""The center's shape (issue 24): options as one value accepted everywhere, the per-update event, EMA on it,
parts placed by stage, the recipe that describes itself and refuses to run without its required parts."""
from __future__ import annotations

import argparse
import dataclasses
import inspect

import pytest
import torch
from ignite.engine import Events
from torch import nn

from conftest import loaders, small_cnn
from engine import (
    BookRecipe, Part, RecipeSettings, Stage, StepOptions, book_recipe, create_evaluator, create_trainer,
    evaluate_accuracy, train_ch13,
)
from engine.app.cli import build_parser
from engine.app.flags import FEATURES, RUN, STEP
from handlers import BookEvents, UpdateEvents, VisdomPlotter, load_checkpoint

CE = nn.CrossEntropyLoss(reduction="none")
SAMPLE = {"amp": "bf16", "accumulation_steps": 2, "clip_grad_norm": 1.0, "channels_last": True, "compile": False,
          "fast": False}


def _fields(cls: type) -> list[str]:
    return [f.name for f in dataclasses.fields(cls)]


def test_every_option_field_is_accepted_by_train_ch13_the_factories_and_the_cli():
    """A new field is one edit: this test enumerates the fields, nothing else lists them."""
    assert set(SAMPLE) == set(_fields(StepOptions))
    signature = inspect.signature(train_ch13).parameters
    for name in _fields(StepOptions) + _fields(RecipeSettings):
        assert signature[name].kind is inspect.Parameter.KEYWORD_ONLY, name
    net = small_cnn()
    for name, value in SAMPLE.items():
        create_trainer(net, CE, torch.optim.SGD(net.parameters(), 0.1), ["cpu"], **{name: value})
        create_evaluator(net, ["cpu"], **{name: value})
    both = StepOptions(**SAMPLE)
    assert create_trainer(net, CE, torch.optim.SGD(net.parameters(), 0.1), ["cpu"], options=both) is not None
    flags = RUN + STEP + FEATURES
    routed = {o.kwarg for o in flags} | {name for o in flags for name in o.covers}
    assert set(_fields(StepOptions)) | set(_fields(RecipeSettings)) <= routed
    dests = {a.dest for a in build_parser()._subparsers._group_actions[0].choices["train"]._actions}
    assert {o.dest for o in flags} <= dests


def test_options_are_keyword_only_and_unknown_keywords_are_named(digits):
    with pytest.raises(TypeError):
        StepOptions("bf16")  # by position a new field would shift the others
    tr, te = loaders(*digits, 64, 32, 32)
    net = small_cnn()
    with pytest.raises(TypeError, match="unexpected keyword argument 'acumulation_steps'; its options are .*"
                                        "accumulation_steps"):
        train_ch13(net, tr, te, CE, torch.optim.SGD(net.parameters(), 0.1), 1, ["cpu"], plot=False,
                   acumulation_steps=2)


def test_update_events_fire_once_per_update_and_count_in_state(digits):
    X, y = digits
    batches = [(X[i:i + 8], y[i:i + 8]) for i in range(0, 80, 8)]  # 10 batches an epoch
    net = small_cnn()
    trainer = create_trainer(net, CE, torch.optim.SGD(net.parameters(), 0.1), accumulation_steps=3)
    seen: list = []
    trainer.add_event_handler(UpdateEvents.UPDATE_STARTED, lambda e: seen.append(("start", e.state.iteration)))
    trainer.add_event_handler(UpdateEvents.UPDATE_COMPLETED, lambda e: seen.append(("done", e.state.optimizer_steps)))
    every2: list = []
    trainer.add_event_handler(UpdateEvents.UPDATE_COMPLETED(every=2), lambda e: every2.append(e.state.optimizer_steps))
    trainer.run(batches, max_epochs=2)
    starts = [i for kind, i in seen if kind == "start"]
    assert starts == [1, 4, 7, 10, 11, 14, 17, 20]  # groups of 3, the epoch's last one shorter
    assert [n for kind, n in seen if kind == "done"] == list(range(1, 9)) and every2 == [2, 4, 6, 8]
    assert trainer.state.optimizer_steps == 8 and trainer.state_dict()["optimizer_steps"] == 8


def test_a_torch_schedule_steps_on_the_update_event(digits):
    tr, te = loaders(*digits, 96, 32, 16)  # 6 batches an epoch, accumulate 4: 2 updates an epoch
    net = small_cnn()
    opt = torch.optim.SGD(net.parameters(), 0.1)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    train_ch13(net, tr, te, CE, opt, 2, ["cpu"], plot=False, verbose=False, accumulation_steps=4, lr_scheduler=sched)
    assert sched.last_epoch == 4 and opt.param_groups[0]["lr"] == pytest.approx(0.1 * 0.5 ** 4)


def _spy(captured: list) -> Part:
    return Part("spy", lambda r: captured.append(r), Stage.USER)


def test_ema_is_ignites_handler_on_updates_tested_plotted_and_saved(digits, tmp_path):
    tr, te = loaders(*digits, 96, 64, 16)
    net, captured = small_cnn(), []
    expected = [p.detach().clone() for p in net.parameters()]

    def follow(trainer, _evaluator):  # the average by hand, after each update
        @trainer.on(UpdateEvents.UPDATE_COMPLETED)
        def _(engine):
            for e, p in zip(expected, net.parameters()):
                e.mul_(0.9).add_(p.detach(), alpha=0.1)

    plotter = VisdomPlotter("http://127.0.0.1:9", "ema", out_dir=str(tmp_path / "plots"), connect_timeout=0.2)
    history = train_ch13(net, tr, te, CE, torch.optim.SGD(net.parameters(), 0.2), 2, ["cpu"], plot=plotter,
                         verbose=False, ema=0.9, accumulation_steps=2, handlers=[follow], parts=[_spy(captured)],
                         checkpoint_dir=str(tmp_path / "run"))
    plotter.close()
    ema = captured[0].attached["ema"]
    for e, p in zip(expected, ema.model.parameters()):
        torch.testing.assert_close(p, e)
    assert len(history.test_acc_ema) == 2
    assert history.test_acc_ema[-1] == pytest.approx(evaluate_accuracy(ema.model, te))
    assert len(plotter.store.points("train_ch13", "test acc (ema)")) == 2
    saved = torch.load(captured[0].checkpoints.last_file(), weights_only=True)
    assert saved["ema"].keys() == ema.model.state_dict().keys()


def test_ema_resumes_exactly_and_starts_from_resumed_weights(digits, tmp_path):
    tr, te = loaders(*digits, 96, 64, 16)

    def run(epochs, folder, resume=None, ema=0.8, parts=()):
        net = small_cnn()
        return train_ch13(net, tr, te, CE, torch.optim.SGD(net.parameters(), 0.2), epochs, ["cpu"], plot=False,
                          verbose=False, ema=ema, checkpoint_dir=str(tmp_path / folder), resume=resume,
                          parts=parts)

    whole = run(3, "whole")
    run(2, "first")
    resumed = run(3, "second", resume=str(tmp_path / "first"))
    assert resumed.test_acc_ema == pytest.approx(whole.test_acc_ema, abs=0)
    run(1, "plain", ema=None)
    seen = []

    def at_start(r):  # attached after the ema part (USER after EVALUATE): sees where the average starts
        r.trainer.add_event_handler(Events.STARTED, lambda e: seen.append(
            [torch.equal(a, b) for a, b in zip(r.attached["ema"].model.parameters(), r.to_save["model"].parameters())]))

    run(2, "later", resume=str(tmp_path / "plain"), parts=[Part("check", at_start)])
    assert seen == [[True] * 4]


def _book(digits, **kw):
    X, y = digits
    net = small_cnn()
    trainer = create_trainer(net, CE, torch.optim.SGD(net.parameters(), 0.1))
    _, te = loaders(X, y, 64, 32, 32)
    return book_recipe(trainer, create_evaluator(net), te, num_epochs=1, to_save={"model": net}, **kw), X, y


def test_recipe_describes_itself_and_refuses_to_run_without_a_required_part(digits):
    recipe, X, y = _book(digits, ema=0.99)
    assert isinstance(recipe, BookRecipe)
    before = recipe.describe()
    assert "sampler_epoch" in before and "(not attached yet)" in before
    removed = recipe.remove("sampler_epoch")
    with pytest.raises(ValueError, match=r"needs its parts \['sampler_epoch'\]"):
        recipe.attach()
    recipe.add(removed).attach()
    table = recipe.describe().splitlines()
    assert table[0].split() == ["stage", "part", "events", "saved", "as"]
    rows = {line.split()[1]: line for line in table[1:]}
    assert "TIMER" in rows["metrics"] and "trainer.ITERATION_COMPLETED" in rows["metrics"]
    assert rows["metrics"].rstrip().endswith("timer")
    assert "trainer.UPDATE_COMPLETED" in rows["ema"] and rows["ema"].rstrip().endswith("ema")
    assert "trainer.BOOK_POINT" in rows["guard"] and "trainer.BOOK_POINT" in rows["interrupt"]
    assert [line.split()[0] for line in table[1:] if line.split()[0] in Stage.__members__] == sorted(
        [line.split()[0] for line in table[1:] if line.split()[0] in Stage.__members__], key=lambda s: Stage[s])
    assert set(recipe.to_save) >= {"model", "trainer", "timer", "history", "rng", "ema"}


def test_parts_are_placed_by_stage_on_the_one_book_point_event(digits):
    order: list[str] = []

    def at(stage_name):
        def attach(r):
            r.trainer.add_event_handler(BookEvents.BOOK_POINT, lambda e: order.append(
                (stage_name, round(float(e.state.metrics["loss"]), 6))))
        return attach

    class Counter:
        def __init__(self):
            self.n = 0

        def state_dict(self):
            return {"n": self.n}

        def load_state_dict(self, state):
            self.n = state["n"]

    counter = Counter()
    recipe, X, y = _book(digits, parts=[Part("late", at("late"), Stage.PROGRESS),
                                        Part("early", at("early"), Stage.METRICS),
                                        Part("counted", lambda r: counter, Stage.RECORD, save="mine")])
    recipe.attach()
    assert recipe.to_save["mine"] is counter
    recipe.trainer.run([(X[i:i + 16], y[i:i + 16]) for i in range(0, 80, 16)], max_epochs=1)
    names = [n for n, _ in order]
    assert names == ["early", "late"] * 5  # every book point, in stage order, not in the order added
    assert order[0][1] == order[1][1]  # both read the same fresh figures


def test_test_loss_is_an_explicit_option(digits):
    tr, te = loaders(*digits, 64, 32, 32)
    net = small_cnn()
    kw = dict(plot=False, verbose=False)
    assert train_ch13(net, tr, te, CE, torch.optim.SGD(net.parameters(), 0.1), 1, ["cpu"], **kw).test_loss == []
    history = train_ch13(net, tr, te, CE, torch.optim.SGD(net.parameters(), 0.1), 2, ["cpu"], test_loss=True, **kw)
    assert len(history.test_loss) == 2 and all(v > 0 for v in history.test_loss)
    with pytest.raises(ValueError, match="early stopping on test_loss reads the test loss"):
        RecipeSettings(early_stopping=2, early_stopping_metric="test_loss", test_loss=False)


def test_the_cli_takes_ema_and_test_loss(tmp_path, capsys):
    from engine.app.cli import main

    assert main(["train", "--epochs", "2", "--ema", "0.9", "--test-loss", "--no-plot", "--out", str(tmp_path / "r"),
                 "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "test acc (ema)" in out
    state = load_checkpoint(str(tmp_path / "r"), {})  # the run folder's newest checkpoint holds the average
    assert "ema" in state
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "--ema", "1.5"])
    assert isinstance(build_parser().parse_args(["train"]), argparse.Namespace)


def test_a_checkpoint_from_before_the_update_count_still_resumes(digits, tmp_path):
    tr, te = loaders(*digits, 64, 32, 16)  # 4 batches an epoch
    net = small_cnn()
    train_ch13(net, tr, te, CE, torch.optim.SGD(net.parameters(), 0.1), 1, ["cpu"], plot=False, verbose=False,
               checkpoint_dir=str(tmp_path / "old"))
    path = next((tmp_path / "old").glob("last_checkpoint_*.pt"))
    state = torch.load(path, weights_only=True)
    del state["trainer"]["optimizer_steps"]  # as written by the previous release
    torch.save(state, path)
    counts, net = [], small_cnn()
    train_ch13(net, tr, te, CE, torch.optim.SGD(net.parameters(), 0.1), 2, ["cpu"], plot=False, verbose=False,
               resume=str(path), handlers=[lambda t, _: t.add_event_handler(
                   UpdateEvents.UPDATE_COMPLETED, lambda e: counts.append(e.state.optimizer_steps))])
    assert counts == [5, 6, 7, 8]
