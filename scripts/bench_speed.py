#!/usr/bin/env python
"""Speed of the search supernets (impl=fast vs impl=reference) against the official code's figures.

Per configuration of the "Fast supernets" issue (random 32x32 inputs, 10 classes, softmax-family mixers)
and per implementation, one fresh subprocess (so that its RSS high-water mark is its own) measures, as the
median of ``--repeats`` runs after one warm-up run:

* ``fwd_bwd_s``: one forward + backward of the cross-entropy loss w.r.t. weights and alphas;
* ``step_img_s``: one first-order search step through the real SearchOptimizer (``bilevel``: a weight
  step and an alpha step, each with its own batch, in the space's ``search_defaults`` order) as images of
  the training batch per second (batch / step time, the unit of the official figures);
* ``alpha2_s``: for the second-order configuration, one unrolled alpha step (``bilevel_2nd.arch_step``:
  4 forward/backward passes) instead;
* ``peak_rss_gb``: the process's peak RSS (``ru_maxrss``) over everything it ran; on CUDA
  ``torch.cuda.max_memory_allocated`` (bf16 autocast, channels_last, synchronised timers).

``--threads`` (default 2) CPU threads, like the 2-core machine of the official figures.

    python scripts/bench_speed.py                      # full table (slow on CPU: run it once)
    python scripts/bench_speed.py --quick              # smoke test in seconds: nb201 only, tiny sizes, 1 repeat
    python scripts/bench_speed.py --quick --only darts_2nd pc_darts   # the same tiny sizes for other configs
    python scripts/bench_speed.py --only darts --json out.json
    python scripts/bench_speed.py --ablation           # what each idea of impl=fast buys (DARTS space)
    python scripts/bench_speed.py --only nb201 --impl reference reference+channels_last
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Config:
    """One benchmark configuration and the official code's figures for it (from the issue text:
    measured with the official code on a 2-core machine)."""

    name: str
    space: str
    sizes: dict
    batch: int
    mixer: str = "softmax"
    partial_channels: int = 1
    second_order: bool = False  # measure the unrolled alpha step only
    official: dict = field(default_factory=dict)


def _pc_mixer() -> str:
    from nascli.search.mixers import MIXERS
    return "pc_softmax" if "pc_softmax" in MIXERS else "softmax"


CONFIGS = {
    "nb201": Config("nb201", "nb201", {"C": 16, "N": 5}, 64,
                    official={"step_img_s": 9.4, "fwd_bwd_s": 3.17, "peak_rss_gb": 2.8}),
    "darts": Config("darts", "darts", {"C": 16, "layers": 8}, 64,
                    official={"step_img_s": 1.77, "fwd_bwd_s": 17.8, "peak_rss_gb": 9.4}),
    "darts_2nd": Config("darts_2nd", "darts", {"C": 16, "layers": 8}, 16, second_order=True,
                        official={"alpha2_s": 26.3, "peak_rss_gb": 3.5}),
    "pc_darts": Config("pc_darts", "darts", {"C": 16, "layers": 8}, 64, mixer="pc", partial_channels=4,
                       official={"step_img_s": 4.7, "fwd_bwd_s": 6.69, "peak_rss_gb": 3.3}),
}
# --quick: the smallest configuration of each space (a smoke test that the script still runs, not a
# measurement: no comparison with the official figures is made for it).
QUICK_SIZES = {"nb201": {"C": 4, "N": 1}, "darts": {"C": 4, "layers": 3}}
QUICK_BATCH, QUICK_IMAGE = 2, 8
IMPLS = ("fast", "reference")
# An implementation name may carry modifiers, "<impl>+<modifier>+...": channels_last (model and inputs in
# NHWC, what impl=fast does internally), plain_depthwise (impl=fast with oneDNN's own depthwise backward),
# malloc (tune_malloc in the worker). --ablation runs these on the DARTS space: what each idea buys.
ABLATION = ("reference", "reference+channels_last", "fast+plain_depthwise", "fast", "fast+malloc")


# ------------------------------------------------------------------------------------------- worker
def tune_malloc() -> None:
    """glibc: keep freed memory in the heap (no mmap/munmap and page faults per large tensor)."""
    import ctypes
    libc = ctypes.CDLL("libc.so.6")
    libc.mallopt(-3, 1 << 30)  # M_MMAP_THRESHOLD
    libc.mallopt(-1, 1 << 30)  # M_TRIM_THRESHOLD


def _plain_depthwise(t, w, stride=1, dilation=1):
    import torch.nn.functional as F
    k = w.shape[-1]
    return F.conv2d(t, w, None, stride, dilation * (k // 2), dilation, w.shape[0])


def _apply_modifiers(modifiers: list[str], net, batches: list):
    """See IMPLS: returns the (possibly converted) supernet and batches."""
    import torch
    unknown = set(modifiers) - {"channels_last", "plain_depthwise", "malloc"}
    if unknown:
        raise ValueError(f"unknown implementation modifiers {sorted(unknown)}")
    if "channels_last" in modifiers:
        net = net.to(memory_format=torch.channels_last)
        batches = [(x.contiguous(memory_format=torch.channels_last), y) for x, y in batches]
    if "plain_depthwise" in modifiers:
        import nascli.spaces.darts.search_fast as sf
        sf.depthwise_conv = _plain_depthwise
    return net, batches


def worker(args: argparse.Namespace) -> dict:
    impl, *modifiers = args.variant.split("+")
    if args.tune_malloc or "malloc" in modifiers:
        tune_malloc()
    import torch
    import torch.nn.functional as F
    from omegaconf import OmegaConf

    from nascli.device import autocast, prepare_input, resolve_device, to_device
    from nascli.paths import CONF_DIR
    from nascli.search.mixers import MIXERS
    from nascli.search.optimizers import SEARCH_OPTIMIZERS
    from nascli.spaces import get_space
    from nascli.search.edge_parts import method_parts

    torch.set_num_threads(args.threads)
    cfg = CONFIGS[args.worker]
    sizes = QUICK_SIZES[cfg.space] if args.quick else cfg.sizes
    batch_size, image = (QUICK_BATCH, QUICK_IMAGE) if args.quick else (cfg.batch, 32)
    device = resolve_device(args.device)
    space = get_space(cfg.space)
    mixer = _pc_mixer() if cfg.mixer == "pc" else cfg.mixer
    torch.manual_seed(0)
    net = space.build_supernet(MIXERS.get(mixer)(space), 10, 3, method_parts(partial_channels=cfg.partial_channels),
                               impl=impl, **sizes)
    net = to_device(net, device)
    g = torch.Generator().manual_seed(1)

    def batch():
        x = torch.randn(batch_size, 3, image, image, generator=g)
        return prepare_input(x.to(device), device), torch.randint(0, 10, (batch_size,), generator=g).to(device)

    net, (train_batch, arch_batch) = _apply_modifiers(modifiers, net, [batch(), batch()])
    defaults = OmegaConf.to_container(OmegaConf.load(CONF_DIR / "space" / f"{cfg.space}.yaml").search_defaults)
    opt_name = "bilevel_2nd" if cfg.second_order else "bilevel"
    opt = SEARCH_OPTIMIZERS.get(opt_name)(net, device=device, nesterov=defaults["nesterov"],
                                          weight_decay=defaults["weight_decay"],
                                          **({} if cfg.second_order else {"order": defaults["first_order_update"]}))
    opt.on_epoch_start(0, 50)
    net.train()

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    def timed(fn) -> tuple[float, float]:
        sync()
        t, c = time.perf_counter(), time.process_time()
        fn()
        sync()
        return time.perf_counter() - t, time.process_time() - c

    def fwd_bwd():
        net.zero_grad(set_to_none=True)
        with autocast(device):
            out = net(train_batch[0])
        F.cross_entropy(out.float(), train_batch[1]).backward()

    def step():
        opt.step(train_batch, arch_batch)

    def alpha2():
        opt.arch_step(train_batch, arch_batch)

    jobs = {"alpha2_s": alpha2} if cfg.second_order else {"fwd_bwd_s": fwd_bwd, "step_s": step}
    if args.ablation:
        jobs = {"fwd_bwd_s": fwd_bwd}
    if cfg.second_order:
        opt.weight_step(train_batch)  # a momentum buffer for the unrolled w' (not timed)
    out: dict = {"config": cfg.name, "impl": args.variant, "threads": args.threads, "device": str(device),
                 "batch": batch_size, "image": image, "sizes": sizes, "quick": args.quick, "mixer": mixer,
                 "load_before": os.getloadavg()[0]}
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    for name, fn in jobs.items():
        fn()  # warm-up
        runs = [timed(fn) for _ in range(args.repeats)]
        out[name] = statistics.median(r[0] for r in runs)
        out[name.replace("_s", "_runs")] = [round(r[0], 3) for r in runs]
        out[name.replace("_s", "_cpu_s")] = statistics.median(r[1] for r in runs)
    if "step_s" in out:
        out["step_img_s"] = batch_size / out["step_s"]
    out["load_after"] = os.getloadavg()[0]
    if device.type == "cuda":
        out["peak_gb"] = torch.cuda.max_memory_allocated() / 1e9
    else:
        out["peak_rss_gb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9
    return out


# ------------------------------------------------------------------------------------------- parent
def measure(name: str, impl: str, args: argparse.Namespace, ablation: bool = False) -> dict:
    cmd = [sys.executable, __file__, "--worker", name, "--variant", impl, "--threads", str(args.threads),
           "--repeats", str(args.repeats), "--device", args.device]
    if args.quick:
        cmd.append("--quick")
    if args.tune_malloc:
        cmd.append("--tune-malloc")
    if ablation:
        cmd.append("--ablation")
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        return {"config": name, "impl": impl, "error": proc.stderr.strip().splitlines()[-1:]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def ratios(row: dict) -> dict:
    """ours / official for throughput, official / ours for times, ours / official for memory (none for
    --quick rows: they are not measured at the official sizes)."""
    if row.get("quick"):
        return {}
    off = CONFIGS[row["config"]].official
    out = {}
    if "step_img_s" in row and "step_img_s" in off:
        out["speedup_step"] = row["step_img_s"] / off["step_img_s"]
    for key in ("fwd_bwd_s", "alpha2_s"):
        if key in row and key in off:
            out[f"speedup_{key[:-2]}"] = off[key] / row[key]
    if "peak_rss_gb" in row and "peak_rss_gb" in off:
        out["memory_ratio"] = row["peak_rss_gb"] / off["peak_rss_gb"]
    return out


def _fmt(v, spec=".2f") -> str:
    return "-" if v is None else format(v, spec)


def table(rows: list[dict]) -> str:
    head = ("| config | impl | fwd+bwd s | step img/s | 2nd-order alpha step s | peak RSS GB | "
            "speed-up vs official | memory vs official | load avg |")
    lines = [head, "|" + "---|" * 9]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['config']} | {r['impl']} | error: {r['error']} |" + " |" * 6)
            continue
        q = ratios(r)
        speed = q.get("speedup_step", q.get("speedup_alpha2"))
        parts = [] if speed is None else [f"{speed:.1f}x"]
        if "speedup_fwd_bwd" in q:
            parts.append(f"fwd+bwd {q['speedup_fwd_bwd']:.1f}x")
        mem = r.get("peak_rss_gb", r.get("peak_gb"))
        lines.append(
            f"| {r['config']} | {r['impl']} | {_fmt(r.get('fwd_bwd_s'))} | {_fmt(r.get('step_img_s'))} | "
            f"{_fmt(r.get('alpha2_s'))} | {_fmt(mem)} | {', '.join(parts) or '-'} | "
            f"{_fmt(q.get('memory_ratio'))} | {r['load_before']:.1f}-{r['load_after']:.1f} |")
    return "\n".join(lines)


def official_table() -> str:
    lines = ["| config | fwd+bwd s | step img/s | 2nd-order alpha step s | peak RSS GB |", "|---|---|---|---|---|"]
    for c in CONFIGS.values():
        o = c.official
        lines.append(f"| {c.name} | {_fmt(o.get('fwd_bwd_s'))} | {_fmt(o.get('step_img_s'))} | "
                     f"{_fmt(o.get('alpha2_s'))} | {_fmt(o.get('peak_rss_gb'))} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--only", nargs="*", choices=sorted(CONFIGS), help="configurations to run (default: all)")
    p.add_argument("--impl", nargs="*", default=list(IMPLS), help="implementations (default: fast reference)")
    p.add_argument("--quick", action="store_true",
                   help="smoke test in seconds: tiny sizes (C=4), batch 2, 8x8 inputs, 1 repeat, nb201 unless --only")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--device", default="auto")
    p.add_argument("--json", type=Path, help="write the rows as JSON here")
    p.add_argument("--tune-malloc", action="store_true", help="glibc mallopt in the workers (see tune_malloc)")
    p.add_argument("--ablation", action="store_true", help="DARTS-space fwd+bwd of the ablation variants")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--variant", default="fast", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.quick:
        args.repeats = 1
        args.only = args.only or ["nb201"]
    if args.worker:
        print(json.dumps(worker(args)))
        return 0
    rows = []
    if args.ablation:
        jobs = [("darts", v, True) for v in ABLATION]
    else:
        jobs = [(name, impl, False) for name in (args.only or list(CONFIGS)) for impl in args.impl]
    for name, impl, abl in jobs:
        t = time.perf_counter()
        row = measure(name, impl, args, abl)
        row["wall_s"] = time.perf_counter() - t
        rows.append(row)
        print(f"{name:10s} {impl:24s} done in {row['wall_s']:.0f} s: "
              f"{ {k: round(v, 3) for k, v in row.items() if isinstance(v, float)} }", file=sys.stderr, flush=True)
    print(table(rows))
    print("\nofficial code (2-core machine, from the issue):\n" + official_table())
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "official": {k: c.official for k, c in CONFIGS.items()},
                                         "ratios": [dict(config=r["config"], impl=r["impl"], **ratios(r))
                                                    for r in rows if "error" not in r]}, indent=2))
    return 1 if any("error" in r for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
