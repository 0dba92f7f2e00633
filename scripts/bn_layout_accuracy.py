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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="two tiny shapes (a smoke test, not a measurement)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
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
