"""The run's record of curves and what shows it: ``Plotter`` (the record), the book's window and ``Animator``, the
PNG; the back-ends (Visdom, TensorBoard) are imported when first named, so a run that shows none loads neither."""
from importlib import import_module
from typing import Any

from handlers.plot.animator import Animator
from handlers.plot.backends import new_env
from handlers.plot.base import Plotter
from handlers.plot.png import save_png
from handlers.plot.store import PlotStore
from handlers.plot.windows import BOOK_LEGEND, attach_book_plot

_BACKENDS = {  # name -> the back-end module that holds it
    **dict.fromkeys(("VisdomPlotter", "DEFAULT_URL", "server_url"), "handlers.plot.plotter"),
    **dict.fromkeys(("VisdomLogger", "OutputHandler", "OptimizerParamsHandler", "WeightsScalarHandler",
                     "GradsScalarHandler", "global_step_from_engine"), "handlers.plot.ignite_logger"),
    "VisdomAddress": "handlers.plot.wire",
    "TensorboardPlotter": "handlers.plot.tensorboard",
    "LocalVisdom": "handlers.visdom_server",
}

__all__ = ["Animator", "BOOK_LEGEND", "Plotter", "PlotStore", "attach_book_plot", "new_env", "save_png", *_BACKENDS]


def __getattr__(name: str) -> Any:
    if name not in _BACKENDS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(_BACKENDS[name]), name)
