"""The inventory of inputs (``docs/inputs.md``) is complete, and whole classes of input are generated, not only
named (issue 38): each input either works as documented or gets its one line, never a library's traceback."""
from __future__ import annotations

import dataclasses
import inspect
import os
import pathlib
import re
import string

import pytest
import torch
from hypothesis import HealthCheck, given, settings, strategies as st

ROOT = pathlib.Path(__file__).resolve().parent.parent
INVENTORY = (ROOT / "docs" / "inputs.md").read_text()
SETTINGS = settings(max_examples=60, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


def _documented(name: str) -> bool:
    """``name`` inside a code span of the inventory (a whole word: ``--port``, not ``--portal``)."""
    return re.search(rf"`[^`\n]*(?<![\w-]){re.escape(name)}(?![\w-])[^`\n]*`", INVENTORY) is not None


def test_every_cli_flag_and_argument_has_its_row():
    from engine.app.cli import build_parser

    missing = []
    for sub in build_parser()._subparsers._group_actions:
        for command, parser in sub.choices.items():
            for action in parser._actions:
                names = action.option_strings or [action.dest]
                missing += [f"{command} {n}" for n in names if n not in ("-h", "--help") and not _documented(
                    n if action.option_strings else action.metavar or n.upper())]
    assert not missing, f"add these to docs/inputs.md: {missing}"


def test_every_keyword_of_the_public_functions_has_its_row():
    from engine import RecipeSettings, StepOptions, create_evaluator, create_trainer, train_ch13

    names = {k for f in (train_ch13, create_trainer, create_evaluator) for k in inspect.signature(f).parameters}
    names |= {f.name for cls in (StepOptions, RecipeSettings) for f in dataclasses.fields(cls)}
    missing = sorted(n for n in names if not _documented(n))
    assert not missing, f"add these to docs/inputs.md: {missing}"


def test_every_environment_variable_the_code_reads_has_its_row():
    code = "\n".join(p.read_text() for d in ("engine", "handlers") for p in (ROOT / d).rglob("*.py"))
    read = set(re.findall(r"environ(?:\.get)?[(\[]\"([A-Z][A-Z0-9_]+)\"", code))
    read |= set(re.findall(r"^[A-Z_]+ = \"([A-Z][A-Z0-9_]+)\"$", code, re.M))  # D2L_IGNITE_* settings by name
    missing = sorted(v for v in read if not _documented(v))
    assert read and not missing, f"add these to docs/inputs.md: {missing}"


# -- generated inputs ----------------------------------------------------------------------------------------
NAMES = st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\0"), max_size=120)


@SETTINGS
@given(name=NAMES)
def test_any_run_name_is_taken_or_refused_in_one_line(name):
    from engine.app.run_dir import run_name

    try:
        chosen = run_name(name or None, None)
    except ValueError as e:
        assert "cannot name a run" in str(e) and "\n" not in str(e)
        return
    assert re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", chosen) and "/" not in chosen


@SETTINGS
@given(url=st.one_of(NAMES, st.builds(lambda h, p: f"http://{h}:{p}", NAMES, st.integers(-5, 70000))))
def test_any_visdom_url_is_parsed_or_refused_in_one_line(url):
    from handlers.plot import VisdomAddress

    try:
        address = VisdomAddress(url)
    except ValueError as e:
        assert "Visdom URL" in str(e)
        return
    assert address.url.startswith(("http://", "https://")) and 0 < address.port < 65536


@SETTINGS
@given(relative=st.text(alphabet=string.ascii_letters + string.digits + "._- /", min_size=1, max_size=40),
       existing=st.sampled_from(["none", "file", "empty", "full"]))
def test_any_out_path_gets_a_new_folder_or_one_line(tmp_path, relative, existing):
    from engine.app.run_dir import new_run_dir

    path = tmp_path / relative.strip("/") if relative.strip("/") else tmp_path / "x"
    path = pathlib.Path(os.path.normpath(path))
    if not str(path).startswith(str(tmp_path)) or path == tmp_path:
        return
    if existing == "file":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("x") if not path.exists() else None
    elif existing in ("empty", "full"):
        path.mkdir(parents=True, exist_ok=True)
        if existing == "full":
            (path / "keep").write_text("x")
    before = sorted(p.name for p in path.parent.iterdir()) if path.parent.exists() else None
    try:
        made = new_run_dir(str(path), "env")
    except (FileExistsError, NotADirectoryError, PermissionError) as e:
        assert "choose" in str(e) or "Not a directory" in str(e), str(e)
        if before is not None:
            assert sorted(p.name for p in path.parent.iterdir()) == before  # nothing left behind
        return
    assert os.path.isdir(made) and not os.listdir(made)


BYTES = st.one_of(st.binary(max_size=600), st.builds(lambda b: b"PK\x03\x04" + b, st.binary(max_size=300)),
                  st.builds(lambda t: t.encode(), st.text(max_size=300)))


@SETTINGS
@given(data=BYTES)
def test_any_bytes_as_a_checkpoint_are_one_named_error(tmp_path, data):
    from handlers.checkpoint import CheckpointError, read_checkpoint

    path = tmp_path / "c.pt"
    path.write_bytes(data)
    with pytest.raises(CheckpointError, match=r"c\.pt"):
        read_checkpoint(str(path))


@SETTINGS
@given(data=BYTES)
def test_any_bytes_as_a_replayed_record_are_one_named_error(tmp_path, data):
    from engine.app.runs import run_windows

    (tmp_path / "r").mkdir(exist_ok=True)  # hypothesis runs every example in this one folder
    (tmp_path / "r" / "curves.npz").write_bytes(data)
    with pytest.raises(ValueError, match=r"r/curves\.npz") as refused:
        run_windows(str(tmp_path / "r"))
    assert "\n" not in str(refused.value)


@SETTINGS
@given(data=BYTES)
def test_any_bytes_as_curves_or_a_manifest_are_one_named_error_or_ignored(tmp_path, data):
    from engine.manifest import read_manifest
    from handlers.plot.record import read_points

    (tmp_path / "curves.npz").write_bytes(data)
    with pytest.raises(ValueError, match="is not a curves.npz this project wrote"):
        read_points(str(tmp_path / "curves.npz"))
    (tmp_path / "run.json").write_bytes(data)
    assert isinstance(read_manifest(str(tmp_path)), dict)


# -- loader shapes: every shape torch offers trains, or is refused in one line before anything moves ----------
def _loader(shape: str, n: int, batch: int):
    from torch.utils.data import BatchSampler, DataLoader, IterableDataset, SequentialSampler, TensorDataset

    g = torch.Generator().manual_seed(n)
    X, y = torch.randn(n, 4, generator=g), torch.randint(0, 3, (n,), generator=g)
    data = TensorDataset(X, y)

    class Stream(IterableDataset):
        def __iter__(self):
            return iter(zip(X, y))

    return {
        "list": lambda: [(X[i:i + batch], y[i:i + batch]) for i in range(0, n, batch)],
        "dataloader": lambda: DataLoader(data, batch, shuffle=True, generator=g),
        "drop_last": lambda: DataLoader(data, batch, drop_last=True),
        "stream": lambda: DataLoader(Stream(), batch),
        "batch_sampler": lambda: DataLoader(data, batch_sampler=BatchSampler(SequentialSampler(data), batch, False)),
        "generator": lambda: ((X[i:i + batch], y[i:i + batch]) for i in range(0, n, batch)),
        "dict_batches": lambda: [{"x": X[i:i + batch], "y": y[i:i + batch]} for i in range(0, n, batch)],
        "triples": lambda: [(X[i:i + batch], y[i:i + batch], y[i:i + batch]) for i in range(0, n, batch)],
        "collate": lambda: DataLoader(data, batch, collate_fn=lambda b: (torch.stack([x for x, _ in b]) * 2,
                                                                          torch.stack([t for _, t in b]))),
        "collate_dict": lambda: DataLoader(data, batch, collate_fn=lambda b: {"X": torch.stack([x for x, _ in b])}),
    }[shape]()


@settings(max_examples=30, deadline=None, derandomize=True)
@given(shape=st.sampled_from(["list", "dataloader", "drop_last", "stream", "batch_sampler", "generator",
                              "dict_batches", "triples", "collate", "collate_dict"]),
       n=st.integers(0, 20), batch=st.integers(1, 8), epochs=st.integers(1, 2))
def test_any_loader_shape_trains_or_is_refused_in_one_line(shape, n, batch, epochs):
    from engine import train_ch13

    net = torch.nn.Linear(4, 3)
    train, test = _loader(shape, n, batch), _loader("list", 6, 3)
    before = [p.detach().clone() for p in net.parameters()]
    try:
        history = train_ch13(net, train, test, torch.nn.CrossEntropyLoss(reduction="none"),
                             torch.optim.SGD(net.parameters(), 0.1), epochs, plot=False, verbose=False, progress=False)
    except (ValueError, TypeError) as e:
        assert "\n" not in str(e) and ("train_iter" in str(e) or "batch" in str(e)), str(e)
        assert all(torch.equal(a, b) for a, b in zip(before, net.parameters()))  # refused before anything moved
        return
    assert len(history.train_loss) == epochs
