#!/usr/bin/env python
"""Peak training memory and throughput of search methods, one fresh subprocess per method.

Each child composes ``nas search method=<m>`` (synthetic data at the requested size), builds the search
session, then runs ``--warmup`` optimizer steps and ``--steps`` timed steps of the method's own optimizer
(weights + architecture updates, components included). Reported per method:

* ``peak_mb``: on CUDA ``torch.cuda.max_memory_allocated`` during the steps minus the memory allocated
  before them (activations, gradients, optimizer state); on CPU the process's peak RSS (``ru_maxrss``)
  minus its RSS right before the steps (same meaning, plus allocator slack);
* ``images_per_s``: training images per second over the timed steps (one step = one train batch, however
  many paths or forward passes the method does with it);
* ``ratio_to_darts``: peak_mb / the DARTS peak_mb at the same settings.

    python scripts/bench_memory.py                       # NB201, C=16, N=5, batch 64, 32x32, CPU
    python scripts/bench_memory.py --space darts --C 16 --layers 8 --batch 64
    python scripts/bench_memory.py --json out.json --methods darts gdas rome daas
    python scripts/bench_memory.py --quick               # smoke test in seconds: smallest sizes, 1+1 steps
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

DEFAULT_METHODS = ("darts", "gdas", "rome", "daas")
# --quick: the smallest configuration (a smoke test that the script still runs, not a measurement)
QUICK = {"C": 4, "N": 1, "layers": 3, "batch": 4, "image": 8, "warmup": 1, "steps": 1}


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def child(args: argparse.Namespace) -> dict:
    import torch
    torch.set_num_threads(args.threads)
    from hydra import compose, initialize_config_dir

    from nascli.commands.search import SearchSession
    from nascli.paths import CONF_DIR

    size_keys = ([f"space.supernet.C={args.C}", f"space.supernet.N={args.N}"] if args.space == "nb201"
                 else [f"space.supernet.C={args.C}", f"space.supernet.layers={args.layers}"])
    steps = args.warmup + args.steps
    overrides = [f"method={args.method}", f"space={args.space}", *size_keys, "dataset=synthetic",
                 f"dataset.image_size={args.image}", f"dataset.num_train={2 * args.batch * (steps + 1)}",
                 f"dataset.num_test={args.batch}", f"search.batch_size={args.batch}", "search.epochs=1",
                 "optimizer.arch_start_epoch=0",  # every timed step includes the architecture step (no warm-up)
                 f"device={args.device}", f"out_root={args.out_root}", *args.override]
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base=None):
        cfg = compose("search", overrides=overrides)
    session = SearchSession(cfg)
    engine, opt, device = session.engine, session.optimizer, session.device
    engine.start_epoch(0)
    session.supernet.train()
    batches = [(engine.train_stream.next(), engine.arch_stream.next() if engine.arch_stream else None)
               for _ in range(steps)]

    def run(pairs):
        for k, (tb, ab) in enumerate(pairs):
            opt.step(tb, ab)
            for c in session.components:
                c.on_step_end(0, k + 1)

    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
    else:
        base = _rss_bytes()
    run(batches[: args.warmup])
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    run(batches[args.warmup:])
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - t0
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated(device) - base
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - base
    return {"method": args.method, "optimizer": str(cfg.optimizer.name), "space": args.space,
            "device": str(device), "batch": args.batch, "image": args.image, "C": args.C,
            "N" if args.space == "nb201" else "layers": args.N if args.space == "nb201" else args.layers,
            "peak_mb": round(peak / 2**20, 1), "images_per_s": round(args.batch * args.steps / seconds, 2),
            "step_s": round(seconds / args.steps, 4), "quick": args.quick}


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--methods", nargs="+", default=list(DEFAULT_METHODS))
    p.add_argument("--space", default="nb201", choices=("nb201", "darts"))
    p.add_argument("--C", type=int, default=16)
    p.add_argument("--N", type=int, default=5, help="NB201 cells per stage")
    p.add_argument("--layers", type=int, default=8, help="DARTS-space cells")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--image", type=int, default=32)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--steps", type=int, default=2)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", default="auto")
    p.add_argument("--override", nargs="*", default=[], help="extra Hydra overrides for every method")
    p.add_argument("--json", help="also write the rows to this file")
    p.add_argument("--quick", action="store_true",
                   help="smoke test: " + ", ".join(f"{k}={v}" for k, v in QUICK.items()) + " (overrides those options)")
    p.add_argument("--child", help=argparse.SUPPRESS)
    p.add_argument("--out-root", dest="out_root", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.quick:
        for key, value in QUICK.items():
            setattr(args, key, value)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if args.child:
        args.method = args.child
        print(json.dumps(child(args)))
        return 0
    rows = []
    base = [a for a in (argv if argv is not None else sys.argv[1:])]
    drop = {"--methods", "--json"}
    passthrough, skip = [], False
    for a in base:  # forward every option except the method list and the output file
        if a in drop:
            skip = True
            continue
        if skip and not a.startswith("--"):
            continue
        skip = False
        passthrough.append(a)
    with tempfile.TemporaryDirectory() as tmp:
        for m in args.methods:
            cmd = [sys.executable, __file__, *passthrough, "--child", m, "--out-root", os.path.join(tmp, m)]
            proc = subprocess.run(cmd, capture_output=True, text=True)
            if proc.returncode != 0:
                tail = proc.stderr.strip().splitlines()[-1:] or ["?"]
                rows.append({"method": m, "error": tail[0]})
                print(f"{m}: failed: {tail[0]}", file=sys.stderr)
                continue
            rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    darts = next((r for r in rows if r.get("method") == "darts" and "peak_mb" in r), None)
    for r in rows:
        if darts and "peak_mb" in r and darts["peak_mb"] > 0:
            r["ratio_to_darts"] = round(r["peak_mb"] / darts["peak_mb"], 3)
    print(f"{'method':<8} {'optimizer':<12} {'peak MB':>9} {'ratio':>6} {'img/s':>8}  ({rows[0].get('device', '?')})")
    for r in rows:
        if "error" in r:
            print(f"{r['method']:<8} error: {r['error']}")
            continue
        print(f"{r['method']:<8} {r['optimizer']:<12} {r['peak_mb']:>9.1f} {r.get('ratio_to_darts', float('nan')):>6.3f} "
              f"{r['images_per_s']:>8.1f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2)
    return 1 if any("error" in r for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
