"""``python -m bench [compare|plot|overhead] [--quick] [--device cuda]``: run the benchmarks (default: compare)."""
import sys

from bench import compare, overhead, plot_overhead

COMMANDS = {"compare": compare.main, "plot": plot_overhead.main, "overhead": overhead.main}

if __name__ == "__main__":
    argv = sys.argv[1:]
    command = argv.pop(0) if argv and argv[0] in COMMANDS else "compare"
    COMMANDS[command](argv)
