"""The parts of the GPU fixes that a CPU can check (the rest is tests/test_cuda.py, run by `make gpu-check`)."""
from __future__ import annotations

import collections
import gc
import os
import subprocess
import sys
import weakref

import pytest
import torch
from conftest import loaders, small_cnn
from ignite.engine import Engine
from torch import nn

from engine import create_trainer, train_ch13
from engine.gpu import fit_optimizer_state
from engine.step_options import channels_last_weights

CE = nn.CrossEntropyLoss(reduction="none")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def two_convs(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 3, padding=1), nn.Flatten(),
                         nn.Linear(4 * 64, 10))


def test_a_skipped_loss_scaled_update_is_not_counted(digits):
    X, y = digits
    net = small_cnn()
    calls = []

    def inf_once(grad):
        calls.append(1)
        return grad * float("inf") if len(calls) == 3 else grad

    net[0].weight.register_hook(inf_once)
    trainer = create_trainer(net, CE, torch.optim.SGD(net.parameters(), 0.1), ["cpu"], scaler=True)
    batches = [(X[i:i + 32], y[i:i + 32]) for i in range(0, 320, 32)]
    trainer.run(batches, max_epochs=1)
    assert trainer.state.updater.skipped == 1 and trainer.state.optimizer_steps == len(batches) - 1
    assert trainer.state.scaler.get_scale() == 65536.0 / 2


def test_resumed_optimizer_state_fits_this_runs_weights_and_takes_the_reference_update():
    torch.manual_seed(0)
    w = torch.randn(8, 4, 3, 3)
    ref = nn.Parameter(w.clone())
    a = torch.optim.Adam([ref], 1e-2)
    for _ in range(3):
        ref.grad = torch.full_like(ref, 0.1)
        a.step()
    for kind in ({"foreach": True}, {"fused": True}):
        mine = nn.Parameter(ref.detach().clone().contiguous(memory_format=torch.channels_last))
        b = torch.optim.Adam([mine], 1e-2, **kind)
        saved = {k: v for k, v in a.state_dict().items()}
        b.load_state_dict({"state": {0: {k: v.clone() for k, v in saved["state"][0].items()}},
                           "param_groups": saved["param_groups"]})
        b.param_groups[0].update(kind)  # this run's setting, as a resume puts it back
        fit_optimizer_state(b)
        assert b.state[mine]["exp_avg"].stride() == mine.stride()
        expected = ref.detach().clone()
        twin = torch.optim.Adam([nn.Parameter(expected)], 1e-2)
        twin.load_state_dict({"state": {0: {k: v.clone() for k, v in saved["state"][0].items()}},
                              "param_groups": saved["param_groups"]})
        twin.param_groups[0]["params"][0].grad = torch.full_like(expected, 0.2)
        twin.step()
        mine.grad = torch.full_like(mine, 0.2)
        b.step()
        torch.testing.assert_close(mine.detach().contiguous(), twin.param_groups[0]["params"][0].detach())


def test_state_made_before_channels_last_follows_the_weights(digits):
    X, y = digits
    tr, te = loaders(X, y, 128, 64, 32)
    net = two_convs()
    opt = torch.optim.Adagrad(net.parameters(), 0.05)  # makes its state when built: contiguous
    train_ch13(net, tr, te, CE, opt, 1, ["cpu"], plot=False, verbose=False, channels_last=True)
    w = net[2].weight
    assert w.is_contiguous(memory_format=torch.channels_last) and opt.state[w]["sum"].stride() == w.stride()


def test_a_one_channel_weight_keeps_its_ordinary_strides():
    net = two_convs()
    channels_last_weights(net)
    assert net[0].weight.stride() == (9, 9, 3, 1)  # (4, 1, 3, 3): in both layouts at once
    assert net[2].weight.stride() == (36, 1, 12, 4)  # a real NHWC weight


COUNT_ALLREDUCE = """
import os, sys, torch, torch.distributed as dist
from torch import nn
from engine import create_trainer
from handlers.local import free_port
os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(free_port("127.0.0.1")))
dist.init_process_group("gloo", rank=0, world_size=1)
counts = []
for sized in (True, False):
    torch.manual_seed(0)
    ddp = nn.parallel.DistributedDataParallel(nn.Linear(4, 3))
    calls = []
    def hook(state, bucket):
        calls.append(1)
        fut = torch.futures.Future()
        fut.set_result(bucket.buffer())
        return fut
    ddp.register_comm_hook(None, hook)
    trainer = create_trainer(ddp, nn.CrossEntropyLoss(reduction="none"), torch.optim.SGD(ddp.parameters(), 0.1),
                             ["cpu"], accumulation_steps=2)
    batches = [(torch.randn(8, 4), torch.randint(0, 3, (8,))) for _ in range(4)]
    trainer.run(batches if sized else iter(batches), max_epochs=1)
    counts.append(len(calls))
dist.destroy_process_group()
print(f"sized={counts[0]} unsized={counts[1]}")
"""


def test_ddp_accumulation_all_reduces_once_per_update_when_the_length_is_known():
    done = subprocess.run([sys.executable, "-c", COUNT_ALLREDUCE], capture_output=True, text=True, timeout=300,
                          cwd=ROOT, env={**os.environ, "PYTHONPATH": ROOT})
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split()[-2:] == ["sized=2", "unsized=4"], done.stdout


def test_repeated_calls_let_each_net_go(digits):
    X, y = digits
    tr, te = loaders(X, y, 64, 32, 32)
    gone = []
    for compile_ in (False, True, True):
        net = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
        train_ch13(net, tr, te, CE, torch.optim.SGD(net.parameters(), 0.1), 1, ["cpu"], plot=False,
                   verbose=False, compile=compile_)
        gone.append(weakref.ref(net))
        del net
    gc.collect()
    assert [ref() for ref in gone] == [None, None, None]  # a compiled wrapper lives on its net, not in a cache


def test_the_prefetcher_moves_tensors_anywhere_and_leaves_other_leaves():
    from engine.prefetch import _moved, prefetch

    Pair = collections.namedtuple("Pair", "x ids")
    copies: list = []
    batch = ({"a": torch.ones(2)}, [torch.zeros(1), "s", 3], Pair(torch.ones(1), ["id"]))
    out = _moved(batch, torch.device("cpu"), copies)
    assert len(copies) == 3 and out[1][1:] == ["s", 3] and isinstance(out[2], Pair) and out[2].ids == ["id"]
    assert len(prefetch([1, 2], "cpu")) == 2 and not hasattr(prefetch(iter([1]), "cpu"), "__len__")
    assert list(prefetch(iter([1, 2]), "cpu")) == [1, 2]
    from engine.loader_view import view
    from engine.resume import ContinueEpoch

    resumed = view(ContinueEpoch, [1, 2, 3, 4], 2)
    assert len(resumed) == 4 and list(resumed) == [3, 4] and list(resumed) == [1, 2, 3, 4]  # skips once
    assert not hasattr(view(ContinueEpoch, iter([1, 2, 3]), 1), "__len__")


def test_more_processes_than_gpus(monkeypatch):
    from engine.app.launch import _gpus_for

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(ValueError, match="--nproc-per-node 2 with NCCL needs 2 GPUs, this machine has 1"):
        with _gpus_for(2, "nccl"):
            pass
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    with _gpus_for(2, "gloo"):
        assert os.environ["CUDA_VISIBLE_DEVICES"] == ""  # the spawned processes see no GPU: they use the CPU
    assert "CUDA_VISIBLE_DEVICES" not in os.environ
    with _gpus_for(1, "nccl"):
        assert "CUDA_VISIBLE_DEVICES" not in os.environ


@pytest.mark.parametrize("message, code", [("CUDA error: an illegal memory access was encountered", 1),
                                           ("NCCL error in: ProcessGroupNCCL.cpp", 1),
                                           ("the checkpoint holds another model", 2)])
def test_the_cli_keeps_the_traceback_of_a_gpu_failure(capsys, message, code):
    from engine.app.cli import run_command

    def command():
        raise RuntimeError(message)

    assert run_command("d2l-ignite", command) == code
    err = capsys.readouterr().err
    assert ("Traceback" in err) == (code == 1) and message in err


def test_a_value_the_device_can_no_longer_give_is_a_gap(monkeypatch):
    from handlers.plot.store import PlotStore

    store = PlotStore()
    store.window("w", {"legend": ["a"]})
    store.add("w", "a", 1, torch.tensor(0.5))

    def broken(self):
        raise RuntimeError("CUDA error: an illegal memory access was encountered")

    monkeypatch.setattr(torch.Tensor, "item", broken)
    monkeypatch.setattr(torch.Tensor, "tolist", broken)  # every read fails, one value or several at once
    assert store.settle() == 1
    monkeypatch.undo()
    x, y = store.points("w", "a")[0]
    assert x == 1.0 and y != y


def test_a_compiled_steps_first_epoch_is_left_out_of_examples_per_sec():
    from handlers import StepTimer

    engine = Engine(lambda e, b: None)
    engine.state.compiled = True
    timer = StepTimer("cpu", examples=lambda e: 10).attach(engine)
    engine.run(range(5), max_epochs=3)
    assert len(timer.epoch_seconds) == 3 and timer.examples == 100
    assert timer.seconds == pytest.approx(sum(timer.epoch_seconds[1:]))


def test_a_schedule_resumed_with_another_batch_size_is_positioned_by_progress(digits, tmp_path, capsys):
    X, y = digits

    def go(batch, epochs, **kw):
        tr, te = loaders(X, y, 256, 64, batch)
        net = small_cnn()
        opt = torch.optim.SGD(net.parameters(), 0.1)
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=4 * len(tr))  # sized for 4 epochs
        train_ch13(net, tr, te, CE, opt, epochs, ["cpu"], plot=False, verbose=False, lr_scheduler=schedule, **kw)
        return opt, schedule

    go(32, 2, checkpoint_dir=str(tmp_path / "a"))  # 2 of 4 epochs at 8 updates an epoch: update 16 of 32
    opt, schedule = go(64, 4, resume=str(tmp_path / "a"))  # 4 updates an epoch now: 2 epochs = update 8 of 16
    assert schedule.last_epoch == 16 and opt.param_groups[0]["lr"] < 1e-6  # the end of the run, the end of the cosine
    assert "positioned at the run's progress (2 epochs): update 8 of this run's 4 an epoch" in capsys.readouterr().err


def test_a_run_folder_resumes_from_the_most_progress_its_files_record(tmp_path):
    from handlers.checkpoint import find_checkpoint

    def save(name, **trainer):
        torch.save({"trainer": trainer, "model": {}}, tmp_path / name)

    save("interrupted_checkpoint_25.pt", iteration=25, epoch_length=10)  # 2.5 epochs
    save("last_checkpoint_2.pt", iteration=20, epoch_length=10)  # written later (a copy, a restore): newer
    (tmp_path / "last_checkpoint_9.pt").write_bytes(b"truncated")  # unreadable: never chosen
    os.utime(tmp_path / "interrupted_checkpoint_25.pt", (1, 1))
    assert find_checkpoint(str(tmp_path)) == str(tmp_path / "interrupted_checkpoint_25.pt")
    save("last_checkpoint_3.pt", epoch=3, epoch_length=10)
    os.utime(tmp_path / "last_checkpoint_3.pt", (1, 1))  # the oldest time, the most progress
    assert find_checkpoint(str(tmp_path)) == str(tmp_path / "last_checkpoint_3.pt")


def test_best_is_the_best_of_the_whole_run_after_a_resume(digits, tmp_path):
    X, y = digits
    tr, te = loaders(X, y, 256, 128, 32)

    def go(epochs, lr, folder, **kw):
        net = small_cnn()
        return train_ch13(net, tr, te, CE, torch.optim.SGD(net.parameters(), lr), epochs, ["cpu"], plot=False,
                          verbose=False, checkpoint_dir=str(tmp_path / folder), **kw)

    first = go(3, 0.1, "a")
    best = max(first.test_acc)
    for folder in ("b", "a"):  # into a new folder, and into the same one
        resumed = go(5, 0.0, folder, resume=str(tmp_path / "a" / "last_checkpoint_3.pt"))  # lr 0: no better epoch
        assert max(resumed.test_acc) == best
        files = [n for n in os.listdir(tmp_path / folder) if n.startswith("best_")]
        assert len(files) == 1 and files[0].endswith(f"test_acc={best:.4f}.pt"), files
