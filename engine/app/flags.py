"""Every command-line option once: the ``train`` parser, the examples' parser and the mapping from
parsed arguments to ``train_ch13`` keywords are all built from these lists (adding one is one edit).
"""
from __future__ import annotations

import argparse
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from handlers.plot.backends import BACKENDS

__all__ = ["Option", "RUN", "STEP", "FEATURES", "add_options", "train_kwargs",
           "positive_int", "positive_float", "device_list"]


def positive_int(text: str) -> int:
    value = int(text) if text.lstrip("-").isdigit() else None
    if value is None or value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive whole number, got {text!r}")
    return value


def _number(text: str) -> float:
    """``float(text)``, or nan (which every range check below refuses) for what is not a number."""
    try:
        return float(text)
    except ValueError:
        return float("nan")


def positive_float(text: str) -> float:
    value = _number(text)
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def _decay(text: str) -> float:
    value = _number(text)
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(f"expected a decay between 0 and 1 such as 0.999, got {text!r}")
    return value


def device_list(text: str) -> list[str]:
    """``cuda:0,cuda:1`` -> ``["cuda:0", "cuda:1"]``; the names are checked by ``resolve_devices``."""
    return [d.strip() for d in text.split(",") if d.strip()]


@dataclass(frozen=True)
class Option:
    flag: str
    help: str
    kwarg: str | None = None  # the train_ch13 keyword it becomes (None: used by the app itself)
    type: Callable[[str], Any] | None = None
    default: Any = None
    choices: Sequence[str] | None = None
    switch: str | None = None  # "flag" (store_true) or "both" (--x / --no-x)
    metavar: str | None = None
    shown_default: str | None = None  # how --help names a default of None
    covers: tuple[str, ...] = ()  # train_ch13 keywords the app derives from this flag (not passed as given)
    negative: Any = None  # with choices: the value ``--no-<flag>`` stores (``--no-plot`` is ``--plot off``)

    @property
    def dest(self) -> str:
        return self.flag.lstrip("-").replace("-", "_")


# What the main job and every example share.
RUN = [
    Option("--data-dir", "folder holding (or receiving) downloaded data sets", default="../data"),
    Option("--epochs", "number of epochs", type=positive_int, default=10),
    Option("--batch-size", "training batch size (global, over all processes)", type=positive_int, default=64),
    Option("--lr", "learning rate", type=positive_float, default=1e-2),
    Option("--devices", "comma-separated devices, e.g. cpu or cuda:0,cuda:1", type=device_list,
           shown_default="all GPUs, else cpu"),
    Option("--progress", "progress bar on stderr; a line per epoch otherwise", kwarg="progress", switch="both",
           shown_default="a bar when stderr is a terminal"),
    Option("--out", "run folder for the record (curves.npz, PNG, run.json), checkpoints and the Visdom env",
           shown_default="runs/<name>", covers=("checkpoint_dir",)),
    Option("--name", "the run's name: its Visdom env and default folder", shown_default="the --out folder's name, "
           "else the start time", metavar="NAME"),
    Option("--plot", "where the curves are shown besides the run's record; --no-plot is off", choices=BACKENDS,
           shown_default="$D2L_IGNITE_PLOT, else visdom", negative="off"),
    Option("--log-y", "the book's window on a log y axis", kwarg="plot_log_y", switch="flag"),
    Option("--visdom", "Visdom server; a local one is started when none answers there", metavar="URL",
           shown_default="$VISDOM_URL or http://127.0.0.1:8097"),
]

# StepOptions, one per field.
STEP = [
    Option("--amp", "mixed precision (fp16 adds loss scaling)", kwarg="amp", choices=("bf16", "fp16", "fp32"),
           shown_default="fp32, or --fast's choice"),
    Option("--accumulate", "sum the gradients of K batches per update", kwarg="accumulation_steps",
           type=positive_int, default=1, metavar="K"),
    Option("--clip-grad", "clip the gradient norm to NORM before each update", kwarg="clip_grad_norm",
           type=positive_float, metavar="NORM"),
    Option("--channels-last", "channels_last memory format (conv nets)", kwarg="channels_last", switch="both",
           shown_default="off, or --fast's choice"),
    Option("--compile", "torch.compile the model", kwarg="compile", switch="both",
           shown_default="off, or --fast's choice"),
    Option("--fast", "the fast path: on a GPU bf16, channels_last, fused optimizer, CUDA graphs; on CPU compile",
           kwarg="fast", switch="flag"),
]


def _features() -> list[Option]:
    from engine.app.schedules import SCHEDULES
    from handlers.stopping import STOP_METRICS

    return [
        Option("--schedule", "learning-rate schedule over the whole run, stepped per update and plotted",
               choices=SCHEDULES, default="cosine", covers=("lr_scheduler", "scheduler_every", "plot_lr")),
        Option("--early-stopping", "stop after PATIENCE epochs without improvement", kwarg="early_stopping",
               type=positive_int, metavar="PATIENCE"),
        Option("--early-stopping-metric", "figure early stopping watches", kwarg="early_stopping_metric",
               choices=sorted(STOP_METRICS), default="test_acc"),
        Option("--test-loss", "compute the test loss each epoch (in the History)", kwarg="test_loss", switch="both",
               shown_default="when early stopping watches it"),
        Option("--ema", "keep an exponential moving average of the weights with this DECAY (e.g. 0.999), tested "
               "each epoch, plotted and checkpointed", kwarg="ema", type=_decay, metavar="DECAY"),
        Option("--resume", "continue from a checkpoint file or run folder (the new run gets its own folder)",
               kwarg="resume", metavar="RUN"),
    ]


FEATURES = _features()


def _help(o: Option) -> str:
    shown = o.shown_default if o.default is None else (None if o.switch == "flag" else o.default)
    return o.help if shown is None else f"{o.help} (default: {shown})"


def add_options(parser: argparse.ArgumentParser | Any, options: Iterable[Option], **defaults: Any) -> None:
    """Add ``options`` to ``parser`` (or an argument group); ``defaults`` override by dest name."""
    for o in options:
        default = defaults.get(o.dest, o.default)
        o = Option(**{**o.__dict__, "default": default})
        kw: dict[str, Any] = {"help": _help(o), "default": default}
        if o.switch == "flag":
            kw.update(action="store_true", default=bool(default))
        elif o.switch == "both":
            kw["action"] = argparse.BooleanOptionalAction
        else:
            kw.update(type=o.type, choices=o.choices, metavar=o.metavar)
        parser.add_argument(o.flag, **kw)
        if o.negative is not None:
            parser.add_argument("--no-" + o.flag.lstrip("-"), dest=o.dest, action="store_const", const=o.negative,
                                help=argparse.SUPPRESS)


def train_kwargs(args: argparse.Namespace, options: Iterable[Option]) -> dict[str, Any]:
    """The ``train_ch13`` keywords that ``options`` map to, from parsed ``args``.

    A command run into a log (stderr no terminal, no ``--progress``) reports a line per epoch.
    """
    from handlers.progress import wants_progress

    kwargs = {o.kwarg: getattr(args, o.dest) for o in options if o.kwarg is not None and hasattr(args, o.dest)}
    if "progress" in kwargs and kwargs["progress"] is None and not wants_progress(None):
        kwargs["progress"] = "epochs"
    return kwargs
