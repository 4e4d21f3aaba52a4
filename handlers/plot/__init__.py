"""Live curves in Visdom: the non-blocking plotter, the book's window, Animator, Ignite's logger shape, the PNG."""
from handlers.plot.animator import Animator
from handlers.plot.ignite_logger import (
    GradsScalarHandler, OptimizerParamsHandler, OutputHandler, VisdomLogger, WeightsScalarHandler,
    global_step_from_engine,
)
from handlers.plot.windows import BOOK_LEGEND, attach_book_plot
from handlers.plot.plotter import DEFAULT_URL, VisdomPlotter, new_env, server_url
from handlers.plot.png import save_png
from handlers.plot.store import PlotStore
from handlers.plot.wire import VisdomAddress, read_log

__all__ = ["Animator", "VisdomLogger", "OutputHandler", "OptimizerParamsHandler", "WeightsScalarHandler",
           "GradsScalarHandler", "global_step_from_engine", "BOOK_LEGEND", "DEFAULT_URL", "attach_book_plot", "new_env",
           "server_url", "PlotStore", "VisdomAddress", "VisdomPlotter", "read_log", "save_png"]
