"""Episode-return curves of RL runs over seeds: read from each run's metrics.jsonl, drawn with matplotlib.

    python -m nascli.rl.curves returns.png derived=RUN_DIR,RUN_DIR,... impala=RUN_DIR,...

Each group (label=comma-separated run directories, one per seed) is drawn as its seeds' curves (thin) and their
mean (thick) of ``eval_return_mean`` (the evaluation episodes after every period) against environment steps.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from nascli.errors import NasError


def read_curve(run_dir: Path, key: str = "eval_return_mean") -> tuple[list[int], list[float]]:
    """(timesteps, ``key``) of the periods in ``run_dir``/metrics.jsonl."""
    path = Path(run_dir) / "metrics.jsonl"
    if not path.is_file():
        raise NasError(f"{run_dir} has no metrics.jsonl (not an RL run directory)")
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    if not records or key not in records[0]:
        raise NasError(f"{path} has no {key} records (not an RL run)")
    return [int(r["timesteps"]) for r in records], [float(r[key]) for r in records]


def mean_curve(curves: list[tuple[list[int], list[float]]]) -> tuple[list[int], list[float]]:
    """The per-period mean over seeds, on the periods every seed reached."""
    n = min(len(c[1]) for c in curves)
    return curves[0][0][:n], [sum(c[1][i] for c in curves) / len(curves) for i in range(n)]


def plot_groups(groups: dict[str, list[Path]], out: Path, key: str = "eval_return_mean") -> Path:
    """Draw every group's seeds and mean into ``out`` (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for i, (label, dirs) in enumerate(groups.items()):
        color = f"C{i}"
        curves = [read_curve(d, key) for d in dirs]
        for x, y in curves:
            ax.plot(x, y, color=color, alpha=0.3, linewidth=1)
        x, y = mean_curve(curves)
        ax.plot(x, y, color=color, linewidth=2.5, label=f"{label} (mean of {len(curves)} seeds)")
    ax.set_xlabel("environment steps")
    ax.set_ylabel(key.replace("_", " "))
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize="small")
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out


def main(argv: list[str]) -> int:
    if len(argv) < 2 or any("=" not in a for a in argv[1:]):
        print("error: usage: python -m nascli.rl.curves OUT.png LABEL=RUN_DIR[,RUN_DIR...] ...", file=sys.stderr)
        return 2
    groups = {a.split("=", 1)[0]: [Path(d) for d in a.split("=", 1)[1].split(",") if d] for a in argv[1:]}
    try:
        print(plot_groups(groups, Path(argv[0])))
    except NasError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
