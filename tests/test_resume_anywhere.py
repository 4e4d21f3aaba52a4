"""Stop anywhere, resume, and end with the run never stopped (issue 35), over a matrix of options.

For each row of ``resume_harness.MATRIX`` every stop point is tried: before each iteration's step (SIGINT and
SIGTERM alternating), in each epoch's test pass and in each epoch's end. The resumed run must end with the
uninterrupted run's weights and optimizer state (exact), its History and plot points (to ``TOLERANCE``: a stop
adds one fold of the float32 running sums) and its checkpoint files (names and weights, the best file's too).
"""
from __future__ import annotations

import math
import os
import signal
import subprocess
import sys

import pytest
import torch

from resume_harness import MATRIX, Case, Stop, compare, run, stop_and_resume, stop_points

SWEEP = [pytest.param(c, id=c.name, marks=() if c.name in ("plain", "accumulation 3, per-update schedule") else
                      pytest.mark.slow) for c in MATRIX]


@pytest.mark.parametrize("case", SWEEP)
def test_every_stop_point_resumes_to_the_uninterrupted_run(case, tmp_path):
    whole = run(case, str(tmp_path / "whole"), str(tmp_path / "whole-record"))
    assert whole.stopped is None and len(whole.history.train_loss) >= 2
    failures = {}
    for stop in stop_points(case):
        resumed = stop_and_resume(case, stop, str(tmp_path / f"{stop.where}-{stop.at}"))
        diffs = compare(whole, resumed)
        if diffs:
            failures[str(stop)] = diffs[:3]
    assert not failures, failures


def test_a_stop_inside_an_accumulation_group_finishes_the_group(tmp_path):
    """Asked to stop before batch 5 (group 4-6 of 3): the run stops after batch 6, with no gradient pending."""
    case = MATRIX[1]
    stopped = run(case, str(tmp_path / "ck"), str(tmp_path / "rec"), Stop("step", 5))
    assert "iteration 6" in str(stopped.stopped)
    saved = torch.load(tmp_path / "ck" / "interrupted_checkpoint_6.pt", weights_only=True)
    assert saved["trainer"]["optimizer_steps"] == 2  # groups 1-3 and 4-6 applied; batch 7 (a short group) not
    assert "epoch_sums" in saved["timer"]  # the interrupted epoch's running sums travel with the stop


def test_a_stop_at_an_epochs_last_batch_lets_the_epoch_end_run(tmp_path):
    """The stop comes before batch 7, the epoch's last: the test pass, History row and files run first."""
    folder = tmp_path / "ck"
    stopped = run(MATRIX[0], str(folder), str(tmp_path / "rec"), Stop("step", 7))
    assert "iteration 7" in str(stopped.stopped)
    assert sorted(p.name for p in folder.glob("last_*")) == ["last_checkpoint_1.pt"]
    assert len(list(folder.glob("best_*"))) == 1
    assert len(torch.load(folder / "interrupted_checkpoint_7.pt", weights_only=True)["history"]["test_acc"]) == 1


def test_a_stop_at_the_runs_last_batch_lets_the_run_finish(tmp_path):
    result = run(MATRIX[0], str(tmp_path / "ck"), str(tmp_path / "rec"), Stop("step", 14, signal.SIGTERM))
    assert result.stopped is None and len(result.history.test_acc) == 2
    assert not list((tmp_path / "ck").glob("interrupted_*"))


def test_a_resume_with_another_batch_size_states_where_it_goes_on(tmp_path, capfd):
    """Half the batch size after a stop mid-epoch: not the same run, so the position is stated, the schedule built for
    the new length still ends at its end, and every epoch has its figures."""
    case = MATRIX[1]
    for at in (3, 9):
        resumed = stop_and_resume(case, Stop("step", at), str(tmp_path / f"s{at}"), batch=12)
        err = capfd.readouterr().err
        assert "it goes on after batch" in err and "positioned at the run's progress" in err, err
        assert len(resumed.history.train_loss) == 2 and all(map(math.isfinite, resumed.history.train_loss))
        assert resumed.optimizer.param_groups[0]["lr"] == pytest.approx(0.0, abs=1e-12)


def test_a_figure_turned_on_at_resume_is_nan_for_the_epochs_before(tmp_path):
    """test_loss and EMA off in the stopped run, on in the resumed one: one entry an epoch, nan where not computed."""
    off, on = Case("off", epochs=3), Case("off", epochs=3, test_loss=True, ema=0.5)
    stopped = run(off, str(tmp_path / "ck"), str(tmp_path / "rec"), Stop("end", 1))
    assert stopped.stopped is not None
    resumed = run(on, str(tmp_path / "ck"), str(tmp_path / "rec2"), resume=str(tmp_path / "ck"))
    h = resumed.history
    assert len(h.test_loss) == len(h.test_acc_ema) == 3
    assert math.isnan(h.test_loss[0]) and math.isnan(h.test_acc_ema[0]) and math.isfinite(h.test_loss[2])
    again = run(Case("off", epochs=4), str(tmp_path / "ck"), str(tmp_path / "rec3"), resume=str(tmp_path / "ck"))
    assert len(again.history.test_loss) == 4 and math.isnan(again.history.test_loss[3])  # turned off again


def test_another_kind_of_schedule_at_resume_is_refused_before_anything_loads(tmp_path):
    """A torch scheduler's state, resumed with an Ignite ParamScheduler: one line naming the part, and the caller's
    model, optimizer and scheduler as they were."""
    from resume_harness import build

    from engine import train_ch13
    from handlers import CheckpointError

    stopped = run(MATRIX[1], str(tmp_path / "ck"), str(tmp_path / "rec"), Stop("step", 4))
    assert stopped.stopped is not None
    net, train, test, optimizer, schedule = build(MATRIX[3])  # the Ignite schedule
    before = {k: v.clone() for k, v in net.state_dict().items()}
    with pytest.raises(CheckpointError, match="lr_scheduler: the checkpoint's lr_scheduler was saved by another kind"):
        train_ch13(net, train, test, torch.nn.CrossEntropyLoss(reduction="none"), optimizer, 2, ["cpu"], plot=False,
                   verbose=False, lr_scheduler=schedule, accumulation_steps=3, resume=str(tmp_path / "ck"))
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    assert optimizer.state == {} and schedule.event_index == 0


HARNESS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "resume_harness.py")


@pytest.mark.slow
def test_two_ddp_processes_stopped_anywhere_resume_to_the_uninterrupted_run(tmp_path):
    """2 gloo processes, a shuffled loader, accumulation 3 and a per-update schedule: stopped by SIGTERM on rank 0
    alone (mid-group, at an epoch's last batch, in an epoch's end), resumed on 2 processes, they end as the run
    never stopped."""
    name = MATRIX[1].name

    def job(out, *stop):
        done = subprocess.run([sys.executable, HARNESS, str(out), name, *stop], capture_output=True, text=True,
                              timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
        return torch.load(out / "result.pt", weights_only=True)

    whole = job(tmp_path / "whole")
    for stop in ("step:2", "step:7", "end:1"):
        resumed = job(tmp_path / stop.replace(":", "-"), stop)
        for k, v in whole["weights"].items():
            assert torch.equal(v, resumed["weights"][k]), (stop, k)
        for key in ("train_loss", "train_acc", "test_acc"):
            assert resumed["history"][key] == pytest.approx(whole["history"][key], rel=1e-6), (stop, key)
