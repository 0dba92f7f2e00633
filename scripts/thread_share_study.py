#!/usr/bin/env python
"""Wall time of one small ``nas benchmark`` study with ``jobs=N`` parallel jobs, under two thread settings.

* ``shared``: what ``nas benchmark`` does now: no ``num_threads``, so every job gets its share of the
  CPUs this process may use (``nascli.threads.threads_per_job``: affinity / cgroup quota over N);
* ``oversubscribed``: what it did before: every job at ``num_threads=T`` (default: torch's default, the
  number of CPUs), so N jobs run N x T OpenMP threads on the CPUs.

The two settings run the same study (same methods, seeds, sizes) in separate output folders, alternating
``--rounds`` times, and the script prints each run's wall time and the ratio per round. The study is
small on purpose (synthetic 16x16 data, NB201 C=8 N=2): about a minute per run on 2 cores.

    python scripts/thread_share_study.py                    # 2 rounds, jobs=2
    python scripts/thread_share_study.py --quick            # smoke test: tiny sizes, 1 round
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

STUDY = ["methods=[darts,gdas]", "seeds=[0,1]", "baseline.samples=0", "progress=false",
         "space.supernet.C=8", "space.supernet.N=2", "space.network.C=8", "space.network.N=1",
         "dataset.num_train=2048", "dataset.num_test=256", "dataset.image_size=16",
         "search_overrides=['search.batch_size=32','search.epochs=3']",
         "protocol.epochs=1", "protocol.max_steps_per_epoch=10", "protocol.batch_size=32"]
QUICK = ["methods=[darts]", "seeds=[0,1]", "baseline.samples=0", "progress=false",
         "space.supernet.C=4", "space.supernet.N=1", "space.network.C=4", "space.network.N=1",
         "dataset.num_train=128", "dataset.num_test=32", "dataset.image_size=8",
         "search_overrides=['search.batch_size=16','search.epochs=1']",
         "protocol.epochs=1", "protocol.max_steps_per_epoch=2", "protocol.batch_size=16"]


def run_study(out: Path, jobs: int, threads: int | None, quick: bool) -> dict:
    """One study in a fresh ``out``; its wall time and summary line."""
    if out.exists():
        shutil.rmtree(out)
    args = [*(QUICK if quick else STUDY), f"jobs={jobs}", f"out_root={out}"]
    if threads is not None:
        args.append(f"num_threads={threads}")
    cmd = [sys.executable, "-m", "nascli", "benchmark", *args]
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.pop("OMP_NUM_THREADS", None)  # the setting under test decides the threads
    t = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t
    if proc.returncode != 0:
        raise SystemExit(f"study failed ({proc.returncode}): {proc.stderr.strip().splitlines()[-1:]}")
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    return {"wall_s": wall, "status": summary["status"], "jobs_ran": summary["jobs"]["ran"],
            "command": "nas benchmark " + " ".join(args[:-1] + ["out_root=<tmp>"])}


def main(argv: list[str] | None = None) -> int:
    import torch

    from nascli.threads import available_cpus, threads_per_job

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--threads", type=int, default=torch.get_num_threads(),
                   help="the oversubscribed setting's threads per job (default: torch's default here)")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--quick", action="store_true", help="smoke test: tiny study, 1 round (not a measurement)")
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    rounds = 1 if args.quick else args.rounds
    share = threads_per_job(args.jobs)
    rows = []
    with tempfile.TemporaryDirectory(prefix="thread_share_") as tmp:
        for rnd in range(rounds):
            for name, threads in (("oversubscribed", args.threads), ("shared", None)):
                row = run_study(Path(tmp) / name, args.jobs, threads, args.quick)
                row.update(setting=name, round=rnd, threads_per_job=threads or share)
                rows.append(row)
                print(f"round {rnd + 1} {name:14s} {row['threads_per_job']} threads/job: {row['wall_s']:.1f} s",
                      file=sys.stderr, flush=True)
    walls = {name: [r["wall_s"] for r in rows if r["setting"] == name] for name in ("oversubscribed", "shared")}
    ratios = [o / s for o, s in zip(walls["oversubscribed"], walls["shared"])]
    out = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "cpus": available_cpus(), "jobs": args.jobs,
           "torch_default_threads": torch.get_num_threads(), "rows": rows,
           "median_wall_s": {k: statistics.median(v) for k, v in walls.items()},
           "speedup_per_round": ratios, "speedup": statistics.median(ratios)}
    print(f"| setting | threads per job | study wall time, s (per round) |\n|---|---|---|")
    for name in ("oversubscribed", "shared"):
        per_job = args.threads if name == "oversubscribed" else share
        print(f"| {name} | {per_job} | {out['median_wall_s'][name]:.1f} "
              f"({', '.join(f'{w:.1f}' for w in walls[name])}) |")
    print(f"\n{out['date']}, {out['cpus']} CPUs, jobs={args.jobs}: shared threads are {out['speedup']:.2f}x faster "
          f"(median of per-round ratios)")
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
