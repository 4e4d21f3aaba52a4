"""Step options and handlers of issue 6: AMP, accumulation, clipping, compile, channels_last, schedules,
early stopping (checkpoint + resume is in test_resume.py)."""
from __future__ import annotations

import math

import pytest
import torch
from ignite.engine import Events
from ignite.handlers import CosineAnnealingScheduler
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from conftest import loaders, small_cnn, twin
from engine import create_trainer, train_ch13
from handlers import VisdomPlotter

CE = nn.CrossEntropyLoss(reduction="none")
CPU = ["cpu"]


def quiet(net, tr, te, opt, epochs, **kw):
    return train_ch13(net, tr, te, CE, opt, epochs, CPU, plot=kw.pop("plot", False), verbose=False, **kw)


def test_bf16_on_cpu_autocasts_and_learns(digits):
    X, y = digits
    tr, te = loaders(X, y, 1000, 400, 32)
    seen = []
    net = small_cnn()
    engine = create_trainer(net, CE, torch.optim.Adam(net.parameters(), 1e-2), CPU, amp="bf16",
                            output_transform=lambda X, y, y_hat, s: seen.append(y_hat.dtype) or s)
    engine.run(tr, max_epochs=1)
    assert set(seen) == {torch.bfloat16}
    net = small_cnn()
    history = quiet(net, tr, te, torch.optim.Adam(net.parameters(), 1e-2), 3, amp="bf16")
    assert history.test_acc[-1] > 0.85 and math.isfinite(history.train_loss[-1])
    assert history.train_loss[-1] < history.train_loss[0]


def test_fp16_has_a_scaler_that_steps(digits):
    X, y = digits
    tr, te = loaders(X, y, 600, 200, 32)
    net = small_cnn()
    engine = create_trainer(net, CE, torch.optim.SGD(net.parameters(), 0.05), CPU, amp="fp16")
    scaler = engine.state.scaler
    assert isinstance(scaler, torch.amp.GradScaler) and scaler.is_enabled()
    before = [p.detach().clone() for p in net.parameters()]
    engine.run(tr, max_epochs=1)
    assert any(not torch.equal(a, b) for a, b in zip(before, net.parameters()))
    assert scaler.state_dict()["scale"] > 0


def _sgd_run(net, data, batch, k, loss):
    opt = torch.optim.SGD(net.parameters(), lr=0.01)
    engine = create_trainer(net, loss, opt, CPU, accumulation_steps=k)
    engine.run(DataLoader(data, batch), max_epochs=1)
    return engine


@pytest.mark.parametrize("loss", [CE, nn.CrossEntropyLoss()], ids=["sum-of-losses", "mean"])
def test_accumulation_matches_one_big_batch(digits, loss):
    X, y = digits
    data = TensorDataset(X[:96], y[:96])
    net = small_cnn()
    small, big = twin(net), twin(net)
    _sgd_run(small, data, 8, 4, loss)  # 12 batches of 8, stepped every 4 -> 3 updates of 32
    _sgd_run(big, data, 32, 1, loss)  # 3 batches of 32
    for a, b in zip(small.parameters(), big.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)  # float32 summation order only
    moved = max(float((a - b).detach().abs().max()) for a, b in zip(small.parameters(), net.parameters()))
    assert moved > 1e-3


def test_accumulation_never_carries_gradient_into_the_next_epoch(digits):
    X, y = digits
    data = TensorDataset(X[:40], y[:40])  # 5 batches of 8; k=2 -> updates of 16, 16, 8 each epoch
    net = small_cnn()
    ref = twin(net)
    engine = _sgd_run(net, data, 8, 2, CE)
    assert engine.state.optimizer_steps == 3
    opt = torch.optim.SGD(ref.parameters(), lr=0.01)
    for lo, hi in [(0, 16), (16, 32), (32, 40)]:
        opt.zero_grad()
        CE(ref(X[lo:hi]), y[lo:hi]).sum().backward()
        opt.step()
    for a, b in zip(net.parameters(), ref.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def _grad_norms(net, tr, **kw):
    norms = []
    engine = create_trainer(net, CE, torch.optim.SGD(net.parameters(), 0.01), CPU, **kw)
    engine.add_event_handler(Events.ITERATION_COMPLETED, lambda _: norms.append(
        float(torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in net.parameters()])))))
    engine.run(tr, max_epochs=1)
    return norms


def test_clipping_bounds_the_gradient_norm(digits):
    X, y = digits
    tr, _ = loaders(X, y, 320, 0, 32)
    free = _grad_norms(small_cnn(), tr)
    clipped = _grad_norms(small_cnn(), tr, clip_grad_norm=0.5)
    assert min(free) > 0.5  # the bound bites on every batch
    assert max(clipped) <= 0.5 * (1 + 1e-5)


def test_channels_last_and_compile_train_to_the_same_numbers(digits):
    X, y = digits
    tr, te = loaders(X, y, 256, 128, 64)
    net = small_cnn()
    plain, fast = twin(net), twin(net)
    a = quiet(plain, tr, te, torch.optim.SGD(plain.parameters(), 0.01), 1)
    b = quiet(fast, tr, te, torch.optim.SGD(fast.parameters(), 0.01), 1, channels_last=True, compile=True)
    assert fast[0].weight.is_contiguous(memory_format=torch.channels_last)
    assert abs(a.train_loss[-1] - b.train_loss[-1]) < 1e-4 and a.test_acc == b.test_acc
    for p, q in zip(plain.parameters(), fast.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-5)


def _lrs(tr, te, scheduler_for, every, out_dir=None, **kw):
    net = small_cnn()
    opt = torch.optim.SGD(net.parameters(), 0.1)
    sched = scheduler_for(opt)
    plotter = VisdomPlotter("http://127.0.0.1:9", "lr-test", out_dir=out_dir, connect_timeout=0.2) \
        if kw.pop("plot_lr", False) else False
    train_ch13(net, tr, te, CE, opt, 3, CPU, verbose=False, lr_scheduler=sched, scheduler_every=every,
               plot=plotter, plot_lr=bool(plotter), **kw)
    return sched, plotter


def test_torch_scheduler_per_iteration_follows_its_formula_and_is_plotted(digits, tmp_path):
    X, y = digits
    tr, te = loaders(X, y, 160, 64, 32)  # 5 batches an epoch, 15 iterations
    _, plotter = _lrs(tr, te, lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=15), "iteration",
                      out_dir=str(tmp_path), plot_lr=True)
    xs, lrs = zip(*plotter.store.points("lr", "lr"))
    expected = [0.1 * (1 + math.cos(math.pi * i / 15)) / 2 for i in range(1, 16)]
    assert [round(v, 9) for v in lrs] == [round(v, 9) for v in expected]
    assert list(xs)[:2] == [0.2, 0.4] and list(xs)[-1] == 3.0


def test_ignite_param_scheduler_per_epoch_and_accumulation_per_update(digits):
    X, y = digits
    tr, te = loaders(X, y, 160, 64, 32)
    sched, _ = _lrs(tr, te, lambda o: CosineAnnealingScheduler(o, "lr", 0.1, 0.0, cycle_size=4), "epoch")
    # 3rd epoch: t=2 of 4
    assert sched.optimizer.param_groups[0]["lr"] == pytest.approx(0.1 * (1 + math.cos(math.pi * 2 / 4)) / 2)
    lrs = []
    net = small_cnn()
    opt = torch.optim.SGD(net.parameters(), 0.1)
    step = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    engine = create_trainer(net, CE, opt, CPU, accumulation_steps=2)
    from handlers.lr_schedule import attach_lr_scheduler
    attach_lr_scheduler(engine, step, "iteration")
    engine.add_event_handler(Events.ITERATION_COMPLETED, lambda e: lrs.append(e.state.metrics["lr"]))
    engine.run(tr, max_epochs=1)  # 5 batches, k=2 -> updates after batches 2, 4, 5
    assert lrs == [0.1, 0.1, 0.05, 0.05, 0.025]


def test_early_stopping_stops_at_the_right_epoch(digits):
    X, y = digits
    tr, te = loaders(X, y, 128, 64, 32)
    net = small_cnn()
    frozen = torch.optim.SGD(net.parameters(), lr=0.0)  # test acc never improves after epoch 1
    history = quiet(net, tr, te, frozen, 10, early_stopping=2)
    assert len(history.test_acc) == 3
    history = quiet(net, tr, te, frozen, 10, early_stopping=4, early_stopping_metric="test_loss")
    assert len(history.test_acc) == 5


@pytest.mark.parametrize("kw, message", [
    ({"amp": "fp8"}, "amp='fp8'"),
    ({"accumulation_steps": 0}, "accumulation_steps"),
    ({"clip_grad_norm": -1.0}, "clip_grad_norm"),
    ({"early_stopping": 0}, "patience"),
    ({"early_stopping": 2, "early_stopping_metric": "f1"}, "'f1' is unknown"),
    ({"lr_scheduler": "cosine"}, "lr_scheduler must be"),
    ({"lr_scheduler": None, "scheduler_every": "batch"}, "scheduler_every=.batch."),  # checked with no scheduler too
])
def test_bad_options_are_named(digits, kw, message):
    X, y = digits
    tr, te = loaders(X, y, 64, 32, 32)
    net = small_cnn()
    if message is None:
        quiet(net, tr, te, torch.optim.SGD(net.parameters(), 0.1), 1, **kw)  # unused option: ignored
        return
    with pytest.raises((ValueError, TypeError), match=message):
        quiet(net, tr, te, torch.optim.SGD(net.parameters(), 0.1), 1, **kw)


def test_fast_path_choices_per_device(monkeypatch):
    from engine.step_options import fast_options

    net = small_cnn()
    opt = torch.optim.Adam(net.parameters())
    assert fast_options(torch.device("cpu"), net, opt) == {"compile": True}
    assert all(not g["fused"] for g in opt.param_groups)
    capability = {"cuda:0": (9, 0), "cuda:1": (7, 0)}  # an H100 beside a V100 (emulated bf16 only)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda d=None: capability[str(d)])
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)  # what it says on a V100 too
    chosen = fast_options(torch.device("cuda:0"), net, opt)
    assert chosen == {"amp": "bf16", "channels_last": True, "compile": {"mode": "reduce-overhead"}}
    assert all(g["fused"] for g in opt.param_groups) and opt._step_supports_amp_scaling
    assert fast_options(torch.device("cuda:1"), net, opt)["amp"] == "fp16"  # the run's device is asked
    mlp = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
    assert fast_options(torch.device("cuda:0"), mlp, torch.optim.SGD(mlp.parameters(), 0.1))["channels_last"] is False
    adagrad = torch.optim.Adagrad(mlp.parameters())  # its fused kernel is CPU-only: left alone
    fast_options(torch.device("cuda:0"), mlp, adagrad)
    assert not any(g.get("fused") for g in adagrad.param_groups)
    foreach = torch.optim.SGD(mlp.parameters(), 0.1, foreach=True)  # the caller's choice stays
    fast_options(torch.device("cuda:0"), mlp, foreach)
    assert not any(g.get("fused") for g in foreach.param_groups)


@pytest.mark.parametrize("given, expected", [
    ({}, ("bf16", True, {"mode": "reduce-overhead"})),
    ({"channels_last": False}, ("bf16", False, {"mode": "reduce-overhead"})),
    ({"compile": False}, ("bf16", True, False)),
    ({"amp": "fp32"}, (None, True, {"mode": "reduce-overhead"})),
    ({"amp": "fp16", "compile": {"mode": "max-autotune"}}, ("fp16", True, {"mode": "max-autotune"})),
])
def test_fast_fills_only_what_was_not_given(monkeypatch, given, expected):
    from engine.step_options import StepOptions

    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda d=None: (9, 0))
    net = small_cnn()
    resolved = StepOptions(fast=True, **given).resolve(torch.device("cuda:0"), net, torch.optim.SGD(net.parameters()))
    assert (resolved.amp, resolved.channels_last, resolved.compile) == expected and not resolved.fast
    plain = StepOptions(**given).resolve(torch.device("cpu"), net)
    assert plain.channels_last is bool(given.get("channels_last")) and plain.amp in (None, given.get("amp"))


def test_prefetcher_is_a_transparent_loader_on_cpu(digits):
    from engine.prefetch import prefetch

    X, y = digits
    loader = DataLoader(TensorDataset(X[:50], y[:50]), 16, shuffle=True, generator=torch.Generator().manual_seed(0))
    wrapped = prefetch(loader, "cpu")
    assert len(wrapped) == 4 and wrapped.generator is loader.generator and wrapped.sampler is loader.sampler
    loader.generator.manual_seed(1)
    first = [b[1].tolist() for b in wrapped]
    loader.generator.manual_seed(1)
    assert first == [b[1].tolist() for b in loader]
