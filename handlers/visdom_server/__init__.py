"""A local Visdom server process and its browser files: not an Engine handler, what the plots are served by."""
from handlers.visdom_server.process import LocalVisdom

__all__ = ["LocalVisdom"]
