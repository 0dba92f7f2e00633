#!/usr/bin/env python
"""How accurate is float32 BatchNorm in each memory layout on this torch build? (docs/SPEED.md, channels-last)

For each tensor shape, a float64 input ``x`` is the reference. Training-mode BatchNorm (no affine, momentum 1,
so the running buffers become the batch statistics) runs in float64, then in float32 on ``x.float()`` once in
NCHW (contiguous) and once in NHWC (``channels_last``). The script reports the largest absolute error against
the float64 result of:

* ``out``: the normalised output ``(x - mean_c) / sqrt(var_c + eps)``;
* ``mean``: the running mean (= the batch mean of every channel);
* ``var``: the running variance (= the unbiased batch variance of every channel).

    python scripts/bn_layout_accuracy.py              # the shapes of docs/SPEED.md, 1 thread
    python scripts/bn_layout_accuracy.py --quick --json out.json

``--speed`` times instead one forward + backward of a channels-last, training-mode BatchNorm with a per-channel
weight (what the fast cells run) three ways, at the shapes of the NB201 and PC-DARTS (K=4) cells, 2 threads:

* ``nhwc``: ``F.batch_norm`` on the channels-last tensor (what the cells do);
* ``via_nchw``: converted to NCHW, normalised there, converted back with ``contiguous()``, whose backward passes
  the channels-last gradient to the NCHW BatchNorm backward unchanged (a mixed-layout kernel);
* ``via_nchw_relayout``: the same round trip with ``nascli.spaces.layout.relayout``, whose backward converts the
  gradient too (what ``search_fast.batch_norm`` runs for at most ``FEW_CHANNELS`` channels);
* ``by_hand``: ``var_mean`` over the (N*H*W, C) view of the NHWC storage, then ``(x - mean) * w / std``.

    python scripts/bn_layout_accuracy.py --speed --threads 2
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

#: (batch, channels, height, width, mean offset): the NB201 search cells' tensors at batch 64 (C=16 at 32x32,
#: C=64 at 8x8), a shifted input (a large mean makes the variance sum cancel more), and PC-DARTS' batch 256.
SHAPES = ((64, 16, 32, 32, 0.0), (64, 16, 32, 32, 3.0), (64, 64, 8, 8, 0.0), (256, 16, 16, 16, 1.0))
QUICK_SHAPES = ((8, 4, 8, 8, 0.0), (8, 4, 8, 8, 3.0))
LAYOUTS = {"nchw": torch.contiguous_format, "nhwc": torch.channels_last}


def batch_norm_stats(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Training-mode BatchNorm of ``x``: (output, running mean, running variance) after one update with
    momentum 1 from zeros / ones, i.e. the batch mean and the unbiased batch variance per channel."""
    mean = torch.zeros(x.shape[1], dtype=x.dtype)
    var = torch.ones(x.shape[1], dtype=x.dtype)
    out = F.batch_norm(x, mean, var, training=True, momentum=1.0)
    return out, mean, var


def measure(shape: tuple[int, int, int, int, float], seed: int = 0) -> dict:
    """Max absolute errors of float32 BatchNorm in each layout against float64, for one input shape."""
    *dims, offset = shape
    gen = torch.Generator().manual_seed(seed)
    x64 = torch.randn(*dims, dtype=torch.float64, generator=gen) * 2.0 + offset
    ref = batch_norm_stats(x64)
    row: dict = {"shape": list(dims), "offset": offset}
    for name, layout in LAYOUTS.items():
        got = batch_norm_stats(x64.float().contiguous(memory_format=layout))
        for what, a, b in zip(("out", "mean", "var"), got, ref):
            row[f"{name}_{what}_err"] = float((a.double() - b).abs().max())
    return row


#: (N, C, H, W) of the --speed timing: PC-DARTS K=4 op inputs at the three stages (C/4 channels), NB201's
SPEED_SHAPES = ((64, 4, 32, 32), (64, 8, 16, 16), (64, 16, 8, 8), (64, 16, 32, 32), (64, 32, 16, 16))
QUICK_SPEED_SHAPES = ((4, 4, 8, 8),)


def _bn_nhwc(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    return F.batch_norm(x, None, None, w, None, True)


def _bn_via_nchw(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    return F.batch_norm(x.contiguous(), None, None, w, None, True).contiguous(memory_format=torch.channels_last)


def _bn_via_nchw_relayout(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    from nascli.spaces.layout import relayout
    y = F.batch_norm(relayout(x, torch.contiguous_format), None, None, w, None, True)
    return relayout(y, torch.channels_last)


def _bn_by_hand(x: torch.Tensor, w: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """y = (x - mean_c) * w_c / sqrt(var_c + eps) with the biased batch variance, on the (N*H*W, C) view."""
    n, c, h, wd = x.shape
    rows = x.permute(0, 2, 3, 1).reshape(-1, c)
    var, mean = torch.var_mean(rows, 0, correction=0)
    return ((rows - mean) * (w * torch.rsqrt(var + eps))).view(n, h, wd, c).permute(0, 3, 1, 2)


def time_layouts(shape: tuple[int, int, int, int], repeats: int) -> dict:
    """Median ms of forward + backward of each way (module docstring) for one shape."""
    import statistics
    import time

    gen = torch.Generator().manual_seed(0)
    x = torch.randn(*shape, generator=gen).contiguous(memory_format=torch.channels_last).requires_grad_()
    w = torch.rand(shape[1], generator=gen).requires_grad_()
    grad = torch.randn(*shape, generator=gen).contiguous(memory_format=torch.channels_last)
    row: dict = {"shape": list(shape)}
    for name, fn in (("nhwc", _bn_nhwc), ("via_nchw", _bn_via_nchw), ("via_nchw_relayout", _bn_via_nchw_relayout),
                     ("by_hand", _bn_by_hand)):
        times = []
        for i in range(repeats + 2):  # two warm-ups
            t = time.perf_counter()
            fn(x, w).backward(grad)
            if i >= 2:
                times.append(time.perf_counter() - t)
        row[f"{name}_ms"] = 1000 * statistics.median(times)
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="two tiny shapes (a smoke test, not a measurement)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", type=Path, help="also write the rows here")
    parser.add_argument("--speed", action="store_true", help="time the channels-last BN ways instead (docstring)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.speed:
        rows = [time_layouts(s, 3 if args.quick else 30) for s in (QUICK_SPEED_SHAPES if args.quick else SPEED_SHAPES)]
        print(f"torch {torch.__version__}, {args.threads} thread(s): channels-last BatchNorm forward + backward, "
              "median ms")
        print("| shape (N, C, H, W) | NHWC | via NCHW | via NCHW, relayout | by hand |\n|---|---|---|---|---|")
        for r in rows:
            print(f"| {tuple(r['shape'])} | {r['nhwc_ms']:.3f} | {r['via_nchw_ms']:.3f} | "
                  f"{r['via_nchw_relayout_ms']:.3f} | {r['by_hand_ms']:.3f} |")
        if args.json:
            args.json.write_text(json.dumps({"torch": torch.__version__, "threads": args.threads, "rows": rows},
                                            indent=1))
        return 0
    rows = [measure(s) for s in (QUICK_SHAPES if args.quick else SHAPES)]
    print(f"torch {torch.__version__}, {args.threads} thread(s): max |float32 - float64| of training-mode BatchNorm")
    print("| shape (N, C, H, W) | offset | out NCHW | out NHWC | mean NCHW | mean NHWC | var NCHW | var NHWC |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        cells = [f"{r[f'{lay}_{w}_err']:.1e}" for w in ("out", "mean", "var") for lay in LAYOUTS]
        print(f"| {tuple(r['shape'])} | {r['offset']:g} | " + " | ".join(cells) + " |")
    if args.json:
        args.json.write_text(json.dumps({"torch": torch.__version__, "threads": args.threads, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
