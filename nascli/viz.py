"""Cell drawings (PNG) for every search space: a layered DAG with op names on the edges.

:func:`draw_cell` draws any small cell DAG; :func:`draw_arch` draws the cells of an architecture.

Each space builds its cells' graphs in ``SearchSpace.draw`` and calls :func:`draw_cell`:

* DARTS: ``normal.png`` and ``reduce.png`` with nodes ``c_{k-2}``, ``c_{k-1}``,
  the intermediate nodes ``0..3`` and the output ``c_{k}`` (concat edges unlabelled, dashed).
* NB201: ``cell.png`` with nodes
  ``0..3`` (0 the input, 3 the output); ``none`` edges are omitted.

Layout: a node's layer is the length of the longest path reaching it (or a given ``rank``), layers are
drawn left to right and the nodes of a layer are spread vertically. Each edge is the least bent arc
that keeps clear of the nodes it does not connect; each op label sits at the point along its edge that
overlaps no other label or node and crosses the fewest other edges. Matplotlib is imported inside the
functions and used through its object API with the Agg canvas, so no global backend is touched. Files
are written atomically (temporary file in the same directory, then rename).
"""
from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

_INPUT_COLOR = "#a6cee3"
_OUTPUT_COLOR = "#fdbf6f"
_NODE_COLOR = "#e0e0e0"
_OP_COLORS = {  # one colour per op family, so cells can be compared at a glance
    "skip_connect": "#1f78b4",
    "max_pool_3x3": "#33a02c",
    "avg_pool_3x3": "#b2df8a",
    "sep_conv_3x3": "#e31a1c",
    "sep_conv_5x5": "#fb9a99",
    "dil_conv_3x3": "#6a3d9a",
    "dil_conv_5x5": "#cab2d6",
    "nor_conv_1x1": "#ff7f00",
    "nor_conv_3x3": "#e31a1c",
    "none": "#999999",
}


def _layers(nodes: Sequence[str], edges: Sequence[tuple[str, str, str]]) -> dict[str, int]:
    """Longest-path layering of a DAG (raises ValueError on a cycle)."""
    preds: dict[str, set[str]] = {n: set() for n in nodes}
    for s, d, _ in edges:
        preds[d].add(s)
    layer: dict[str, int] = {}
    visiting: set[str] = set()

    def depth(n: str) -> int:
        if n in layer:
            return layer[n]
        if n in visiting:
            raise ValueError(f"cell graph has a cycle through node {n!r}")
        visiting.add(n)
        layer[n] = max((depth(p) + 1 for p in preds[n]), default=0)
        visiting.discard(n)
        return layer[n]

    for n in nodes:
        depth(n)
    return layer


def _positions(nodes: Sequence[str], layer: dict[str, int]) -> dict[str, tuple[float, float]]:
    by_layer: dict[int, list[str]] = {}
    for n in nodes:  # keep the caller's node order inside a layer
        by_layer.setdefault(layer[n], []).append(n)
    pos: dict[str, tuple[float, float]] = {}
    dx, dy = 3.4, 1.9
    for lyr, members in by_layer.items():
        k = len(members)
        for i, n in enumerate(members):
            pos[n] = (lyr * dx, ((k - 1) / 2 - i) * dy)
    return pos


def _atomic_savefig(fig: Any, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fig.savefig(fh, format="png", dpi=110, bbox_inches="tight")
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def draw_cell(path: str | os.PathLike[str], *, title: str, nodes: list[str],
              edges: list[tuple[str, str, str]], inputs: Sequence[str] | None = None,
              outputs: Sequence[str] | None = None, rank: dict[str, int] | None = None) -> None:
    """Draw one cell DAG to a PNG at ``path``.

    ``edges`` are ``(src_label, dst_label, op)``; an empty ``op`` draws an unlabelled dashed edge (e.g. the
    concat into a DARTS cell output). ``inputs``/``outputs`` name the nodes drawn as cell inputs/outputs;
    by default, nodes without incoming edges are inputs and nodes without outgoing edges are outputs.
    ``rank`` fixes the layer (column) of nodes instead of the longest-path layering.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Circle, FancyArrowPatch

    names = list(nodes)
    known = set(names)
    for s, d, _ in edges:
        for n in (s, d):
            if n not in known:
                raise ValueError(f"edge node {n!r} is not in nodes {names}")
    has_in = {d for _, d, _ in edges}
    has_out = {s for s, _, _ in edges}
    ins = set(inputs) if inputs is not None else {n for n in names if n not in has_in}
    outs = set(outputs) if outputs is not None else {n for n in names if n not in has_out and n in has_in}

    layer = dict(rank) if rank is not None else _layers(names, edges)
    missing = [n for n in names if n not in layer]
    if missing:
        raise ValueError(f"rank lacks nodes {missing}")
    pos = _positions(names, layer)
    xs = [p[0] for p in pos.values()] or [0.0]
    ys = [p[1] for p in pos.values()] or [0.0]
    xlim = (min(xs) - 1.3, max(xs) + 1.3)
    ylim = (min(ys) - 1.5, max(ys) + 1.5)
    unit = 0.9  # inches per data unit (aspect 1), so text sizes in data units are predictable
    fig = Figure(figsize=((xlim[1] - xlim[0]) * unit, (ylim[1] - ylim[0]) * unit + 0.4))
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0.0, 0.0, 1.0, (ylim[1] - ylim[0]) * unit / ((ylim[1] - ylim[0]) * unit + 0.4)))
    ax.set_aspect("equal")
    ax.axis("off")
    ax.set_xlim(*xlim)
    ax.set_ylim(*ylim)
    fig.suptitle(title, fontsize=12, fontweight="bold")

    radius = 0.42
    char_w = 8 * 0.6 / 72 / unit  # width of one 8 pt character in data units
    label_h = 8 * 1.6 / 72 / unit
    placed: list[tuple[float, float, float, float]] = []  # label boxes (x0, y0, x1, y1)

    def bezier(p1: tuple[float, float], p2: tuple[float, float], rad: float, t: float) -> tuple[float, float]:
        # matplotlib arc3: control point = midpoint + rad * (dy, -dx)
        mx, my = (p1[0] + p2[0]) / 2, (p1[1] + p2[1]) / 2
        cx, cy = mx + rad * (p2[1] - p1[1]), my - rad * (p2[0] - p1[0])
        return ((1 - t) ** 2 * p1[0] + 2 * t * (1 - t) * cx + t ** 2 * p2[0],
                (1 - t) ** 2 * p1[1] + 2 * t * (1 - t) * cy + t ** 2 * p2[1])

    def clearance(p1: tuple[float, float], p2: tuple[float, float], rad: float, s: str, d: str) -> float:
        others = [pos[n] for n in names if n not in (s, d)]
        if not others:
            return math.inf
        pts = [bezier(p1, p2, rad, i / 20) for i in range(1, 20)]
        return min(math.hypot(px - ox, py - oy) for px, py in pts for ox, oy in others)

    def box_free(box: tuple[float, float, float, float]) -> bool:
        x0, y0, x1, y1 = box
        for a0, b0, a1, b1 in placed:
            if x0 < a1 and a0 < x1 and y0 < b1 and b0 < y1:
                return False
        for nx, ny in pos.values():  # keep labels off the node circles
            qx, qy = min(max(nx, x0), x1), min(max(ny, y0), y1)
            if math.hypot(nx - qx, ny - qy) < radius + 0.05:
                return False
        return True

    pair_count: dict[tuple[str, str], int] = {}
    for s, d, _ in edges:
        pair_count[(s, d)] = pair_count.get((s, d), 0) + 1
    pair_seen: dict[tuple[str, str], int] = {}
    routes: list[tuple[str, tuple[float, float], tuple[float, float], float]] = []  # (op, p1, p2, rad)
    for s, d, op in edges:
        (x1, y1), (x2, y2) = pos[s], pos[d]
        L = math.hypot(x2 - x1, y2 - y1) or 1.0
        ux, uy = (x2 - x1) / L, (y2 - y1) / L
        p1 = (x1 + ux * radius, y1 + uy * radius)  # start and end on the node circles
        p2 = (x2 - ux * radius, y2 - uy * radius)
        k = pair_seen.get((s, d), 0)
        pair_seen[(s, d)] = k + 1
        offset = (k - (pair_count[(s, d)] - 1) / 2) * 0.45  # parallel edges (GDAS pairs rule)
        # route: the least bent arc that keeps clear of the nodes it does not connect
        best_rad, best_clear = offset, -1.0
        for r in (0.0, 0.2, -0.2, 0.35, -0.35, 0.5, -0.5, 0.65, -0.65):
            c = clearance(p1, p2, r + offset, s, d)
            if c >= radius + 0.3:
                best_rad = r + offset
                break
            if c > best_clear:
                best_rad, best_clear = r + offset, c
        routes.append((op, p1, p2, best_rad))

    samples = [[bezier(p1, p2, rad, i / 40) for i in range(41)] for _, p1, p2, rad in routes]

    def crossings(box: tuple[float, float, float, float], own: int) -> int:
        x0, y0, x1, y1 = box
        return sum(any(x0 - 0.05 <= px <= x1 + 0.05 and y0 - 0.05 <= py <= y1 + 0.05 for px, py in pts)
                   for j, pts in enumerate(samples) if j != own)

    for op, p1, p2, rad in routes:
        color = _OP_COLORS.get(op, "#444444") if op else "#999999"
        ax.add_patch(FancyArrowPatch(
            p1, p2, connectionstyle=f"arc3,rad={rad}", arrowstyle="-|>", mutation_scale=14,
            lw=1.8 if op else 1.0, color=color, linestyle="-" if op else "--",
            shrinkA=0, shrinkB=0, zorder=1))
    # labels: the position along its edge that overlaps no other label or node and the fewest edges
    order = sorted(range(len(routes)), key=lambda i: math.hypot(routes[i][2][0] - routes[i][1][0],
                                                                  routes[i][2][1] - routes[i][1][1]))
    for i in order:
        op, p1, p2, rad = routes[i]
        if not op:
            continue
        color = _OP_COLORS.get(op, "#444444")
        w, h = len(op) * char_w + 0.15, label_h
        best: tuple[int, float, float, tuple[float, float, float, float]] | None = None
        for t in (0.5, 0.42, 0.58, 0.34, 0.66, 0.27, 0.73, 0.2, 0.8):
            bx, by = bezier(p1, p2, rad, t)
            box = (bx - w / 2, by - h / 2, bx + w / 2, by + h / 2)
            if not box_free(box):
                continue
            n_cross = crossings(box, i)
            if best is None or n_cross < best[0]:
                best = (n_cross, bx, by, box)
            if n_cross == 0:
                break
        if best is None:
            bx, by = bezier(p1, p2, rad, 0.5)
            best = (0, bx, by, (bx - w / 2, by - h / 2, bx + w / 2, by + h / 2))
        placed.append(best[3])
        ax.text(best[1], best[2], op, fontsize=8, ha="center", va="center", color="black", zorder=3,
                bbox=dict(boxstyle="round,pad=0.2", fc="white", ec=color, lw=0.8, alpha=0.95))

    for n in names:
        x, y = pos[n]
        fc = _INPUT_COLOR if n in ins else _OUTPUT_COLOR if n in outs else _NODE_COLOR
        ax.add_patch(Circle((x, y), radius, fc=fc, ec="black", lw=1.2, zorder=4))
        ax.text(x, y, n, ha="center", va="center", fontsize=10 if len(n) < 6 else 8, zorder=5)

    _atomic_savefig(fig, Path(path))


def draw_arch(arch: Any, directory: str | os.PathLike[str]) -> list[Path]:
    """Write one PNG per cell type of ``arch`` into ``directory`` (the arch's space draws it)."""
    from nascli.spaces import get_space

    return get_space(str(getattr(arch, "space", None))).draw(arch, Path(directory))
