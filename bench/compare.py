"""The same model, data and iterations through the book's ``train_ch13``, a hand loop, Ignite's factory,
and this project's ``train_ch13`` (with live Visdom plots, without, and its fast path on a GPU).

Each run is its own process (so peak host memory is its own); variants alternate A B C ... A B C and
the table gives medians. Timed ex/s is the book's figure (only the step is timed); epoch wall is the
whole epoch including the test pass. The first epoch of every run is warm-up and not counted.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys

import torch

VARIANTS = ("book", "hand", "ignite", "ours+plot", "ours", "ours-fast")
SIZES = {  # (batch, iterations an epoch, epochs, repeats)
    ("cpu", "lenet", False): (256, 30, 3, 5), ("cpu", "resnet18", False): (32, 6, 3, 2),
    ("cuda", "lenet", False): (256, 100, 4, 5), ("cuda", "resnet18", False): (256, 100, 4, 5),
    ("cpu", "lenet", True): (256, 8, 2, 1), ("cuda", "lenet", True): (256, 20, 2, 1),
    ("cuda", "resnet18", True): (256, 20, 2, 1),
}


def worker(args: argparse.Namespace) -> None:
    from bench import variants
    from bench.workloads import data, model

    device = torch.device(args.device)
    train, test = data(args.workload, args.feed, args.batch, args.iters, device)
    net = model(args.workload)
    server = None
    if args.variant == "book":
        result = variants.book(net, train, test, device, args.epochs)
    elif args.variant == "hand":
        result = variants.hand(net, train, test, device, args.epochs)
    elif args.variant == "ignite":
        result = variants.ignite_factory(net, train, test, device, args.epochs)
    else:
        plot: object = False
        if args.variant == "ours+plot":
            from handlers import LocalVisdom, VisdomPlotter

            server = LocalVisdom(env_path=os.path.join(args.tmp, "visdom")).start()
            plot = VisdomPlotter(server.url, "bench")
        result = variants.ours(net, train, test, device, args.epochs, plot=plot, fast=args.variant == "ours-fast")
    if server is not None:
        server.stop()
    result["rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result["gpu_mb"] = torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda" else 0.0
    print("RESULT " + json.dumps(result))


def one(variant: str, workload: str, feed: str, device: str, size: tuple[int, int, int, int], tmp: str) -> dict:
    batch, iters, epochs, _ = size
    cmd = [sys.executable, "-m", "bench.compare", "--worker", variant, "--workload", workload, "--feed", feed,
           "--device", device, "--batch", str(batch), "--iters", str(iters), "--epochs", str(epochs), "--tmp", tmp]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=1800,
                          cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    line = [ln for ln in done.stdout.splitlines() if ln.startswith("RESULT ")]
    if done.returncode != 0 or not line:
        raise RuntimeError(f"{variant} {workload} {feed} failed:\n{done.stderr[-2000:]}")
    r = json.loads(line[0][7:])
    examples = batch * iters
    return {"ex/s": examples / statistics.median(r["step"][1:]), "wall": statistics.median(r["wall"][1:]),
            "rss": r["rss_mb"], "gpu": r["gpu_mb"]}


def table(rows: dict[str, list[dict]], title: str) -> str:
    med = {v: {k: statistics.median(x[k] for x in runs) for k in runs[0]} for v, runs in rows.items()}
    book, hand = med.get("book"), med.get("hand")
    out = [f"\n{title}", "| variant | timed ex/s | epoch wall s | vs book (ex/s, wall) | vs hand (ex/s, wall) "
           "| peak host MB | peak GPU MB |", "|---|---|---|---|---|---|---|"]
    for v, m in med.items():
        vs = [f"{m['ex/s'] / ref['ex/s']:.2f}x, {ref['wall'] / m['wall']:.2f}x" if ref else "-" for ref in (book, hand)]
        out.append(f"| {v} | {m['ex/s']:.0f} | {m['wall']:.3f} | {vs[0]} | {vs[1]} | {m['rss']:.0f} | {m['gpu']:.0f} |")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench compare", description=__doc__)
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--quick", action="store_true", help="LeNet only, few iterations, one repeat")
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    p.add_argument("--workload", default=None, choices=["lenet", "resnet18"], help="only this model")
    for name in ("feed", "batch", "iters", "epochs", "tmp"):
        p.add_argument(f"--{name}", default=None, type=int if name in ("batch", "iters", "epochs") else str,
                       help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        args.variant = args.worker
        return worker(args)
    import tempfile

    tmp = tempfile.mkdtemp(prefix="bench-")
    names = [v for v in VARIANTS if args.device == "cuda" or v != "ours-fast"]
    workloads = [args.workload] if args.workload else ["lenet"] if args.quick else ["lenet", "resnet18"]
    feeds = ["device"] if args.quick else ["device", "loader"]
    print(f"device {args.device}" + (f" ({torch.cuda.get_device_name()})" if args.device == "cuda" else
                                     f" ({os.cpu_count()} cores)") + f", torch {torch.__version__}")
    for workload in workloads:
        for feed in feeds:
            size = SIZES[(args.device, workload, args.quick)]
            rows: dict[str, list[dict]] = {v: [] for v in names}
            for r in range(size[3]):
                order = names[r % len(names):] + names[:r % len(names)]  # rotate: no variant always first
                for v in order:
                    rows[v].append(one(v, workload, feed, args.device, size, tmp))
            print(table(rows, f"{workload}, data {'on the device' if feed == 'device' else 'from a DataLoader'}, "
                              f"batch {size[0]}, {size[1]} iterations x {size[2]} epochs, median of {size[3]}"),
                  flush=True)


if __name__ == "__main__":
    main()
