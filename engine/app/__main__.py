"""``python -m engine.app`` is the ``d2l-ignite`` command (torchrun needs a module to launch)."""
import sys

from engine.app.cli import main

sys.exit(main())
