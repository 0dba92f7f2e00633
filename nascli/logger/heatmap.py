"""The per-edge op probabilities of one cell type as a heatmap image (rows: edges, columns: ops).

Drawn with matplotlib's Agg canvas straight into an RGB array (no file, no display), so loggers can hand it to
their image call; values are written in the cells, the colour scale is fixed to [0, 1] so images of successive
epochs compare.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def heatmap_image(probs: Sequence[Sequence[float]], ops: Sequence[str], edges: Sequence[str], title: str) -> np.ndarray:
    """``probs`` (E rows of O op probabilities) as an ``(H, W, 3)`` uint8 image; ImportError without matplotlib."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    data = np.asarray(probs, dtype=float)
    rows, cols = data.shape
    fig = Figure(figsize=(1.2 + 0.9 * cols, 1.0 + 0.32 * rows), dpi=80)
    canvas = FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    im = ax.imshow(data, vmin=0.0, vmax=1.0, cmap="viridis", aspect="auto")
    ax.set_xticks(range(cols), [str(o) for o in ops], rotation=45, ha="right", fontsize=7)
    ax.set_yticks(range(rows), [str(e) for e in edges], fontsize=7)
    for r in range(rows):
        for c in range(cols):
            ax.text(c, r, f"{data[r, c]:.2f}", ha="center", va="center", fontsize=6,
                    color="black" if data[r, c] > 0.5 else "white")
    ax.set_title(title, fontsize=8)
    fig.colorbar(im, ax=ax, fraction=0.05)
    fig.tight_layout()
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()
