"""Ignite's contract, tested the way Ignite's own tests are, against Ignite's class and ours where both exist:
a difference shows as one failing line (issue 37). Logging and paired events for the Engine, the constructor,
``vis`` and the no-server behaviour for the Visdom logger, reset/update/compute and state for the metrics."""
from __future__ import annotations

import json
import logging

import ignite.engine
import pytest
import torch
from ignite.engine import Events
from ignite.handlers import visdom_logger as ignite_visdom
from ignite.metrics import Accuracy, Loss
from torch import nn

from engine import create_trainer
from engine.dispatch import Engine as OurEngine
from handlers import BookAccuracy, BookLoss, LocalVisdom, UpdateEvents, VisdomLogger
from visdom_util import own, trace_counts, window

ENGINES = [pytest.param(ignite.engine.Engine, id="ignite"), pytest.param(OurEngine, id="ours")]


# -- Engine: logging -------------------------------------------------------------------------------------
@pytest.mark.parametrize("cls", ENGINES)
def test_engine_logs_in_ignites_logger_tree(cls, caplog):
    class MyEngine(cls):
        pass

    for engine_cls, name in ((cls, "Engine"), (MyEngine, "MyEngine")):
        engine = engine_cls(lambda e, b: None)
        assert engine.logger.name == f"ignite.engine.engine.{name}"
    with caplog.at_level(logging.INFO):  # Ignite's run lines are INFO: shown, then quieted through "ignite"
        cls(lambda e, b: None).run([1, 2], max_epochs=1)
        assert any("Engine run starting" in r.getMessage() for r in caplog.records)
        caplog.clear()
        logging.getLogger("ignite").setLevel(logging.WARNING)
        try:
            cls(lambda e, b: None).run([1, 2], max_epochs=1)
        finally:
            logging.getLogger("ignite").setLevel(logging.NOTSET)
        assert not [r for r in caplog.records if r.name.startswith("ignite")]


@pytest.mark.parametrize("cls", ENGINES)
def test_debug_switch_shows_event_lines(cls, caplog):
    with caplog.at_level(logging.DEBUG, logger="ignite"):
        cls(lambda e, b: None).run([1], max_epochs=1)
    assert any("Firing handlers for event" in r.getMessage() for r in caplog.records)


def _failing(cls, swallow: bool):
    engine = cls(lambda e, b: 1 / 0)
    if swallow:
        engine.add_event_handler(Events.EXCEPTION_RAISED, lambda e, exc: None)
    return engine


@pytest.mark.parametrize("cls", ENGINES)
def test_exception_kept_by_a_handler_is_logged(cls, caplog):
    with caplog.at_level(logging.ERROR):
        _failing(cls, swallow=True).run([1], max_epochs=1)
    assert any("terminating due to exception" in r.getMessage() for r in caplog.records)


def test_exception_reaching_the_caller_is_said_once_by_the_caller(caplog):
    """Ours only: the lines Ignite logs before re-raising are dropped (the caller's traceback says it)."""
    with caplog.at_level(logging.ERROR), pytest.raises(ZeroDivisionError):
        _failing(OurEngine, swallow=False).run([1], max_epochs=1)
    assert not any("terminating due to exception" in r.getMessage() for r in caplog.records)
    engine = _failing(OurEngine, swallow=False)
    engine.logger.propagate = False  # attributes set on engine.logger reach the logger itself
    try:
        assert logging.getLogger("ignite.engine.engine.Engine").propagate is False
    finally:
        engine.logger.propagate = True


# -- Engine: paired events --------------------------------------------------------------------------------
def _update_log(accumulation: int, iterations: int = 12) -> dict[str, list[int]]:
    torch.manual_seed(0)
    net = nn.Linear(3, 2)
    trainer = create_trainer(net, nn.CrossEntropyLoss(reduction="none"), torch.optim.SGD(net.parameters(), 0.1),
                             accumulation_steps=accumulation)
    log: dict[str, list[int]] = {}
    for name, event in (("started once=1", UpdateEvents.UPDATE_STARTED(once=1)),
                        ("started every=2", UpdateEvents.UPDATE_STARTED(every=2)),
                        ("completed every=2", UpdateEvents.UPDATE_COMPLETED(every=2)),
                        ("completed once=1", UpdateEvents.UPDATE_COMPLETED(once=1))):
        trainer.add_event_handler(event, lambda e, n=name: log.setdefault(n, []).append(e.state.optimizer_steps))
    data = [(torch.randn(4, 3), torch.randint(0, 2, (4,))) for _ in range(iterations)]
    trainer.run(data, max_epochs=1)
    return log


@pytest.mark.parametrize("k", [1, 3])
def test_update_events_pair_as_ignites_iteration_events(k):
    """As ITERATION_STARTED(every=2) / ITERATION_COMPLETED(every=2) fire at the same iterations, the update
    pair fires at the same updates (optimizer_steps: the count before the update at STARTED, after it at
    COMPLETED)."""
    pairs: dict[str, list[int]] = {}
    engine = ignite.engine.Engine(lambda e, b: None)
    engine.add_event_handler(Events.ITERATION_STARTED(every=2), lambda e: pairs.setdefault("s", []).append(
        e.state.iteration))
    engine.add_event_handler(Events.ITERATION_COMPLETED(every=2), lambda e: pairs.setdefault("c", []).append(
        e.state.iteration))
    engine.run(range(12), max_epochs=1)
    assert pairs["s"] == pairs["c"] == [2, 4, 6, 8, 10, 12]
    log = _update_log(k)
    updates = 12 // k
    assert log["started once=1"] == [0] and log["completed once=1"] == [1]
    assert log["started every=2"] == [n - 1 for n in range(2, updates + 1, 2)]
    assert log["completed every=2"] == list(range(2, updates + 1, 2))


# -- VisdomLogger ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with LocalVisdom(env_path=str(tmp_path_factory.mktemp("visdom"))) as s:
        yield s


def _at(url: str) -> dict:
    host, port = url.rsplit(":", 1)
    return {"server": host, "port": int(port)}


@pytest.mark.parametrize("cls", [pytest.param(ignite_visdom.VisdomLogger, id="ignite"),
                                 pytest.param(VisdomLogger, id="ours")])
def test_logger_refuses_a_misspelt_keyword(cls, server):
    with pytest.raises(TypeError, match="evn"):
        cls(**_at(server.url), evn="x")


@pytest.mark.parametrize("kwargs, words", [({"send": False}, "offline=True"), ({"proxies": {"http": "h:1"}}, "proxy"),
                                           ({"offline": True}, "log_to_filename"),
                                           ({"username": "u"}, "password")])
def test_logger_refuses_what_it_cannot_honour_with_the_reason(kwargs, words, server):
    with pytest.raises(ValueError, match=words):
        VisdomLogger(**_at(server.url), **kwargs)


def test_logger_vis_is_a_visdom_client(server):
    from visdom import Visdom

    logger = VisdomLogger(**_at(server.url), env="contract-vis")
    vis = logger.vis
    assert isinstance(vis, Visdom)
    win = vis.text("<b>notes</b>", win="notes")
    vis.image(torch.rand(3, 8, 8).numpy(), win="picture")
    vis.bar(X=[1.0, 2.0, 3.0], win="bars")
    assert vis.line(Y=[1.0, 2.0], X=[1.0, 2.0], win="curve", name="a") == "curve"
    assert win == "notes"
    assert logger.plotter.flush(10)
    assert "contract-vis" in vis.get_env_list()
    assert vis.win_exists("notes") and vis.win_exists("picture") and vis.win_exists("bars")
    assert json.loads(vis.get_window_data("notes"))["content"] == "<b>notes</b>"
    assert vis.check_connection()
    assert trace_counts(server.url, "contract-vis", "curve") == {"a": 2}
    vis.close(win="bars")
    logger.close()
    assert not vis.win_exists("bars") and vis.win_exists("notes")


def test_logger_takes_the_login_as_keywords(tmp_path, monkeypatch):
    monkeypatch.setenv("VISDOM_USERNAME", "alice")
    monkeypatch.setenv("VISDOM_PASSWORD", "s3cret")
    with LocalVisdom(env_path=str(tmp_path / "envs"), login=True) as s:
        monkeypatch.delenv("VISDOM_USERNAME")
        monkeypatch.delenv("VISDOM_PASSWORD")
        logger = VisdomLogger(**_at(s.url), env="login", username="alice", password="s3cret")
        logger.vis.line(Y=[3.0], X=[1.0], win="w", name="t")
        assert logger.plotter.close() is True
        session = __import__("requests").Session()
        session.headers.update(own(s.url))  # this user's token, then Visdom's own login
        session.post(s.url + "/", json={"username": "alice", "password": __import__("hashlib").sha256(
            b"s3cret").hexdigest()})
        assert trace_counts(s.url, "login", "w", session) == {"t": 1}


def test_logger_offline_keeps_a_log_visdom_replays(server, tmp_path):
    from visdom import Visdom

    path = str(tmp_path / "calls.log")
    logger = VisdomLogger(server="127.0.0.1", port=9, offline=True, log_to_filename=path, env="offline-run")
    for i in range(3):
        logger.vis.line(Y=[float(i)], X=[float(i)], win="loss", name="train", update=None if i == 0 else "append")
    logger.vis.text("done", win="note")
    logger.close()  # nothing was sent: no server at port 9 was ever asked
    assert logger.plotter.sender.failures == 0
    vis = Visdom(**_at(server.url), use_incoming_socket=False)
    vis.session.headers.update(own(server.url))  # a plain Visdom client on the user's private server (README)
    vis.replay_log(path)
    assert trace_counts(server.url, "offline-run", "loss") == {"train": 3}
    assert window(server.url, "offline-run", "note")["content"] == "done"


def test_logger_without_a_server_neither_raises_nor_waits(tmp_path):
    logger = VisdomLogger(server="127.0.0.1", port=9, env="nobody", out_dir=str(tmp_path))
    logger.vis.text("x")
    logger.vis.line(Y=[1.0], X=[1.0], win="w", name="t")
    assert logger.vis.get_env_list() == ["nobody"] and not logger.vis.check_connection()
    logger.close()
    assert (tmp_path / "curves.npz").exists()


# -- the book's metrics against Ignite's -------------------------------------------------------------------
def _batches(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(8, 4, generator=g), torch.randint(0, 4, (8,), generator=g)) for _ in range(5)]


def _evaluate(metric, batches, usage="epoch_wise"):
    engine = ignite.engine.Engine(lambda e, b: b)
    metric.attach(engine, "m", usage=usage)
    return engine.run(batches, max_epochs=1).metrics["m"]


def test_book_metrics_agree_with_ignites_and_keep_ignites_keywords():
    batches = _batches()
    as_pred = lambda out: out  # noqa: E731  (y_pred, y), Ignite's shape
    acc_stats = lambda out: (torch.tensor(float((out[0].argmax(1) == out[1]).sum())), out[1].numel())  # noqa: E731
    ce = nn.CrossEntropyLoss()
    loss_stats = lambda out: (ce(*out) * len(out[1]), len(out[1]))  # noqa: E731
    assert _evaluate(BookAccuracy(output_transform=acc_stats, skip_unrolling=True), batches) == pytest.approx(
        _evaluate(Accuracy(output_transform=as_pred, skip_unrolling=True), batches))
    assert _evaluate(BookLoss(output_transform=loss_stats), batches) == pytest.approx(
        _evaluate(Loss(ce, output_transform=as_pred), batches))
    for usage in ("batch_wise", "epoch_wise"):  # Ignite's usages: the last batch's figure, the epoch's
        assert _evaluate(BookAccuracy(output_transform=acc_stats), batches, usage=usage) == pytest.approx(
            _evaluate(Accuracy(output_transform=as_pred), batches, usage=usage))


@pytest.mark.parametrize("cls", [BookAccuracy, BookLoss])
def test_book_metric_state_round_trips(cls):
    metric = cls(output_transform=lambda out: out)
    metric.reset()
    metric.update((torch.tensor(3.0), 5))  # 0.6
    saved = metric.state_dict()
    fresh = cls(output_transform=lambda out: out)
    fresh.load_state_dict(saved)
    assert fresh.compute() == pytest.approx(0.6)
    fresh.update((torch.tensor(5.0), 5))
    assert fresh.compute() == pytest.approx(0.8)


def test_book_metric_keeps_no_graph():
    w = torch.ones(3, requires_grad=True)
    engine = ignite.engine.Engine(lambda e, b: {"loss": (w * b).sum(), "correct": (w * b).sum(), "examples": 3,
                                                "predictions": 3})
    metric = BookLoss()
    metric.attach(engine, "loss")
    seen = []
    engine.add_event_handler(Events.ITERATION_COMPLETED, lambda e: seen.append(metric._num.requires_grad))
    engine.run([torch.ones(3)] * 3, max_epochs=1)
    assert seen == [False, False, False]
    direct = BookLoss(output_transform=lambda o: o)
    direct.update(((w * 2).sum(), 3))
    assert not direct._num.requires_grad
