"""The study's plots (PNG bytes; the command writes them next to the report).

Matplotlib is imported inside the functions and used through its object API on an Agg canvas (no global
backend). Every figure has a title, axis labels and a legend, so it reads without the code:

* :func:`accuracy_curves`: accuracy per search epoch per method (mean over seeds, seeds faint), with the
  random baseline as horizontal lines when the metric is comparable to it;
* :func:`final_accuracy`: final accuracy of every run per (method, selection) with mean ± std, and the
  random samples / exact space mean;
* :func:`alpha_trajectories`: softmax(alpha) per edge over the epochs of one search run;
* :func:`epoch_curves`: any per-epoch indicator per method (skip count, Hessian eigenvalue).
"""
from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from typing import Any

Curve = Sequence[tuple[int, float]]  # (epoch number starting at 1, value)
DPI = 110


def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    return buf.getvalue()


def _colors(labels: Sequence[str]) -> dict[str, Any]:
    from matplotlib import colormaps

    cmap = colormaps["tab10"]
    return {label: cmap(i % 10) for i, label in enumerate(labels)}


def mean_curve(curves: Sequence[Curve]) -> list[tuple[int, float]]:
    """Per epoch, the mean over the curves that have a finite value at that epoch."""
    by_epoch: dict[int, list[float]] = {}
    for curve in curves:
        for epoch, value in curve:
            if value is not None and math.isfinite(value):
                by_epoch.setdefault(int(epoch), []).append(float(value))
    return [(e, sum(v) / len(v)) for e, v in sorted(by_epoch.items())]


def epoch_curves(curves: Mapping[str, Sequence[Curve]], *, title: str, ylabel: str,
                 hlines: Mapping[str, float] | None = None, integer_y: bool = False) -> bytes:
    """One line per method (mean over its runs) with each run's curve faint behind it."""
    fig = _figure(7.5, 4.2)
    ax = fig.add_subplot(1, 1, 1)
    colors = _colors(list(curves))
    for label, runs in curves.items():
        for curve in runs:
            if curve:
                ax.plot([e for e, _ in curve], [v for _, v in curve], color=colors[label], alpha=0.25, lw=1)
        mean = mean_curve(runs)
        if mean:
            n = sum(1 for c in runs if c)
            ax.plot([e for e, _ in mean], [v for _, v in mean], color=colors[label], lw=2.2, marker="o", ms=3,
                    label=f"{label} (mean of {n} run{'s' if n != 1 else ''})")
    for i, (name, value) in enumerate((hlines or {}).items()):
        ax.axhline(value, color="black", ls=("--", ":", "-.")[i % 3], lw=1.2, label=name)
    ax.set_title(title)
    ax.set_xlabel("search epoch")
    ax.set_ylabel(ylabel)
    from matplotlib.ticker import MaxNLocator

    if integer_y:
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    return _png(fig)


def accuracy_curves(curves: Mapping[str, Sequence[Curve]], *, metric: str, dataset: str,
                    hlines: Mapping[str, float] | None = None) -> bytes:
    """Accuracy per epoch; ``metric`` says which (table accuracy of the derived arch, or supernet val acc)."""
    return epoch_curves(curves, title=f"Accuracy during search ({dataset})\n{metric}", ylabel="accuracy (%)",
                        hlines=hlines)


def final_accuracy(points: Mapping[str, Sequence[float]], *, random_points: Sequence[float],
                   space_mean: float | None, metric: str, dataset: str) -> bytes:
    """Each run's final accuracy per (method, selection) as dots, with mean ± std bars; the random sample
    and the exact space mean (when known) for comparison."""
    from nascli.bench.stats import mean_std

    labels = list(points) + ["random archs"]
    fig = _figure(max(5.0, 1.3 * len(labels) + 2), 4.4)
    ax = fig.add_subplot(1, 1, 1)
    colors = _colors(labels)
    values = [list(points[k]) for k in points] + [list(random_points)]
    for i, (label, vals) in enumerate(zip(labels, values)):
        if not vals:
            ax.text(i, 0.5, "no successful run", rotation=90, ha="center", va="bottom", fontsize=8,
                    transform=ax.get_xaxis_transform())
            continue
        jitter = [(k - (len(vals) - 1) / 2) * 0.06 for k in range(len(vals))]
        ax.scatter([i + j for j in jitter], vals, color=colors[label], s=22, zorder=3, alpha=0.8)
        mean, std = mean_std(vals)
        ax.errorbar([i + 0.28], [mean], yerr=[std], fmt="D", color="black", ms=5, capsize=4, zorder=4)
    if space_mean is not None:
        ax.axhline(space_mean, color="gray", ls="--", lw=1.2,
                   label=f"exact mean over the whole space ({space_mean:.2f})")
        ax.legend(fontsize=8, loc="best")
    ax.set_xticks(range(len(labels)))
    ax.set_xticklabels(labels, rotation=20, ha="right", fontsize=8)
    ax.set_ylabel("final accuracy (%)")
    ax.set_title(f"Final {metric} of the derived archs ({dataset})\ndots = runs, ◆ = mean ± std")
    ax.grid(alpha=0.3, axis="y")
    return _png(fig)


def alpha_trajectories(epochs: Sequence[int], alphas: Sequence[Mapping[str, Sequence[Sequence[float]]]],
                       edge_names: Mapping[str, Sequence[str]], ops: Sequence[str], *, title: str) -> bytes:
    """softmax(alpha) of every op on every edge against the epoch: one panel per (cell type, edge).

    ``alphas[i][cell_type][edge][op]`` is the probability after epoch ``epochs[i]``. A row with another number
    of choices than ``ops`` (a level of its own, e.g. sisr_trilevel's network and kernel levels) names its
    choices ``choice 0..n-1``."""
    panels = [(ct, k) for ct in edge_names for k in range(len(edge_names[ct]))]
    cols = min(len(panels), 6 if len(panels) > 8 else 3)
    rows = math.ceil(len(panels) / cols)
    fig = _figure(3.2 * cols, 2.4 * rows + 0.8)
    from matplotlib import colormaps
    from matplotlib.ticker import MaxNLocator

    cmap = colormaps["tab10"]
    op_colors = {op: cmap(i % 10) for i, op in enumerate(ops)}
    values = [v for a in alphas for ct in edge_names for row in a[ct] for v in row]
    uniform = 1.0 / len(ops)
    low, high = min(values + [uniform]), max(values + [uniform])
    pad = max(0.1 * (high - low), 0.002)
    zoomed = high - low < 0.5  # near-uniform alphas: zoom in (shared range) so the ranking stays visible
    handles = {}
    for p, (ct, k) in enumerate(panels):
        ax = fig.add_subplot(rows, cols, p + 1)
        width = len(alphas[0][ct][k])
        names = list(ops) if width == len(ops) else [f"choice {o}" for o in range(width)]
        for o, op in enumerate(names):
            ys = [a[ct][k][o] for a in alphas]
            (line,) = ax.plot(epochs, ys, color=op_colors.get(op, cmap(o % 10)), lw=1.6, marker="o", ms=2)
            handles[op] = line
        name = edge_names[ct][k]
        ax.set_title(name if len(edge_names) == 1 else f"{ct}: {name}", fontsize=9)
        ax.set_ylim(*((max(0.0, low - pad), min(1.0, high + pad)) if zoomed else (0.0, 1.0)))
        ax.axhline(1.0 / width, color="gray", ls=":", lw=1)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        if p % cols == 0:
            ax.set_ylabel("softmax(α)")
        if p >= len(panels) - cols:
            ax.set_xlabel("search epoch")
    fig.suptitle(title + ("\n(y axis zoomed to the range of the values; dotted: uniform 1/|ops|)" if zoomed
                          else "\n(dotted: uniform 1/|ops|)"))
    fig.legend(list(handles.values()), list(handles), loc="outside lower center", ncol=min(len(handles), 8),
               fontsize=8)
    return _png(fig)
