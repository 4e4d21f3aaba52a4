"""How a DDP run starts and ends: torchrun and --nproc-per-node size schedules from what each process runs,
the examples join torchrun's group, a killed worker is restarted and resumes by itself, and one failing
process ends every process with its error said once."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
import torch
import torch.multiprocessing as mp
from ddp_util import ROOT, TORCHRUN, job, torchrun

import vision_data

pytestmark = pytest.mark.slow  # several processes, servers or a browser: `make test`, not `make check`

TRAIN = ["-m", "engine.app", "train", "--model", "mlp", "--no-plot", "--no-progress"]


def cli(*args, timeout=300) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, *TRAIN, *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def final_lr(folder, epochs):
    state = torch.load(folder / f"last_checkpoint_{epochs}.pt", weights_only=True)
    return state["lr_scheduler"]["_last_lr"][0], state["lr_scheduler"]["last_epoch"], state["trainer"]["iteration"]


@pytest.mark.parametrize("schedule", ["cosine", "onecycle"])
def test_a_schedule_lasts_the_whole_run_under_two_processes(tmp_path, schedule):
    cli("--epochs", 3, "--schedule", schedule, "--out", tmp_path / "one")
    cli("--epochs", 3, "--schedule", schedule, "--out", tmp_path / "two", "--nproc-per-node", 2)
    lr1, steps1, iterations = final_lr(tmp_path / "one", 3)
    lr2, steps2, _ = final_lr(tmp_path / "two", 3)
    assert steps1 == steps2 == iterations  # one schedule step per update, every update of the run
    assert lr2 == pytest.approx(lr1, abs=1e-9) and lr2 < 1e-4  # the schedule's end, not its middle


def test_an_example_joins_torchrun_s_process_group(tmp_path):
    vision_data.fashion_mnist(str(tmp_path / "data"))
    done = torchrun(2, os.path.join(ROOT, "examples", "fashion_mnist_lenet.py"), "--data-dir", tmp_path / "data",
                    "--out", tmp_path / "run", "--epochs", 1, "--num-workers", 0, "--no-plot", "--no-progress",
                    "--batch-size", 32, cwd=tmp_path)
    assert done.stdout.count("examples/sec on") == 1 and "x 2 processes (gloo)" in done.stdout
    assert (tmp_path / "run" / "last_checkpoint_1.pt").exists()


def _worker(agent: int, rank: int) -> int:
    """The pid of torchrun's worker of global ``rank`` (a child of the agent)."""
    for task in os.listdir(f"/proc/{agent}/task"):
        for child in open(f"/proc/{agent}/task/{task}/children").read().split():
            env = open(f"/proc/{child}/environ", "rb").read().split(b"\0")
            if f"RANK={rank}".encode() in env:
                return int(child)
    raise AssertionError(f"no worker of rank {rank} under torchrun {agent}")


def test_a_killed_worker_is_restarted_and_the_run_ends_as_the_uninterrupted_one(tmp_path):
    args = [*TRAIN, "--epochs", 6, "--schedule", "cosine", "--seed", 3]
    torchrun(2, *args, "--out", tmp_path / "whole", cwd=tmp_path)
    (tmp_path / "killed").mkdir()
    run = subprocess.Popen([TORCHRUN, "--standalone", "--nproc-per-node", "2", "--max-restarts", "1",
                            *map(str, args)], cwd=tmp_path / "killed", stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not list((tmp_path / "killed").glob("runs/*/last_checkpoint_2.pt")):  # the default run folder
        assert run.poll() is None and time.monotonic() < deadline, run.communicate()[1][-3000:]
        time.sleep(0.02)
    os.kill(_worker(run.pid, 1), signal.SIGKILL)  # mid-run: epochs 3-6 are still to come
    out, err = run.communicate(timeout=300)
    assert run.returncode == 0, err[-3000:]
    assert "torchrun restart 1: resuming from" in err and "last_checkpoint_" in err
    folder = next(p for p in (tmp_path / "killed" / "runs").iterdir() if p.is_dir())
    whole = torch.load(tmp_path / "whole" / "last_checkpoint_6.pt", weights_only=True)
    resumed = torch.load(folder / "last_checkpoint_6.pt", weights_only=True)
    for k in whole["model"]:
        torch.testing.assert_close(resumed["model"][k], whole["model"][k], rtol=1e-5, atol=1e-6)
    assert resumed["history"]["test_acc"] == pytest.approx(whole["history"]["test_acc"])
    assert out.count("examples/sec on") == 1


def test_one_failing_process_ends_every_process_with_its_error_said_once(tmp_path):
    started = time.monotonic()
    done = job(tmp_path, 2, 3, "--fail-rank1-at", 5, ok=False, timeout=120)
    assert done.returncode != 0 and time.monotonic() - started < 90
    assert done.stderr.count("a handler failed on rank 1 at iteration 5") == 1


def test_one_failing_process_under_torchrun_ends_the_job(tmp_path):
    started = time.monotonic()
    done = torchrun(2, os.path.join(ROOT, "tests", "ddp_job.py"), tmp_path, 2, 3, "--fail-rank1-at", 5,
                    ok=False, timeout=120)
    assert done.returncode != 0 and time.monotonic() - started < 90
    assert done.stderr.count("a handler failed on rank 1 at iteration 5") == 1


def _bad_input_on_rank_1(rank: int) -> None:
    if rank == 1:
        raise ValueError("--data-dir /nowhere holds no data set")
    time.sleep(60)  # the other process is stopped for it


def test_the_cli_names_a_spawned_process_s_bad_input_in_one_line(capsys):
    from engine.app.cli import run_command

    started = time.monotonic()
    code = run_command("d2l-ignite train", lambda: mp.start_processes(_bad_input_on_rank_1, nprocs=2,
                                                                      start_method="spawn"))
    err = capsys.readouterr().err.strip()
    assert code == 2 and time.monotonic() - started < 45
    said = "d2l-ignite train: error: process 1: ValueError: --data-dir /nowhere holds no data set"
    assert err.splitlines()[-1] == said
    assert err.count("holds no data set") == 1  # above it, at most torch's line on stopping the other process


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_a_stop_signal_to_nproc_per_node_reaches_every_worker(tmp_path, signum):
    """Issue 38: ``kill`` (SIGTERM) to ``d2l-ignite train --nproc-per-node 2``, as ``docker stop`` and schedulers
    stop a job, never reached the workers, which trained to the end; a closed terminal (SIGHUP) likewise."""
    run = subprocess.Popen([sys.executable, "-u", *TRAIN, "--epochs", "200", "--out", str(tmp_path / "run"),
                            "--nproc-per-node", "2"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           cwd=ROOT)
    try:
        deadline = time.monotonic() + 120
        while not list((tmp_path / "run").glob("last_checkpoint_*.pt")) and time.monotonic() < deadline:
            time.sleep(0.2)  # an epoch done: every worker trains
        children = [int(c) for c in open(f"/proc/{run.pid}/task/{run.pid}/children").read().split()]
        run.send_signal(signum)
        out, err = run.communicate(timeout=120)
    finally:
        run.kill()
    assert run.returncode == 128 + signum, err[-3000:]
    assert f"stopped by {signal.Signals(signum).name}" in err
    assert list((tmp_path / "run").glob("interrupted_checkpoint_*.pt"))
    assert not list((tmp_path / "run").glob("last_checkpoint_200.pt"))  # it did not train to the end
    deadline = time.monotonic() + 30  # a process in the middle of its exit (the resource tracker) may lag a moment
    while _running(children) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _running(children)  # no worker left behind


def _running(pids: list[int]) -> list[int]:
    """The pids still running (not gone, not a zombie)."""
    alive = []
    for pid in pids:
        try:
            state = open(f"/proc/{pid}/stat").read().rsplit(") ", 1)[1][0]
        except (OSError, IndexError):
            continue
        if state not in "ZX":
            alive.append(pid)
    return alive
