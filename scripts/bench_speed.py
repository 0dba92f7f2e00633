#!/usr/bin/env python
"""Speed of the search supernets: impl=fast against impl=reference, measured alternately in one run.

Per configuration of the "Fast supernets" issue (random 32x32 inputs, 10 classes, softmax-family mixers)
and per implementation, one fresh subprocess (so that its RSS high-water mark is its own) measures, as the
median of ``--repeats`` runs after one warm-up run, the figures below. The implementations alternate
(fast, reference, fast, reference, ... for ``--rounds`` rounds), so a change in the machine's load hits
both; the ratio column is the median over rounds of fast/reference within a round, and the table's
figures are each implementation's median over rounds.

* ``fwd_bwd_s``: one forward + backward of the cross-entropy loss w.r.t. weights and alphas;
* ``step_img_s``: one first-order search step through the real SearchOptimizer (``bilevel``: a weight
  step and an alpha step, each with its own batch, in the space's ``search_defaults`` order) as images of
  the training batch per second (batch / step time, the unit of the official figures);
* ``alpha2_s``: for the second-order configuration, one unrolled alpha step (``bilevel_2nd.arch_step``:
  4 forward/backward passes) instead;
* ``peak_rss_gb``: the process's peak RSS (``ru_maxrss``) over everything it ran; on CUDA
  ``torch.cuda.max_memory_allocated`` (bf16 autocast, channels_last, synchronised timers).

``--threads`` (default 2) CPU threads, like the 2-core machine of the official figures.

The official implementations cannot be installed here (no internet; their code is not ours to copy), so
their figures are not measured by this script: ``official_table()`` prints the ones the performance issue
quotes with where and when they were measured, never a ratio computed against them.

    python scripts/bench_speed.py                      # full table (slow on CPU: run it once)
    python scripts/bench_speed.py --only nb201 pc_darts --rounds 3 --markdown docs/speed_table.md
    python scripts/bench_speed.py --quick              # smoke test in seconds: nb201 only, tiny sizes, 1 repeat
    python scripts/bench_speed.py --quick --only darts_2nd pc_darts   # the same tiny sizes for other configs
    python scripts/bench_speed.py --only darts --json out.json
    python scripts/bench_speed.py --ablation           # what each idea of impl=fast buys (DARTS space)
    python scripts/bench_speed.py --only nb201 --impl reference reference+channels_last
    python scripts/bench_speed.py --profile --only nb201 pc_darts   # where the fast step's time goes, its conv floor
    python scripts/bench_speed.py --pool-kernels      # avg_pool2d against the depthwise-sum average pool
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
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Config:
    """One benchmark configuration and the official code's figures for it (see :data:`OFFICIAL_SOURCE`)."""

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
#: where and when the official figures of CONFIGS were measured (not by this script)
OFFICIAL_SOURCE = ("official code as quoted by the \"Fast supernets\" issue (2-core machine, date not given); "
                   "the performance issue re-measured official against nascli fast in one run on a 2-core machine "
                   "of this project's kind (2026-11-30): step time NB201 6.25 s vs 4.50 s (1.39x), DARTS space "
                   "37.6 s vs 10.2 s (3.70x), PC-DARTS 12.7 s vs 7.7 s (1.65x)")
# --quick: the smallest configuration of each space (a smoke test that the script still runs, not a
# measurement).
QUICK_SIZES = {"nb201": {"C": 4, "N": 1}, "darts": {"C": 4, "layers": 3}}
QUICK_BATCH, QUICK_IMAGE = 2, 8
IMPLS = ("fast", "reference")
# An implementation name may carry modifiers, "<impl>+<modifier>+...": channels_last (model and inputs in
# NHWC, what impl=fast does internally), nchw (the NB201 fast cell kept in NCHW), avg_pool2d (torch's average
# pooling in the fast cells instead of nascli/spaces/pooling.py), stack_shuffle (the PC-DARTS channel shuffle
# with autograd's own backward), contiguous_relayout (search_fast.batch_norm's few-channel NCHW round trip with
# autograd's own backward), plain_depthwise
# (impl=fast with oneDNN's own depthwise backward), malloc (tune_malloc in the worker), compile (torch.compile of the supernet: the fwd+bwd graph and the
# step's two graphs, one per frozen side, compile in each job's warm-up call, reported as *_first_s).
# --ablation runs these on the DARTS space: what each idea buys.
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
    import torch.nn.functional as F
    unknown = set(modifiers) - {"channels_last", "nchw", "plain_depthwise", "malloc", "compile", "avg_pool2d",
                                "stack_shuffle", "contiguous_relayout"}
    if unknown:
        raise ValueError(f"unknown implementation modifiers {sorted(unknown)}")
    if "channels_last" in modifiers:
        net = net.to(memory_format=torch.channels_last)
        batches = [(x.contiguous(memory_format=torch.channels_last), y) for x, y in batches]
    if "nchw" in modifiers:  # the NB201 fast cell on NCHW tensors (its wide per-node convs; before 2026-12-01)
        import nascli.spaces.nb201.cells as nb201_cells
        nb201_cells.FastSearchCell.memory_format = None
    if "avg_pool2d" in modifiers:  # torch's average-pooling kernels in the fast cells (before 2026-12-01 14:30)
        import nascli.spaces.pooling as pooling
        pooling.avg_pool_3x3 = lambda x, stride=1: F.avg_pool2d(x, 3, stride, 1, count_include_pad=False)
    if "stack_shuffle" in modifiers:  # the PC-DARTS shuffle with autograd's own backward (strided gradients)
        import nascli.search.edge_parts.partial_channels as pc
        pc.shuffle_into = pc.shuffle_copy
    if "contiguous_relayout" in modifiers:  # the few-channel BN's layout copies with autograd's own backward
        import nascli.spaces.darts.search_fast as sf
        sf.relayout = lambda x, memory_format: x.contiguous(memory_format=memory_format)
    if "plain_depthwise" in modifiers:
        import nascli.spaces.darts.search_fast as sf
        sf.depthwise_conv = _plain_depthwise
    return net, batches


def _setup(args: argparse.Namespace) -> SimpleNamespace:
    """The worker's supernet, SearchOptimizer, batches and timed jobs for ``args.worker``/``args.variant``."""
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
    if "compile" in modifiers:  # torch.compile (inductor); the warm-up call of each job includes its compilation
        net = torch.compile(net)
    defaults = OmegaConf.to_container(OmegaConf.load(CONF_DIR / "space" / f"{cfg.space}.yaml").search_defaults)
    opt_name = "bilevel_2nd" if cfg.second_order else "bilevel"
    opt = SEARCH_OPTIMIZERS.get(opt_name)(net, device=device, nesterov=defaults["nesterov"],
                                          weight_decay=defaults["weight_decay"],
                                          **({} if cfg.second_order else {"order": defaults["first_order_update"]}))
    opt.on_epoch_start(0, 50)
    net.train()

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
    return SimpleNamespace(cfg=cfg, device=device, jobs=jobs, batch_size=batch_size, image=image, sizes=sizes,
                           mixer=mixer)


def _sync(device) -> None:
    import torch
    if device.type == "cuda":
        torch.cuda.synchronize()


def worker(args: argparse.Namespace) -> dict:
    import torch

    run = _setup(args)
    device = run.device

    def timed(fn) -> tuple[float, float]:
        _sync(device)
        t, c = time.perf_counter(), time.process_time()
        fn()
        _sync(device)
        return time.perf_counter() - t, time.process_time() - c

    out: dict = {"config": run.cfg.name, "impl": args.variant, "threads": args.threads, "device": str(device),
                 "batch": run.batch_size, "image": run.image, "sizes": run.sizes, "quick": args.quick,
                 "mixer": run.mixer, "load_before": os.getloadavg()[0]}
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    for name, fn in run.jobs.items():
        out[name.replace("_s", "_first_s")] = timed(fn)[0]  # warm-up (with "compile": its compile time)
        runs = [timed(fn) for _ in range(args.repeats)]
        out[name] = statistics.median(r[0] for r in runs)
        out[name.replace("_s", "_runs")] = [round(r[0], 3) for r in runs]
        out[name.replace("_s", "_cpu_s")] = statistics.median(r[1] for r in runs)
    if "step_s" in out:
        out["step_img_s"] = run.batch_size / out["step_s"]
    out["load_after"] = os.getloadavg()[0]
    if device.type == "cuda":
        out["peak_gb"] = torch.cuda.max_memory_allocated() / 1e9
    else:
        out["peak_rss_gb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9
    return out


# ------------------------------------------------------------------------------------------- profile
#: op categories of --profile: the first whose test matches an op name (torch.profiler's key) takes its time
OP_CATEGORIES = (
    ("conv, backward kernels", lambda n: "convolution_backward" in n),
    ("conv, forward kernels", lambda n: "convolution" in n or n.startswith("aten::conv")),
    ("batch norm backward", lambda n: "batch_norm" in n and "backward" in n),
    ("batch norm forward", lambda n: "batch_norm" in n),
    ("pooling", lambda n: "pool" in n),
    ("matmul", lambda n: n in ("aten::mm", "aten::addmm", "aten::bmm", "aten::matmul", "aten::linear")),
    ("copies and layout", lambda n: n in ("aten::copy_", "aten::clone", "aten::contiguous", "aten::_to_copy",
                                          "aten::cat", "aten::index", "aten::index_put_", "aten::fill_",
                                          "aten::zero_", "aten::zeros", "aten::empty", "aten::empty_like",
                                          "aten::empty_strided", "aten::resize_")),
    ("elementwise and reductions", lambda n: n.startswith("aten::")),
    ("autograd and optimizer bookkeeping", lambda n: True),
)
CONV_OPS = ("conv, forward kernels", "conv, backward kernels")


def op_category(name: str) -> str:
    """The :data:`OP_CATEGORIES` entry of a profiler op name."""
    return next(cat for cat, test in OP_CATEGORIES if test(name))


def conv_flops(fn) -> int:
    """Floating-point operations of the convolutions (forward and backward; 2 per multiply-add) that ``fn()``
    runs, counted by torch.utils.flop_counter (the aten ops, so custom autograd functions count too)."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return sum(v for op, v in counter.get_flop_counts().get("Global", {}).items() if "convolution" in str(op))


def matmul_gflops(threads: int, size: int = 2048, repeats: int = 5) -> float:
    """This machine's float32 matmul rate (GFLOP/s, 2 size^3 per product, best of ``repeats``): the ceiling a
    convolution's implicit GEMM can reach."""
    import torch

    torch.set_num_threads(threads)
    a, b = torch.randn(size, size), torch.randn(size, size)
    torch.mm(a, b)
    best = min(_timed_once(lambda: torch.mm(a, b)) for _ in range(repeats))
    return 2 * size ** 3 / best / 1e9


def _timed_once(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def profile_worker(args: argparse.Namespace) -> dict:
    """Per-op-category time of the search step (first order; the 2nd-order config: its alpha step) under
    torch.profiler over ``args.repeats`` calls after one warm-up, the step's conv FLOPs, and the step time those
    FLOPs would take at the machine's matmul rate (:func:`matmul_gflops`), a floor for the step."""
    from torch.profiler import ProfilerActivity, profile

    run = _setup(args)
    name = "alpha2_s" if "alpha2_s" in run.jobs else "step_s"
    fn = run.jobs[name]
    fn()  # warm-up
    flops = conv_flops(fn)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(args.repeats):
            fn()
        _sync(run.device)
    per_call: dict[str, float] = {}
    for e in prof.key_averages():
        cat = op_category(e.key)
        per_call[cat] = per_call.get(cat, 0.0) + e.self_cpu_time_total / 1e6 / args.repeats
    conv_s = sum(per_call.get(c, 0.0) for c in CONV_OPS)
    peak = matmul_gflops(args.threads)
    return {"config": run.cfg.name, "impl": args.variant, "threads": args.threads, "device": str(run.device),
            "batch": run.batch_size, "job": name[:-2], "repeats": args.repeats,
            "seconds_per_call": {c: per_call[c] for c, _ in OP_CATEGORIES if c in per_call},
            "conv_gflop": flops / 1e9, "conv_gflops_per_s": flops / 1e9 / conv_s if conv_s else None,
            "matmul_gflops_per_s": peak, "conv_floor_s": flops / 1e9 / peak, "load": os.getloadavg()[0]}


def profile_table(result: dict) -> str:
    """One --profile result as markdown: each category's seconds per call and share of the profiled op time."""
    total = sum(result["seconds_per_call"].values())
    lines = [f"**{result['config']}, impl={result['impl']}**: {result['job']} ({result['batch']} images), "
             f"{result['threads']} threads, {result['repeats']} calls profiled, load {result['load']:.1f}", "",
             "| op category | s per call | share |", "|---|---|---|"]
    for cat, sec in sorted(result["seconds_per_call"].items(), key=lambda kv: -kv[1]):
        lines.append(f"| {cat} | {sec:.3f} | {100 * sec / total:.1f}% |")
    lines.append(f"| all profiled ops | {total:.3f} | 100% |")
    rate = result["conv_gflops_per_s"]
    lines += ["", f"Convolutions: {result['conv_gflop']:.1f} GFLOP per call (forward and backward, "
                  f"torch.utils.flop_counter), run at {_fmt(rate, '.0f')} GFLOP/s; this machine's float32 matmul "
                  f"rate is {result['matmul_gflops_per_s']:.0f} GFLOP/s (2048x2048, best of 5), so the convolutions "
                  f"alone need at least {result['conv_floor_s']:.3f} s per call "
                  + (f"({result['batch'] / result['conv_floor_s']:.1f} img/s at most)." if result["job"] == "step"
                     else ".")]
    return "\n".join(lines)


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
    if args.profile:
        cmd.append("--profile")
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        return {"config": name, "impl": impl, "error": proc.stderr.strip().splitlines()[-1:]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


SPEED_KEYS = ("step_img_s", "fwd_bwd_s", "alpha2_s")
SETUP_KEYS = ("config", "impl", "threads", "device", "batch", "image", "sizes", "quick", "mixer")  # step: higher is better; the times: lower is better


def same_round_ratios(fast: dict, ref: dict) -> dict:
    """fast over reference within one round: speed-up of the step (img/s ratio), of fwd+bwd and of the
    2nd-order alpha step (time ratios, reference / fast), and fast's peak memory over reference's."""
    out = {}
    if "step_img_s" in fast and "step_img_s" in ref:
        out["speedup_step"] = fast["step_img_s"] / ref["step_img_s"]
    for key in ("fwd_bwd_s", "alpha2_s"):
        if key in fast and key in ref:
            out[f"speedup_{key[:-2]}"] = ref[key] / fast[key]
    mem = "peak_gb" if "peak_gb" in fast else "peak_rss_gb"
    if mem in fast and mem in ref:
        out["memory_ratio"] = fast[mem] / ref[mem]
    return out


def summarize(name: str, impl: str, runs: list[dict]) -> dict:
    """One row per (config, impl): each figure's median over the rounds, the per-round values kept."""
    ok = [r for r in runs if "error" not in r]
    if not ok:
        return {"config": name, "impl": impl, "error": runs[0].get("error")}
    row = {k: v for k, v in ok[0].items() if k in SETUP_KEYS}
    for key in (*SPEED_KEYS, "step_s", "peak_rss_gb", "peak_gb"):
        values = [r[key] for r in ok if key in r]
        if values:
            row[key] = statistics.median(values)
            row[f"{key}_rounds"] = [round(v, 3) for v in values]
    row["load_before"] = min(r["load_before"] for r in ok)
    row["load_after"] = max(r["load_after"] for r in ok)
    row["rounds"] = len(ok)
    return row


def round_ratios(fast_runs: list[dict], ref_runs: list[dict]) -> dict:
    """Median over rounds of :func:`same_round_ratios` (round i of fast with round i of reference)."""
    per_round = [same_round_ratios(f, r) for f, r in zip(fast_runs, ref_runs) if "error" not in f and "error" not in r]
    keys = {k for q in per_round for k in q}
    return {k: statistics.median(q[k] for q in per_round if k in q) for k in sorted(keys)}


def _fmt(v, spec=".2f") -> str:
    return "-" if v is None else format(v, spec)


def table(rows: list[dict], ratios: dict[str, dict]) -> str:
    """The measured rows; the last column is fast over reference in the same rounds (on fast's row)."""
    head = ("| config | impl | fwd+bwd s | step img/s | 2nd-order alpha step s | peak memory GB | "
            "fast vs reference, same rounds | load avg | rounds |")
    lines = [head, "|" + "---|" * 9]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['config']} | {r['impl']} | error: {r['error']} |" + " |" * 6)
            continue
        q = ratios.get(r["config"], {}) if r["impl"] == "fast" else {}
        parts = []
        if "speedup_step" in q:
            parts.append(f"step {q['speedup_step']:.2f}x")
        if "speedup_fwd_bwd" in q:
            parts.append(f"fwd+bwd {q['speedup_fwd_bwd']:.2f}x")
        if "speedup_alpha2" in q:
            parts.append(f"alpha step {q['speedup_alpha2']:.2f}x")
        if "memory_ratio" in q:
            parts.append(f"memory {q['memory_ratio']:.2f}x")
        mem = r.get("peak_rss_gb", r.get("peak_gb"))
        lines.append(
            f"| {r['config']} | {r['impl']} | {_fmt(r.get('fwd_bwd_s'))} | {_fmt(r.get('step_img_s'))} | "
            f"{_fmt(r.get('alpha2_s'))} | {_fmt(mem)} | {', '.join(parts) or '-'} | "
            f"{r['load_before']:.1f}-{r['load_after']:.1f} | {r['rounds']} |")
    return "\n".join(lines)


def official_table() -> str:
    lines = [f"Official code, not measured by this script: {OFFICIAL_SOURCE}.", "",
             "| config | fwd+bwd s | step img/s | 2nd-order alpha step s | peak RSS GB |", "|---|---|---|---|---|"]
    for c in CONFIGS.values():
        o = c.official
        lines.append(f"| {c.name} | {_fmt(o.get('fwd_bwd_s'))} | {_fmt(o.get('step_img_s'))} | "
                     f"{_fmt(o.get('alpha2_s'))} | {_fmt(o.get('peak_rss_gb'))} |")
    return "\n".join(lines)


def machine_line(args: argparse.Namespace) -> str:
    """Where and when: date (UTC), CPUs this process may use, torch version, threads, device."""
    import platform

    import torch

    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    return (f"{when}; {platform.processor() or platform.machine()}, {cpus} CPUs available, torch {torch.__version__}, "
            f"{args.threads} threads, device {args.device}")


#: (N, C, H, W, stride) of the 3x3 average pools the search supernets run at batch 64: NB201 (C=16, stride 1), the
#: DARTS space (C=16; reduction cells at stride 2) and PC-DARTS (K=4: a quarter of the channels)
POOL_SHAPES = ((64, 16, 32, 32, 1), (64, 32, 16, 16, 1), (64, 64, 8, 8, 1), (64, 16, 32, 32, 2), (64, 32, 16, 16, 2),
               (64, 4, 32, 32, 1), (64, 4, 32, 32, 2), (64, 8, 16, 16, 1), (64, 8, 16, 16, 2), (64, 16, 8, 8, 1))
QUICK_POOL_SHAPES = ((2, 3, 16, 16, 1), (2, 3, 8, 8, 2))


def pool_kernels(args: argparse.Namespace) -> list[dict]:
    """Forward + backward (input gradient) of 3x3 average pooling, ``count_include_pad=False``, on channels-last
    CPU tensors: torch's ``avg_pool2d`` against nascli's depthwise sum (nascli/spaces/pooling.py), alternating,
    median of ``args.repeats`` (at least 5) calls each after 3 warm-ups; which one nascli runs at each shape."""
    import torch
    import torch.nn.functional as F

    from nascli.spaces import pooling

    torch.set_num_threads(args.threads)
    rows = []
    for n, c, h, w, stride in (QUICK_POOL_SHAPES if args.quick else POOL_SHAPES):
        x = torch.randn(n, c, h, w).contiguous(memory_format=torch.channels_last).requires_grad_()
        ways = {"avg_pool2d": lambda t: F.avg_pool2d(t, 3, stride, 1, count_include_pad=False),
                "depthwise_sum": lambda t: pooling.depthwise_sum_avg_pool_3x3(t, stride)}
        grad = torch.ones_like(ways["avg_pool2d"](x))
        calls = {k: (lambda f=f: f(x).backward(grad)) for k, f in ways.items()}
        for f in calls.values():
            for _ in range(3):
                f()
        times: dict[str, list[float]] = {k: [] for k in calls}
        for _ in range(max(args.repeats, 5)):
            for k, f in calls.items():
                times[k].append(_timed_once(f))
        ms = {k: 1e3 * statistics.median(v) for k, v in times.items()}
        rows.append({"shape": [n, c, h, w], "stride": stride, "avg_pool2d_ms": ms["avg_pool2d"],
                     "depthwise_sum_ms": ms["depthwise_sum"],
                     "nascli_runs": "depthwise_sum" if pooling.uses_depthwise_sum(x, stride) else "avg_pool2d"})
    return rows


def pool_kernels_table(rows: list[dict]) -> str:
    lines = ["| shape (N, C, H, W) | stride | avg_pool2d ms | depthwise sum ms | avg_pool2d / depthwise sum | nascli runs |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {tuple(r['shape'])} | {r['stride']} | {r['avg_pool2d_ms']:.2f} | {r['depthwise_sum_ms']:.2f} | "
                     f"{r['avg_pool2d_ms'] / r['depthwise_sum_ms']:.2f}x | {r['nascli_runs']} |")
    return "\n".join(lines)


def report(args: argparse.Namespace, argv: list[str] | None, body: str, data: dict) -> None:
    """Print the command, the machine line and ``body``; the same text to ``--markdown``, and the machine line
    with ``data`` to ``--json``."""
    machine = machine_line(args)
    command = "python scripts/bench_speed.py " + " ".join(argv if argv is not None else sys.argv[1:])
    text = f"`{command.strip()}`\n\nMeasured {machine}.\n\n{body}\n"
    print(text)
    if args.markdown:
        args.markdown.write_text(text)
    if args.json:
        args.json.write_text(json.dumps({"machine": machine, **data}, indent=2))


def profile_main(args: argparse.Namespace, argv: list[str] | None) -> int:
    """--profile: one worker per (config, impl), each printed as :func:`profile_table`."""
    results = [measure(name, impl, args) for name in (args.only or list(CONFIGS)) for impl in args.impl]
    report(args, argv, "\n\n".join(f"{r['config']} {r['impl']}: error: {r['error']}" if "error" in r
                                     else profile_table(r) for r in results), {"profiles": results})
    return 1 if any("error" in r for r in results) else 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--only", nargs="*", choices=sorted(CONFIGS), help="configurations to run (default: all)")
    p.add_argument("--impl", nargs="*", default=None,
                   help="implementations (default: fast reference; with --profile: fast)")
    p.add_argument("--quick", action="store_true",
                   help="smoke test in seconds: tiny sizes (C=4), batch 2, 8x8 inputs, 1 repeat, nb201 unless --only")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--rounds", type=int, default=None,
                   help="alternate the implementations this many times per configuration (fast, reference, ...; "
                        "default 2, 1 with --quick)")
    p.add_argument("--markdown", type=Path, help="also write the table, its command and machine line here")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--device", default="auto")
    p.add_argument("--json", type=Path, help="write the rows as JSON here")
    p.add_argument("--tune-malloc", action="store_true", help="glibc mallopt in the workers (see tune_malloc)")
    p.add_argument("--ablation", action="store_true", help="DARTS-space fwd+bwd of the ablation variants")
    p.add_argument("--profile", action="store_true",
                   help="instead of timing: where the step's time goes (torch.profiler, per op category), its conv "
                        "FLOPs and the floor they set at this machine's matmul rate; --repeats calls are profiled")
    p.add_argument("--pool-kernels", action="store_true",
                   help="instead: time torch's avg_pool2d against nascli's depthwise-sum average pool, forward and "
                        "backward, at the supernets' pooling shapes (nascli/spaces/pooling.py)")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--variant", default="fast", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.quick:
        args.repeats = 1
        args.only = args.only or ["nb201"]
    if args.rounds is None:
        args.rounds = 1 if args.quick else 2
    if args.impl is None:
        args.impl = ["fast"] if args.profile else list(IMPLS)
    if args.worker:
        print(json.dumps((profile_worker if args.profile else worker)(args)))
        return 0
    if args.profile:
        return profile_main(args, argv)
    if args.pool_kernels:
        rows = pool_kernels(args)
        report(args, argv, pool_kernels_table(rows), {"pool_kernels": rows})
        return 0
    if args.ablation:
        jobs = [("darts", list(ABLATION), True)]
    else:
        jobs = [(name, list(args.impl), False) for name in (args.only or list(CONFIGS))]
    rows, ratios, raw = [], {}, []
    for name, impls, abl in jobs:
        runs: dict[str, list[dict]] = {impl: [] for impl in impls}
        for rnd in range(args.rounds):
            for impl in impls:  # alternate: fast, reference, fast, reference, ...
                t = time.perf_counter()
                row = measure(name, impl, args, abl)
                row["wall_s"] = time.perf_counter() - t
                row["round"] = rnd
                runs[impl].append(row)
                raw.append(row)
                print(f"{name:10s} {impl:24s} round {rnd + 1} done in {row['wall_s']:.0f} s: "
                      f"{ {k: round(v, 3) for k, v in row.items() if isinstance(v, float)} }", file=sys.stderr,
                      flush=True)
        rows.extend(summarize(name, impl, runs[impl]) for impl in impls)
        if "fast" in runs and "reference" in runs:
            ratios[name] = round_ratios(runs["fast"], runs["reference"])
    report(args, argv, f"{table(rows, ratios)}\n\n{official_table()}",
           {"rows": rows, "ratios": ratios, "raw": raw, "official": {k: c.official for k, c in CONFIGS.items()},
            "official_source": OFFICIAL_SOURCE})
    return 1 if any("error" in r for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
