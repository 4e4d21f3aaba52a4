"""DDP on CPU with gloo: global figures equal a single process's, rank 0 alone speaks, checkpoints move
between world sizes, and the README's torchrun command runs."""
from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest
import torch
from ddp_util import ROOT, job

pytestmark = pytest.mark.slow  # several processes, servers or a browser: `make test`, not `make check`


@pytest.fixture(scope="module")
def single(tmp_path_factory):
    out = tmp_path_factory.mktemp("one")
    job(out, 1, 3)
    return out


def test_two_gloo_processes_print_the_single_process_figures(single, tmp_path):
    job(tmp_path, 2, 3)
    one = (single / "rank0.txt").read_text().splitlines()
    two = (tmp_path / "rank0.txt").read_text().splitlines()
    assert two[0] == one[0]  # loss, train acc, test acc to the printed digits
    assert re.fullmatch(r"[\d.]+ examples/sec on \[device\(type='cpu'\)\] x 2 processes \(gloo\)", two[1])
    assert (tmp_path / "rank1.txt").read_text() == ""  # only rank 0 prints
    assert (tmp_path / "plots0" / "curves.npz").exists() and not (tmp_path / "plots1").exists()
    a, b = torch.load(single / "final.pt"), torch.load(tmp_path / "final.pt")
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=1e-5)  # DDP's gradient average of sums


def test_compiled_ddp_with_a_sum_loss_updates_like_one_process(single, tmp_path):
    # compile wraps the DDP model: the gradient scale comes from the world size passed in, not the wrapper's type
    job(tmp_path, 2, 3, "--compile")
    a, b = torch.load(single / "final.pt"), torch.load(tmp_path / "final.pt")
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=1e-5)


def test_checkpoint_from_two_processes_resumes_in_one(tmp_path):
    job(tmp_path, 2, 2)
    ck = tmp_path / "ck"
    assert sorted(n for n in os.listdir(ck) if n.startswith("last")) == ["last_checkpoint_2.pt"]
    state = torch.load(ck / "last_checkpoint_2.pt", weights_only=True)
    assert state["trainer"]["epoch_length"] == 8  # 8 global batches of 64, each 2 x 32
    resumed = tmp_path / "resumed"
    resumed.mkdir()
    job(resumed, 1, 3, "--resume", ck)
    lines = (resumed / "rank0.txt").read_text().splitlines()
    assert re.match(r"loss [\d.]+, train acc [\d.]+, test acc [\d.]+", lines[0])
    assert lines[1].endswith("[device(type='cpu')]")
    after = torch.load(resumed / "ck" / "last_checkpoint_3.pt", weights_only=True)
    assert after["trainer"]["iteration"] == 3 * 8 and len(after["history"]["test_acc"]) == 3


def test_nan_on_one_process_stops_every_process_at_the_same_iteration(tmp_path):
    job(tmp_path, 2, 3, "--poison-rank0-at", 11)  # returns: no process is left waiting in an all-reduce
    for rank in (0, 1):
        assert "nan or inf at iteration 11 (epoch 2)" in (tmp_path / f"rank{rank}.txt").read_text()
    assert sorted(n for n in os.listdir(tmp_path / "ck") if n.startswith("last")) == ["last_checkpoint_1.pt"]


def test_sampler_epoch_changes_the_shuffle():
    from ignite.engine import Engine
    from torch.utils.data import DataLoader, DistributedSampler

    from engine.distributed import attach_sampler_epoch

    def epochs(set_epoch: bool) -> list:
        loader = DataLoader(list(range(16)), 4, sampler=DistributedSampler(list(range(16)), num_replicas=2, rank=0))
        orders = []
        engine = Engine(lambda e, b: orders.append(b.tolist()))
        if set_epoch:
            attach_sampler_epoch(engine, loader)
        engine.run(loader, max_epochs=2)
        return [sum(orders[:2], []), sum(orders[2:], [])]

    fixed, moving = epochs(False), epochs(True)
    assert fixed[0] == fixed[1]  # without set_epoch every epoch repeats the first one's order
    assert moving[0] == fixed[0] and moving[1] != moving[0] and len(set(moving[1])) == 8


def test_readme_torchrun_command(tmp_path):
    readme = open(os.path.join(ROOT, "README.md")).read()
    command = re.search(r"^(torchrun --nproc-per-node 2 -m engine.app train.*)$", readme, re.M).group(1)
    args = command.split()
    args[0] = os.path.join(os.path.dirname(sys.executable), "torchrun")
    done = subprocess.run([*args, "--epochs", "2", "--no-plot", "--out", str(tmp_path / "run")], capture_output=True,
                          text=True, timeout=300, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    assert len(re.findall(r"loss [\d.]+, train acc", done.stdout)) == 1
    assert "x 2 processes (gloo)" in done.stdout
    assert (tmp_path / "run" / "last_checkpoint_2.pt").exists()


def test_cli_spawns_processes_itself(tmp_path):
    done = subprocess.run([sys.executable, "-m", "engine.app", "train", "--nproc-per-node", "2", "--epochs", "1",
                           "--model", "mlp", "--no-plot", "--out", str(tmp_path / "run")], capture_output=True,
                          text=True, timeout=300, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("examples/sec on") == 1 and "x 2 processes (gloo)" in done.stdout
