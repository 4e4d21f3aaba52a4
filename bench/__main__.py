"""``python -m bench [compare|plot|pages|overhead|ddp-soak] [--quick] [--device cuda]``: run a benchmark (compare)."""
import sys

from bench import compare, ddp_soak, overhead, plot_overhead, plot_pages

COMMANDS = {"compare": compare.main, "plot": plot_overhead.main, "pages": plot_pages.main, "overhead": overhead.main,
            "ddp-soak": ddp_soak.main}

if __name__ == "__main__":
    argv = sys.argv[1:]
    command = argv.pop(0) if argv and argv[0] in COMMANDS else "compare"
    COMMANDS[command](argv)
