#!/usr/bin/env python
"""The prepared device check of docs/SPEED.md: every GPU figure the docs quote, in one run of a few minutes.

Run it when a GPU is lent (the task's `device` tool runs one command; this is that command):

    python scripts/gpu_check.py --out "$OUT" --window 60      # CUDA: the searches run 60 s past their first
                                                              # epoch; estimated 8-9 minutes (never run on a GPU)
    python scripts/gpu_check.py --out /tmp/x --quick --device cpu   # smoke test: tiny sizes, seconds

It writes ``<out>/gpu_check.json`` (every figure, with the date, the device and each command) and prints a
markdown summary. The parts, each a subprocess of its own:

1. ``speed``: ``scripts/bench_speed.py --impl fast`` on the device (supernet fwd+bwd and first-order step,
   bf16 autocast and channels-last on CUDA, ``max_memory_allocated``).
2. ``nb201_search``: ``nas search method=darts space=nb201`` (C=16, N=5, batch 64, the paper's sizes) on
   CIFAR-10-sized random data (``dataset=synthetic``, 50,000 + 10,000 images of 3x32x32: timing only). It runs
   until ``--window`` seconds after its first finished epoch; the 50-epoch wall time is projected as the
   measured epochs plus the remaining ones at the median epoch time after the first (which holds start-up).
3. ``pc_darts_search``: ``nas search method=pc_darts space=darts`` (8 cells, C=16, batch 256, K=4) the same
   way, with ``optimizer.arch_start_epoch=0`` so every measured epoch has its alpha step (the paper's first 15
   epochs have none and cost less: the projection is an upper bound).
4. ``concurrent_nb201``: ``--concurrent`` copies of part 2 (seeds 0..n-1) started together on the one device,
   each its own process and run directory, for ``--window`` seconds: the summed images/s against part 2's
   says how much of the device one search leaves idle.
5. ``group_nb201``: part 2 as one in-process seed group, ``seeds=[0..n-1]`` with n = ``--concurrent``
   (``nas search 'seeds=[...]'``: the seeds' epochs run in turn in one process), for ``--window`` seconds: its
   images/s per epoch against part 2's and part 4's total.
6. ``stacked_nb201``: the same seeds as one seed-stacked group (``seeds_mode=stacked``: every step of all seeds
   in one vmapped forward, nascli/search/stacked.py; the NB201 fast cells run their NCHW path inside vmap),
   for ``--window`` seconds: each record's images/s is one seed's, so the device's total is n times it.

Every run directory lives under ``<out>/runs`` and is resumable; the check stops runs, it never deletes them.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

SCRIPTS = Path(__file__).resolve().parent
EPOCHS = 50  # the papers' search length (NB201 DARTS-V1/V2, PC-DARTS; METHODS.md)

#: CIFAR-10-sized random data (timing only): 50,000 train and 10,000 test images of 3x32x32
FULL_DATA = ["dataset=synthetic", "dataset.image_size=32", "dataset.num_train=50000", "dataset.num_test=10000"]
QUICK_DATA = ["dataset=synthetic", "dataset.image_size=8", "dataset.num_train=256", "dataset.num_test=64"]
QUICK_NB201 = ["space.supernet.C=4", "space.supernet.N=1", "search.batch_size=16"]
QUICK_DARTS = ["space.supernet.C=4", "space.supernet.layers=2", "search.batch_size=16"]


def nas_command(method: str, space: str, out_root: Path, device: str, quick: bool, seed: int = 0,
                extra: tuple[str, ...] = ()) -> list[str]:
    """The ``nas search`` command of one timed search (``--quick``: tiny sizes, 3 epochs)."""
    sizes = (QUICK_NB201 if space == "nb201" else QUICK_DARTS) if quick else []
    epochs = 3 if quick else EPOCHS
    return [sys.executable, "-m", "nascli", "search", f"method={method}", f"space={space}",
            *(QUICK_DATA if quick else FULL_DATA), *sizes, *extra, f"search.epochs={epochs}", f"seed={seed}",
            f"device={device}", f"out_root={out_root}", "logger=none"]


def _metrics(run_root: Path) -> list[dict[str, Any]]:
    """The epoch records of every run under ``run_root`` (one run; a seed group: its seeds in seed order)."""
    return [json.loads(line) for f in sorted(run_root.rglob("metrics.jsonl"))
            for line in f.read_text().splitlines() if line.strip()]


def _stop(proc: subprocess.Popen) -> None:
    """SIGINT first (a search stops between steps and stays resumable), SIGKILL if it does not end."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def timed_searches(commands: list[list[str]], roots: list[Path], window: float, limit: float,
                   log: Path) -> list[tuple[list[dict[str, Any]], str]]:
    """Start every command at once; stop them ``window`` s after every one of them has finished its first epoch
    (or ended), or at their natural end, or at ``limit`` s. Returns each run's metrics records and how it
    ended: ``finished``, ``stopped`` (by this check) or ``failed (exit N)``."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    with log.open("w") as out:
        procs = [subprocess.Popen(c, stdout=out, stderr=subprocess.STDOUT, env=env) for c in commands]
        began, first = time.monotonic(), None
        while any(p.poll() is None for p in procs) and time.monotonic() - began < limit:
            # every run measured at least one epoch: a slower one is not stopped before its first record
            if first is None and all(p.poll() is not None or _metrics(r) for p, r in zip(procs, roots)):
                first = time.monotonic()
            if first is not None and time.monotonic() - first >= window:
                break
            time.sleep(0.5)
        ended = ["finished" if p.poll() == 0 else "stopped" if p.poll() is None else f"failed (exit {p.poll()})"
                 for p in procs]
        for p in procs:
            _stop(p)
    return [(_metrics(r), e) for r, e in zip(roots, ended)]


def summarize_search(records: list[dict[str, Any]], ended: str, command: list[str]) -> dict[str, Any]:
    """Epoch times, images/s and peak memory of one search, and its projected ``EPOCHS``-epoch wall time:
    sum of the measured epoch times + (EPOCHS - n) * median(epoch times after the first)."""
    times = [float(r["epoch_time_s"]) for r in records]
    row: dict[str, Any] = {"command": " ".join(command[1:]), "ended": ended, "epochs_measured": len(times),
                           "epoch_time_s": times,
                           "images_per_s": [float(r["images_per_s"]) for r in records],
                           "peak_memory_mb": max((float(r.get("peak_memory_mb", 0.0)) for r in records), default=None)}
    if times:
        steady = statistics.median(times[1:] if len(times) > 1 else times)
        row["median_epoch_s"] = steady
        row[f"projected_{EPOCHS}_epochs_s"] = sum(times) + max(EPOCHS - len(times), 0) * steady
    return row


def device_info(device: str) -> dict[str, Any]:
    import torch

    info: dict[str, Any] = {"torch": torch.__version__, "device": device}
    if device.startswith("cuda") and torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        info.update(name=props.name, memory_gb=round(props.total_memory / 2**30, 1), cuda=torch.version.cuda)
    else:
        info.update(name="cpu", cores=len(os.sched_getaffinity(0)))
    return info


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="folder for gpu_check.json, logs and run dirs")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--quick", action="store_true", help="tiny sizes, 3 epochs: a smoke test, not a measurement")
    parser.add_argument("--window", type=float, default=90.0, help="seconds each search runs after its first epoch")
    parser.add_argument("--concurrent", type=int, default=4, help="searches sharing the device in part 4")
    parser.add_argument("--skip", nargs="*", default=[], choices=("speed", "nb201_search", "pc_darts_search",
                                                                   "concurrent_nb201", "group_nb201",
                                                                   "stacked_nb201"))
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    limit = 120.0 + 3 * args.window  # start-up, data and one slow epoch included
    report: dict[str, Any] = {"date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                              "command": " ".join([Path(sys.argv[0]).name, *(argv if argv is not None else sys.argv[1:])]),
                              "quick": args.quick, "window_s": args.window, **device_info(args.device)}

    if "speed" not in args.skip:
        speed_json = args.out / "speed.json"
        cmd = [sys.executable, str(SCRIPTS / "bench_speed.py"), "--impl", "fast", "--device", args.device,
               "--json", str(speed_json), "--rounds", "1", *(["--quick", "--threads", "1"] if args.quick else [])]
        subprocess.run(cmd, check=True, stdout=(args.out / "speed.log").open("w"), stderr=subprocess.STDOUT)
        report["speed"] = {"command": " ".join(cmd[1:]), "rows": json.loads(speed_json.read_text())["rows"]}

    runs = args.out / "runs"
    parts = {"nb201_search": ("darts", "nb201", ()),
             "pc_darts_search": ("pc_darts", "darts", ("optimizer.arch_start_epoch=0",))}
    for name, (method, space, extra) in parts.items():
        if name in args.skip:
            continue
        root = runs / name
        cmd = nas_command(method, space, root, args.device, args.quick, extra=extra)
        ((records, ended),) = timed_searches([cmd], [root], args.window, limit, args.out / f"{name}.log")
        report[name] = summarize_search(records, ended, cmd)

    if "concurrent_nb201" not in args.skip:
        roots = [runs / f"concurrent_{i}" for i in range(args.concurrent)]
        cmds = [nas_command("darts", "nb201", r, args.device, args.quick, seed=i) for i, r in enumerate(roots)]
        results = timed_searches(cmds, roots, args.window, limit, args.out / "concurrent_nb201.log")
        rows = [summarize_search(rec, ended, c) for (rec, ended), c in zip(results, cmds)]
        total = sum(statistics.median(r["images_per_s"]) for r in rows if r["images_per_s"])
        solo = report.get("nb201_search", {}).get("images_per_s") or []
        report["concurrent_nb201"] = {"searches": args.concurrent, "rows": rows, "total_images_per_s": total,
                                      "solo_images_per_s": statistics.median(solo) if solo else None}

    if "group_nb201" not in args.skip:
        root = runs / "group_nb201"
        seeds = ",".join(str(i) for i in range(args.concurrent))
        cmd = nas_command("darts", "nb201", root, args.device, args.quick) + [f"seeds=[{seeds}]"]
        ((records, ended),) = timed_searches([cmd], [root], args.window, limit, args.out / "group_nb201.log")
        report["group_nb201"] = {"seeds": args.concurrent, **summarize_search(records, ended, cmd)}

    if "stacked_nb201" not in args.skip:
        root = runs / "stacked_nb201"
        seeds = ",".join(str(i) for i in range(args.concurrent))
        cmd = nas_command("darts", "nb201", root, args.device, args.quick) + [
            f"seeds=[{seeds}]", "seeds_mode=stacked"]
        ((records, ended),) = timed_searches([cmd], [root], args.window, limit, args.out / "stacked_nb201.log")
        summary = summarize_search(records, ended, cmd)
        per_seed = statistics.median(summary["images_per_s"]) if summary["images_per_s"] else None
        report["stacked_nb201"] = {"seeds": args.concurrent, **summary,
                                   "total_images_per_s": per_seed * args.concurrent if per_seed else None}

    (args.out / "gpu_check.json").write_text(json.dumps(report, indent=1))
    print(markdown(report))
    searches = [report[k] for k in ("nb201_search", "pc_darts_search", "group_nb201", "stacked_nb201") if k in report]
    searches += report.get("concurrent_nb201", {}).get("rows", [])
    failed = [r["command"] for r in searches if r["ended"].startswith("failed")]
    for command in failed:
        print(f"gpu_check: failed: {command} (see the part's log in {args.out})", file=sys.stderr)
    return 1 if failed else 0


def markdown(report: dict[str, Any]) -> str:
    """The summary table the docs take (every figure also in gpu_check.json)."""
    lines = [f"gpu_check {report['date']} on {report['name']} (torch {report['torch']}): `{report['command']}`", "",
             "| part | epochs measured | median epoch s | projected 50 epochs | images/s | peak MB |", "|---|---|---|---|---|---|"]
    for name in ("nb201_search", "pc_darts_search"):
        r = report.get(name)
        if r and r["epochs_measured"]:
            lines.append(f"| {name} | {r['epochs_measured']} | {r['median_epoch_s']:.2f} | "
                         f"{r[f'projected_{EPOCHS}_epochs_s'] / 60:.1f} min | {statistics.median(r['images_per_s']):.0f} | "
                         f"{r['peak_memory_mb']:.0f} |")
        elif r:
            lines.append(f"| {name} | 0 ({r['ended']}) | | | | |")
    c = report.get("concurrent_nb201")
    if c:
        lines.append(f"| concurrent_nb201 x{c['searches']} | | | | {c['total_images_per_s']:.0f} total "
                     f"(solo {c['solo_images_per_s'] or float('nan'):.0f}) | |")
    g = report.get("group_nb201")
    if g and g.get("images_per_s"):
        lines.append(f"| group_nb201 seeds x{g['seeds']} (in turn) | {g['epochs_measured']} ({g['ended']}) | "
                     f"{g['median_epoch_s']:.1f} | | {statistics.median(g['images_per_s']):.0f} per epoch | "
                     f"{g['peak_memory_mb']:.0f} |")
    st = report.get("stacked_nb201")
    if st and st.get("images_per_s"):
        lines.append(f"| stacked_nb201 seeds x{st['seeds']} (stacked) | {st['epochs_measured']} "
                     f"({st['ended']}) | {st['median_epoch_s']:.1f} | | {statistics.median(st['images_per_s']):.0f} "
                     f"per seed, {st['total_images_per_s']:.0f} total | {st['peak_memory_mb']:.0f} |")
    for row in report.get("speed", {}).get("rows", []):
        lines.append(f"| speed {row['config']} {row['impl']} | | | | step {row.get('step_img_s') or float('nan'):.0f} | "
                     f"{1000 * float(row.get('peak_gb') or row.get('peak_rss_gb') or 0):.0f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
