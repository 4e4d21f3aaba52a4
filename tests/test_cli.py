"""The main job as a user runs it: the default command, its run folder, and bad arguments."""
from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest


def cli(*args: str, timeout: int = 300, env: dict | None = None, cwd: str | None = None) -> subprocess.CompletedProcess:
    """The command, with plots on and ``$VISDOM_URL`` at a free port (nothing answers: a server starts there)."""
    from handlers.local import free_port

    return subprocess.run([sys.executable, "-m", "engine.app", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=timeout, env=dict(os.environ, **{"VISDOM_URL": f"http://127.0.0.1:{free_port()}",
                                                                   "D2L_IGNITE_PLOT": "1", **(env or {})}))


@pytest.mark.slow
def test_default_train_reaches_97_percent_with_live_plots(tmp_path):
    # nothing answers at VISDOM_URL, so the job starts a local server for the run
    done = cli("train", "--out", str(tmp_path / "run"), "--no-keep-serving")
    assert done.returncode == 0, done.stderr
    m = re.search(r"loss ([\d.]+), train acc ([\d.]+), test acc ([\d.]+)", done.stdout)
    assert m and float(m.group(3)) >= 0.97
    assert re.search(r"[\d.]+ examples/sec on \[device\(type='cpu'\)\]", done.stdout)
    assert "Live plots: http://127.0.0.1:" in done.stdout
    assert (tmp_path / "run" / "curves.png").stat().st_size > 5000
    assert {"last_checkpoint_10.pt"} <= set(os.listdir(tmp_path / "run"))
    saved = os.listdir(tmp_path / "run" / "visdom")
    assert saved == ["run.json"]  # the env is named after the --out folder


def test_explicit_unreachable_url_keeps_the_record_to_replay(tmp_path):  # another machine's (a local one would start)
    done = cli("train", "--epochs", "1", "--out", str(tmp_path / "r"), "--visdom", "http://192.0.2.1:8097")
    assert done.returncode == 0, done.stderr
    assert "nothing answers" in done.stderr and f"replay {tmp_path / 'r'}" in done.stderr
    assert (tmp_path / "r" / "curves.npz").stat().st_size > 0


@pytest.mark.parametrize("args, message", [
    (["train", "--epochs", "0"], "--epochs: expected a positive whole number"),
    (["train", "--lr", "-1"], "--lr: expected a positive number"),
    (["train", "--batch-size", "x"], "--batch-size: expected a positive whole number"),
    (["train", "--model", "vgg"], "invalid choice"),
    (["train", "--devices", "cuda:5", "--no-plot"], "does not exist"),
    (["train", "--devices", "tpu", "--no-plot"], "not a device name"),
    (["train", "--visdom", "http://:x", "--no-plot"], "malformed Visdom URL"),
    (["replay", "missing"], "no run folder 'missing'"),
    (["train", "--accumulate", "0"], "--accumulate: expected a positive whole number"),
    (["train", "--clip-grad", "nan"], "--clip-grad: expected a positive number"),
    (["train", "--amp", "fp8"], "invalid choice"),
    (["train", "--resume", "nowhere", "--no-plot"], "checkpoint nowhere does not exist"),
])
def test_bad_arguments_exit_nonzero_without_traceback(tmp_path, args, message):
    done = cli(*args, "--out", str(tmp_path / "o")) if args[0] == "train" else cli(*args)
    assert done.returncode == 2
    assert message in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "o").exists()  # a failed start leaves no run folder behind


def test_existing_run_folder_is_never_overwritten(tmp_path):
    folder = tmp_path / "old"
    folder.mkdir()
    (folder / "curves.png").write_bytes(b"earlier run")
    done = cli("train", "--out", str(folder), "--no-plot")
    assert done.returncode == 2 and "already holds files" in done.stderr
    assert (folder / "curves.png").read_bytes() == b"earlier run"


def test_features_and_resume_from_a_run_folder(tmp_path):
    first = cli("train", "--epochs", "2", "--no-plot", "--out", str(tmp_path / "a"), "--amp", "bf16",
                "--accumulate", "2", "--clip-grad", "5", "--schedule", "cosine", "--model", "mlp")
    assert first.returncode == 0, first.stderr
    assert {"last_checkpoint_2.pt"} <= set(os.listdir(tmp_path / "a"))
    more = cli("train", "--epochs", "4", "--no-plot", "--out", str(tmp_path / "b"), "--resume", str(tmp_path / "a"),
               "--model", "mlp", "--early-stopping", "5", "--fast")
    assert more.returncode == 0, more.stderr
    assert sorted(n for n in os.listdir(tmp_path / "b") if n.startswith("last")) == ["last_checkpoint_4.pt"]
    assert sorted(n for n in os.listdir(tmp_path / "a") if n.startswith("last")) == ["last_checkpoint_2.pt"]
    again = cli("train", "--epochs", "4", "--no-plot", "--out", str(tmp_path / "c"), "--resume", str(tmp_path / "b"),
                "--model", "mlp")
    assert again.returncode == 2 and "already completed 4 epochs" in again.stderr


def test_fashion_mnist_data_set_with_the_books_lenet(tmp_path):
    import vision_data

    vision_data.fashion_mnist(str(tmp_path / "data"))
    done = cli("train", "--dataset", "fashion-mnist", "--data-dir", str(tmp_path / "data"), "--model", "lenet",
               "--lr", "0.9", "--epochs", "1", "--no-plot", "--out", str(tmp_path / "run"))
    assert done.returncode == 0, done.stderr
    assert re.search(r"loss [\d.]+, train acc [\d.]+, test acc [\d.]+", done.stdout)
    wrong = cli("train", "--model", "lenet", "--no-plot", "--out", str(tmp_path / "x"))
    assert wrong.returncode == 2 and "lenet needs 28x28 images" in wrong.stderr
    missing = cli("train", "--dataset", "fashion-mnist", "--data-dir", str(tmp_path / "none"), "--no-plot",
                  "--out", str(tmp_path / "y"), env={"https_proxy": "http://127.0.0.1:9", "http_proxy": "http://127.0.0.1:9"})
    assert missing.returncode == 2 and "could not be downloaded" in missing.stderr


def test_compare_errors_are_one_line_naming_the_fix(tmp_path):
    from engine.app.runs import compare_name
    from handlers.plot.base import Plotter
    from handlers.local import free_port

    done = cli("compare", "run-a", "run-b", cwd=str(tmp_path), env={"VISDOM_URL": ""})
    assert done.returncode == 2 and "no run folder 'run-a'" in done.stderr, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    for run in ("run-a", "run-b"):
        with Plotter(run, out_dir=str(tmp_path / "runs" / run)) as plotter:
            plotter.add("loss", "train loss", 1, 0.5)
    done = cli("compare", "run-a", "runs/run-b", "--visdom", f"http://127.0.0.1:{free_port()}", cwd=str(tmp_path))
    assert done.returncode == 2 and "start one on the saved runs with `d2l-ignite visdom`" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    name = compare_name([f"d2l-ignite-20261127-0000{i:02d}-abc{i:03d}" for i in range(40)])
    assert name.startswith("compare-40-runs-") and len(name) < 40


def test_a_refused_resume_is_one_line_in_the_commands_words_and_leaves_no_folder(tmp_path):
    """Issue 38: a resume of a finished run printed ``Run folder:``, left a folder with an empty PNG and named
    the Python argument ``num_epochs``."""
    first = cli("train", "--epochs", "1", "--no-plot", "--out", str(tmp_path / "a"))
    assert first.returncode == 0, first.stderr
    again = cli("train", "--epochs", "1", "--no-plot", "--out", str(tmp_path / "b"), "--resume", str(tmp_path / "a"))
    assert again.returncode == 2 and "pass --epochs > 1 to train further" in again.stderr
    assert len(again.stderr.strip().splitlines()) == 1 and "Run folder" not in again.stdout
    assert not (tmp_path / "b").exists()


def test_a_torchrun_restart_never_adopts_a_folder_its_first_attempt_refused(tmp_path, monkeypatch):
    """Issue 38: attempt 0 refused ``--out`` ("already holds files"); the restart adopted it and wrote into it."""
    import pytest as _pytest

    from engine.app.run_dir import _run_folder

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TORCHELASTIC_RUN_ID", "job-1")
    monkeypatch.setenv("LOCAL_RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "1")
    (tmp_path / "theirs").mkdir()
    (tmp_path / "theirs" / "notes.txt").write_text("someone else's")
    with _pytest.raises(FileExistsError, match="already holds files"):
        _run_folder("theirs", "e")  # attempt 0
    monkeypatch.setenv("TORCHELASTIC_RESTART_COUNT", "1")
    with _pytest.raises(FileExistsError, match="was not made by this job's first attempt"):
        _run_folder("theirs", "e")
    assert os.listdir(tmp_path / "theirs") == ["notes.txt"]
    monkeypatch.setenv("TORCHELASTIC_RESTART_COUNT", "0")
    folder, _ = _run_folder("mine", "e")  # attempt 0 makes its folder; a restart finds and adopts it
    monkeypatch.setenv("TORCHELASTIC_RESTART_COUNT", "1")
    assert _run_folder("mine", "e") == (folder, None)
