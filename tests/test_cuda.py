"""Every CUDA path, run on a GPU: ``make gpu-check`` (``python -m bench.gpu_check``) runs this file there.

Skipped, with the reason, where no CUDA device is present (CI); ``multi_gpu`` tests need two or more.
Small nets and data on purpose: each test checks one CUDA behaviour in a few seconds.
"""
from __future__ import annotations

import copy
import gc
import os
import subprocess
import sys
import time
import warnings

import pytest
import torch
from conftest import small_cnn
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from ignite.engine import Events

from engine import train_ch13
from engine.prefetch import prefetch
from handlers import StepTimer

GPUS = torch.cuda.device_count() if torch.cuda.is_available() else 0
pytestmark = [pytest.mark.cuda, pytest.mark.skipif(GPUS == 0, reason="no CUDA device here (run `make gpu-check` "
                                                                       "on a GPU machine)")]
two_gpus = pytest.mark.skipif(GPUS < 2, reason=f"needs 2 GPUs, {GPUS} here")
CUDA = torch.device("cuda:0")
CE = nn.CrossEntropyLoss(reduction="none")
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def data(n: int = 1024, batch: int = 64, seed: int = 0, pin: bool = True) -> tuple[DataLoader, DataLoader]:
    """Digits-shaped random images with a learnable label (the brighter half)."""
    g = torch.Generator().manual_seed(seed)
    X = torch.rand(n + 256, 1, 8, 8, generator=g)
    y = (X[:, 0, :4].mean((1, 2)) * 10).long().clamp(0, 9)
    train = DataLoader(TensorDataset(X[:n], y[:n]), batch, shuffle=True, generator=g, pin_memory=pin)
    return train, DataLoader(TensorDataset(X[n:], y[n:]), 128, pin_memory=pin)


def run(net: nn.Module, epochs: int = 2, optimizer: torch.optim.Optimizer | None = None, **kw):
    train, test = kw.pop("loaders", None) or data()
    optimizer = optimizer or torch.optim.SGD(net.parameters(), 0.1)
    return train_ch13(net, train, test, CE, optimizer, epochs, [CUDA], plot=False, verbose=False,
                      progress=False, **kw)


# -- the prefetcher -----------------------------------------------------------------------------------------

def test_prefetched_batches_equal_their_cpu_copies_with_the_compute_stream_stalled():
    g = torch.Generator().manual_seed(1)
    batches = [([torch.rand(256, 64, generator=g), torch.randint(0, 9, (256, 3), generator=g).pin_memory()],
                torch.arange(256) + i, [f"id{i}-{j}" for j in range(3)]) for i in range(12)]
    seen = []
    for X, y, ids in prefetch(batches, CUDA):
        torch.cuda._sleep(2_000_000)  # the compute stream is busy while the next copy runs on the side stream
        seen.append(([x.sum().item() for x in X], y.cpu(), ids, X[0].device))
    assert len(seen) == len(batches)
    for (sums, y, ids, device), (X, y0, ids0) in zip(seen, batches):
        assert device.type == "cuda" and ids == ids0  # strings pass through, as on a CPU
        assert sums == pytest.approx([x.sum().item() for x in X]) and torch.equal(y, y0)


def test_prefetcher_has_a_length_only_when_its_loader_has_one():
    assert len(prefetch([1, 2, 3], CUDA)) == 3
    assert not hasattr(prefetch(iter([1, 2, 3]), CUDA), "__len__")


# -- no host sync per step ----------------------------------------------------------------------------------

def _no_sync_after_warm_up(trainer, evaluator):
    """Sync debug mode "error" over every step from epoch 2 on, except the book's five points an epoch (where
    the figures are read, as the book prints them) and the epoch's end (evaluation)."""
    from ignite.engine import Events

    def window(engine):  # set at the end of one step for the next one
        n = engine.state.epoch_length
        k = engine.state.iteration % n + 1  # the next step's place in its epoch
        point = k % max(1, n // 5) == 0 or k == n
        last = engine.state.iteration % n == 0
        torch.cuda.set_sync_debug_mode("default" if point or last or engine.state.epoch < 2 else "error")

    trainer.add_event_handler(Events.ITERATION_COMPLETED, window)


@pytest.mark.parametrize("options", [{}, {"amp": "bf16"}, {"amp": "fp16"}, {"fast": True},
                                     {"amp": "fp16", "accumulation_steps": 2, "clip_grad_norm": 1.0}],
                         ids=["fp32", "bf16", "fp16", "fast", "fp16-accumulate-clip"])
def test_no_host_sync_per_step(options):
    try:
        history = run(small_cnn(), 3, handlers=[_no_sync_after_warm_up], **options)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert len(history.train_loss) == 3 and history.train_loss[-1] == history.train_loss[-1]


# -- the step timer -----------------------------------------------------------------------------------------

def test_step_timer_measures_a_known_kernel_time():
    from ignite.engine import Engine

    cycles = 20_000_000
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    torch.cuda._sleep(cycles)  # warm up
    start.record()
    torch.cuda._sleep(cycles)
    end.record()
    end.synchronize()
    one = start.elapsed_time(end) / 1e3
    engine = Engine(lambda e, b: torch.cuda._sleep(cycles))
    timer = StepTimer(CUDA, examples=lambda e: 10).attach(engine)
    engine.run(range(20), max_epochs=2)
    assert timer.seconds == pytest.approx(40 * one, rel=0.15)
    assert timer.examples_per_sec == pytest.approx(10 / one, rel=0.15)


def test_step_timer_counts_a_copy_the_prefetch_could_not_hide():
    from ignite.engine import Engine

    big = [(torch.rand(64, 1024, 1024).pin_memory(), torch.zeros(1)) for _ in range(6)]  # 256 MB a batch
    engine = Engine(lambda e, b: None)  # no compute: the step is the wait for the copy
    timer = StepTimer(CUDA, examples=lambda e: 1).attach(engine)
    engine.run(prefetch(big, CUDA), max_epochs=1)
    assert timer.seconds > 6 * 256e6 / 100e9  # at least the copies at 100 GB/s (PCIe is slower)


def test_cuda_events_stay_flat_over_five_epochs():
    """The prefetcher's and the timer's events are pooled: none is made after the first epoch."""
    from ignite.engine import Engine

    loader = prefetch([(torch.rand(8, 4).pin_memory(), torch.zeros(8)) for _ in range(12)], CUDA)
    engine = Engine(lambda e, b: b[0].sum())
    timer = StepTimer(CUDA, examples=lambda e: 8).attach(engine)
    made = []
    engine.add_event_handler(Events.EPOCH_COMPLETED, lambda e: made.append(
        (loader.events_made, len(timer._pool), len(loader.free_events))))
    engine.run(loader, max_epochs=5)
    assert len({m[0] for m in made[1:]}) == 1 and made[1] == made[-1], made  # flat after the first epoch
    assert made[0][0] <= 12 + 2 and len(timer._pool) <= 12, made


# -- CUDA graphs (reduce-overhead) --------------------------------------------------------------------------

def _compiles_after_epoch_1(counts):
    from ignite.engine import Events
    from torch._dynamo.utils import counters

    def count(_):
        counts.append(sum(counters["frames"].values()))

    def handlers(trainer, evaluator):
        trainer.add_event_handler(Events.EPOCH_STARTED(once=2), count)
        trainer.add_event_handler(Events.COMPLETED, count)
    return handlers


def test_reduce_overhead_matches_eager_and_does_not_recompile_after_epoch_1():
    eager = run(small_cnn(), 3)
    counts: list[int] = []
    graphs = run(small_cnn(), 3, compile={"mode": "reduce-overhead"}, handlers=[_compiles_after_epoch_1(counts)])
    assert graphs.train_loss == pytest.approx(eager.train_loss, rel=2e-2)
    assert graphs.test_acc == pytest.approx(eager.test_acc, abs=0.03)
    assert counts[0] == counts[1], f"recompiled after epoch 1: {counts}"


@pytest.mark.parametrize("options", [{"compile": {"mode": "reduce-overhead"}, "accumulation_steps": 2},
                                     {"fast": True, "accumulation_steps": 3}], ids=["graphs-accumulate", "fast"])
def test_cuda_graphs_with_accumulation_and_a_handler_reading_grads(options):
    from ignite.engine import Events

    norms = []

    def read_grads(trainer, evaluator):  # after the test pass, as a user's logging handler would
        trainer.add_event_handler(Events.EPOCH_COMPLETED, lambda e: norms.append(
            sum(float(p.grad.norm()) for p in trainer.state.updater.params)))

    history = run(small_cnn(), 2, handlers=[read_grads], **options)
    assert all(n == n and n > 0 for n in norms) and history.train_loss[-1] < history.train_loss[0]


# -- fp16 loss scaling --------------------------------------------------------------------------------------

class _InfOnce:
    """A gradient hook that turns one update's gradient into inf (what an fp16 overflow gives)."""

    def __init__(self, at: int) -> None:
        self.at, self.calls = at, 0

    def __call__(self, grad: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return grad * float("inf") if self.calls == self.at else grad


@pytest.mark.parametrize("opt", ["sgd-fused", "adagrad"])
def test_fp16_skips_an_inf_update_clips_accumulates_and_resumes_the_scale(tmp_path, opt):
    from ignite.engine import Events

    net = small_cnn()
    net[0].weight.register_hook(_InfOnce(at=5))
    optimizer = torch.optim.SGD(net.parameters(), 0.1) if opt == "sgd-fused" else torch.optim.Adagrad(net.parameters())
    seen = {}

    def watch(trainer, evaluator):
        trainer.add_event_handler(Events.COMPLETED, lambda e: seen.update(
            scale=e.state.scaler.get_scale(), steps=e.state.optimizer_steps, skipped=e.state.updater.skipped))

    history = run(net, 2, optimizer, amp="fp16", accumulation_steps=2, clip_grad_norm=1.0, handlers=[watch],
                  checkpoint_dir=str(tmp_path / "a"))
    assert history.train_loss[-1] == history.train_loss[-1]
    groups = 2 * 16 // 2  # 16 batches an epoch, accumulated in pairs
    if opt == "adagrad":  # no fused kernel: the scaler already read the inf flag, so each skip is known (the
        # first few are the initial scale, 65536, overflowing; measured on an H100: 5 with the injected one)
        assert seen["skipped"] >= 1 and seen["steps"] == groups - seen["skipped"]
    else:  # fused: the skip happens on the device, unseen by the host (no sync per update)
        assert seen["steps"] == groups
    assert seen["scale"] < 65536.0  # the skipped update halved the scale
    resumed = {}

    def at_start(trainer, evaluator):
        trainer.add_event_handler(Events.STARTED, lambda e: resumed.update(scale=e.state.scaler.get_scale()))

    net2 = small_cnn()
    opt2 = torch.optim.SGD(net2.parameters(), 0.1) if opt == "sgd-fused" else torch.optim.Adagrad(net2.parameters())
    run(net2, 3, opt2, amp="fp16", accumulation_steps=2, clip_grad_norm=1.0, resume=str(tmp_path / "a"),
        handlers=[at_start], checkpoint_dir=str(tmp_path / "b"))
    assert resumed["scale"] == seen["scale"]


# -- resume into other optimizer settings -------------------------------------------------------------------

def test_resume_into_fast_continues_an_adam_run(tmp_path):
    net = small_cnn()
    run(net, 1, torch.optim.Adam(net.parameters(), 1e-3), checkpoint_dir=str(tmp_path / "a"))
    net2 = small_cnn()
    history = run(net2, 2, torch.optim.Adam(net2.parameters(), 1e-3), fast=True, resume=str(tmp_path / "a"),
                  checkpoint_dir=str(tmp_path / "b"))
    assert len(history.train_loss) == 2 and history.train_loss[-1] == history.train_loss[-1]


def test_a_resumed_fused_adam_takes_the_reference_update(tmp_path):
    torch.manual_seed(0)
    w = torch.randn(8, 4, 3, 3, device=CUDA)
    ref, fused = nn.Parameter(w.clone()), nn.Parameter(w.clone().to(memory_format=torch.channels_last))
    a = torch.optim.Adam([ref], 1e-2)
    for _ in range(3):
        ref.grad = torch.ones_like(ref) * 0.1
        a.step()
    b = torch.optim.Adam([fused], 1e-2, fused=True)
    fused.data.copy_(ref.data)
    b.load_state_dict(copy.deepcopy(a.state_dict()))  # a CPU step, contiguous moments, the saved fused=None
    b.param_groups[0]["fused"] = True  # this run's setting, as a resume puts it back
    from engine.gpu import fit_optimizer_state

    fit_optimizer_state(b)
    assert b.state[fused]["step"].is_cuda and b.state[fused]["exp_avg"].stride() == fused.stride()
    ref.grad, fused.grad = torch.ones_like(ref) * 0.2, torch.ones_like(fused) * 0.2
    a.step()
    b.step()
    torch.testing.assert_close(fused.detach().contiguous(), ref.detach(), rtol=1e-5, atol=1e-6)


# -- several processes, several GPUs -----------------------------------------------------------------------

def _python(*args: str, timeout: float = 180, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=timeout, cwd=REPO,
                          env={**os.environ, "PYTHONPATH": REPO + os.pathsep + os.environ.get("PYTHONPATH", ""),
                               "D2L_IGNITE_PLOT": "0", **(env or {})})


def test_ddp_world_size_1_on_nccl_with_channels_last_has_no_stride_warning(tmp_path):
    done = _python(os.path.join(REPO, "tests", "cuda_jobs.py"), "ddp-channels-last", str(tmp_path))
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Grad strides do not match" not in done.stderr and "ok" in done.stdout


def test_torchrun_two_processes_on_one_gpu(tmp_path):
    done = _python("-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m", "engine.app",
                   "train", "--epochs", "1", "--backend", "gloo", "--no-plot", "--out", str(tmp_path / "run"),
                   timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "x 2 processes" in done.stdout + done.stderr


def test_nproc_per_node_beyond_the_gpus_with_gloo_trains_on_the_cpu(tmp_path):
    n = GPUS + 1
    done = _python("-m", "engine.app", "train", "--epochs", "1", "--nproc-per-node", str(n), "--backend", "gloo",
                   "--no-plot", "--out", str(tmp_path / "run"), timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "trains on the CPU" in done.stderr and "invalid device ordinal" not in done.stderr
    refused = _python("-m", "engine.app", "train", "--epochs", "1", "--nproc-per-node", str(n), "--backend", "nccl",
                      "--no-plot", "--out", str(tmp_path / "nccl"), timeout=120)
    assert refused.returncode != 0 and "needs" in refused.stderr and "Traceback" not in refused.stderr


@two_gpus
@pytest.mark.multi_gpu
def test_data_parallel_replicas_compute_in_bf16():
    dtypes = []

    class Probe(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = small_cnn()

        def forward(self, x):
            out = self.net(x)
            dtypes.append(out.dtype)
            return out

    net = Probe()
    train, test = data()
    train_ch13(net, train, test, CE, torch.optim.SGD(net.parameters(), 0.1), 1, [0, 1], plot=False, verbose=False,
               progress=False, amp="bf16")
    assert dtypes and set(dtypes) == {torch.bfloat16}


# -- memory ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("options", [{}, {"fast": True}], ids=["fp32", "fast"])
def test_repeated_calls_keep_device_memory_flat(options):
    after = []
    for _ in range(4):
        run(small_cnn(), 1, **options)
        gc.collect()
        torch.cuda.synchronize()
        after.append(torch.cuda.memory_allocated())
    assert after[3] <= after[1] + 256 * 1024, f"device memory grew over calls: {after}"


def test_plotting_a_device_element_does_not_keep_its_tensor():
    from handlers.plot.store import PlotStore

    torch.cuda.synchronize()
    before = torch.cuda.memory_allocated()
    store = PlotStore()
    store.window("w", {"legend": ["a"]})
    for i in range(50):
        big = torch.rand(1 << 20, device=CUDA)  # 4 MB
        store.add("w", "a", i, big[3])
        del big
    gc.collect()
    torch.cuda.synchronize()
    assert torch.cuda.memory_allocated() - before < 8 << 20
    assert store.settle() == 50 and all(0 <= y <= 1 for _, y in store.points("w", "a"))


def test_fast_on_a_linear_net_warns_of_nothing_unexpected():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        t0 = time.perf_counter()
        run(nn.Sequential(nn.Flatten(), nn.Linear(64, 10)), 2, fast=True)
    text = [str(w.message) for w in caught]
    assert not any("overwritten" in m or "bucket view strides" in m for m in text), text
    assert time.perf_counter() - t0 < 300
