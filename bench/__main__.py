"""``python -m bench [compare|plot] [--quick] [--device cuda]``: run the benchmarks (default: compare)."""
import sys

from bench import compare, plot_overhead

if __name__ == "__main__":
    argv = sys.argv[1:]
    command = argv.pop(0) if argv and argv[0] in ("compare", "plot") else "compare"
    (plot_overhead.main if command == "plot" else compare.main)(argv)
