"""``python -m bench [plot] [--quick]``: run the benchmarks."""
import sys

from bench import plot_overhead

if __name__ == "__main__":
    argv = sys.argv[1:]
    if argv and argv[0] == "plot":
        argv = argv[1:]
    plot_overhead.main(argv)
