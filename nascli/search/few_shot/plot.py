"""A picture of the split tree: one box per sub-supernet (depth down, leaves left to right), the edge split
at each inner node with its op groups and scores, each leaf's validation accuracy, the winner highlighted.
Matplotlib's object API on an Agg canvas (no pyplot state), written atomically."""
from __future__ import annotations

import textwrap
from pathlib import Path

from nascli.search.few_shot.tree import SplitTree


def _positions(tree: SplitTree) -> dict[str, tuple[float, float]]:
    """x: leaves evenly spaced in tree order, an inner node centred over its children; y: -depth."""
    pos: dict[str, tuple[float, float]] = {}
    counter = [0]

    def place(node_id: str) -> float:
        kids = tree.children(node_id)
        node = tree.node(node_id)
        if not kids:
            x = float(counter[0])
            counter[0] += 1
        else:
            xs = [place(k.id) for k in kids]
            x = sum(xs) / len(xs)
        pos[node_id] = (x, -float(node.depth))
        return x

    place(tree.nodes[0].id)
    return pos


def node_label(tree: SplitTree, node_id: str) -> str:
    node = tree.node(node_id)
    lines = [f"node {node.id}  epochs {node.start_epoch}-{node.end_epoch}" + (" (restart)" if node.restart else "")]
    if node.split:
        sp = node.split
        lines.append(f"split {sp['cell_type']} edge {sp['edge']}")
        lines.append(f"cross {sp['cross']:.3f} within {sp['within']:.3f}")
        lines.extend("{" + ", ".join(grp) + "}" for grp in sp["ops"])
    if node.result:
        lines.append(f"val_acc {node.result['val_acc']:.2f}")
        wrapped = textwrap.wrap(node.result["arch"], 34)
        lines.extend(wrapped[:3] + (["..."] if len(wrapped) > 3 else []))
    return "\n".join(lines)


def draw_split_tree(tree: SplitTree, winner: str | None, path: Path) -> Path | None:
    """Write the picture to ``path``; None when matplotlib is missing (pictures are optional)."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        return None
    from nascli.viz import _atomic_savefig

    pos = _positions(tree)
    width = max(x for x, _ in pos.values()) + 1
    depth = max(-y for _, y in pos.values()) + 1
    fig = Figure(figsize=(max(4.0, 3.2 * width), max(2.5, 2.2 * depth)))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    ax.set_axis_off()
    for node in tree.nodes:
        if node.parent is not None:
            (x0, y0), (x1, y1) = pos[node.parent], pos[node.id]
            ax.plot([x0, x1], [y0, y1], color="0.6", zorder=1)
            r = node.restrictions[-1]
            ax.text((x0 + x1) / 2, (y0 + y1) / 2, f"e{r.edge}: {r.ops}", fontsize=7, ha="center",
                    color="0.3", zorder=3)
    for node in tree.nodes:
        x, y = pos[node.id]
        colour = "#ffd27f" if node.id == winner else ("#e8f0fe" if node.result else "#f2f2f2")
        ax.text(x, y, node_label(tree, node.id), fontsize=7, ha="center", va="center", zorder=2,
                bbox={"boxstyle": "round", "facecolor": colour, "edgecolor": "0.4"})
    ax.set_xlim(-0.7, width - 0.3)
    ax.set_ylim(-depth + 0.5, 0.5)
    ax.set_title("GM-NAS split tree" + (f" (winner: node {winner})" if winner else ""), fontsize=9)
    _atomic_savefig(fig, path)
    return path
