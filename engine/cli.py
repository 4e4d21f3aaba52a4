"""Kept so ``python -m engine.cli`` (round-1 docs, torchrun scripts) still runs the ``d2l-ignite`` command."""
import sys

from engine.app.cli import main

if __name__ == "__main__":
    sys.exit(main())
