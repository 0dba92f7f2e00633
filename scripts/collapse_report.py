#!/usr/bin/env python
"""Collapse report of a finished or running ``nas benchmark`` study (docs/COLLAPSE.md).

Reads the study's job records (``<study>/jobs/search-<label>-seed<N>.json`` and the runs they name) and,
with ``--include-running``, the runs still going (their run directory is the ``search <dir>`` line of the
job's log). Per method label it reports, over the
search epochs:

* ``param_free_share``: the share of parameter-free ops (``none``, ``skip_connect``, pooling, ``noise``)
  in the cell derived at that epoch (the collapse indicator of R-DARTS / DARTS-, read from the cell);
* ``hessian``: the dominant eigenvalue of the Hessian of L_val w.r.t. alpha (``diagnostics.hessian_every``);
* ``max_dev``: max over edges and ops of |softmax(alpha) - 1/K|, how far the alphas moved from uniform;
* settling: the first epoch after which the derived cell never changes again (``settled_epoch``), and
  the search steps that took.

Accuracy rows (``evaluate-*`` records) get a two-sided 95 % Student-t confidence interval over seeds:
mean +- t_{0.975, n-1} * s / sqrt(n), with s the sample standard deviation (ddof 1).

    python scripts/collapse_report.py --study outputs/benchmark/nb201-fashion_mnist/<hash> --out docs/collapse
    python scripts/collapse_report.py --study ... --include-running --out /tmp/x
"""
from __future__ import annotations

import argparse
import json
import math
import re
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PARAMETER_FREE = frozenset({"none", "skip_connect", "avg_pool_3x3", "max_pool_3x3", "noise"})
# two-sided 95 % Student-t quantiles t_{0.975, df} for df = 1..30 (standard table values)
T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145,
        2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048,
        2.045, 2.042)


def arch_ops(arch: str) -> list[str]:
    """The op names of an arch string: NB201 ``|op~i|+|...|`` or DARTS ``Genotype(... ('op', i) ...)``."""
    if "Genotype" in arch:
        return re.findall(r"\('([a-z0-9_]+)',\s*\d+\)", arch)
    return [tok.split("~")[0] for tok in arch.replace("+", "|").split("|") if "~" in tok]


def param_free_share(arch: str) -> float:
    """Share of the derived cell's ops that have no parameters (:data:`PARAMETER_FREE`)."""
    ops = arch_ops(arch)
    if not ops:
        raise ValueError(f"no ops in arch {arch!r}")
    return sum(op in PARAMETER_FREE for op in ops) / len(ops)


def max_deviation(alphas: dict[str, list[list[float]]]) -> float:
    """max |p - 1/K| over every cell type, edge and op of the logged softmax(alpha) rows."""
    return max(abs(p - 1.0 / len(row)) for rows in alphas.values() for row in rows for p in row)


def settled_epoch(archs: list[str]) -> int:
    """The first epoch index from which the derived arch never changes again (0 = never changed)."""
    last_change = 0
    for k in range(1, len(archs)):
        if archs[k] != archs[k - 1]:
            last_change = k
    return last_change


def t_interval(values: list[float]) -> tuple[float, float] | None:
    """(mean, half-width) of the two-sided 95 % Student-t interval; None below 2 values."""
    n = len(values)
    if n < 2:
        return None
    mean = sum(values) / n
    s = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    t = T975[min(n - 1, len(T975)) - 1]
    return mean, t * s / math.sqrt(n)


@dataclass
class Run:
    label: str
    seed: int
    run_dir: Path
    finished: bool
    epochs: list[dict[str, Any]] = field(default_factory=list)
    steps_per_epoch: int = 0
    archs: dict[str, str] = field(default_factory=dict)      # selection -> final arch
    accuracy: dict[str, float] = field(default_factory=dict)  # selection -> evaluated accuracy


def read_metrics(run_dir: Path) -> list[dict[str, Any]]:
    path = run_dir / "metrics.jsonl"
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:  # a line being written
            continue
        if "epoch" in row and "arch" in row:
            rows.append(row)
    return rows


def _records(study: Path, kind: str) -> Iterable[tuple[str, dict[str, Any]]]:
    for path in sorted((study / "jobs").glob(f"{kind}-*.json")):
        yield path.stem, json.loads(path.read_text())


def _log_run_dir(log: Path) -> Path | None:
    """The run directory a search job's log names (its ``search <dir>`` line), if any."""
    for line in log.read_text(errors="replace").splitlines()[:20]:
        if line.startswith("search /") or line.startswith("search ."):
            return Path(line.split(" ", 1)[1].strip())
    return None


def collect(study: Path, include_running: bool = False) -> list[Run]:
    """Every search run of the study (finished ones from the job records; with ``include_running`` also
    the unfinished ones, found through their logs)."""
    runs: dict[tuple[str, int], Run] = {}
    for key, record in _records(study, "search"):
        m = re.fullmatch(r"search-(.+)-seed(\d+)", key)
        result = record.get("result") or {}
        if not m or record.get("status") != "ok" or not result.get("run_dir"):
            continue
        run = Run(m.group(1), int(m.group(2)), Path(result["run_dir"]), True)
        run.archs["magnitude"] = result.get("arch", "")
        runs[(run.label, run.seed)] = run
    if include_running:
        for log in sorted((study / "jobs").glob("search-*.log")):
            m = re.fullmatch(r"search-(.+)-seed(\d+)", log.stem)
            if not m or (m.group(1), int(m.group(2))) in runs:
                continue
            path = _log_run_dir(log)
            if path is not None and path.is_dir():
                runs[(m.group(1), int(m.group(2)))] = Run(m.group(1), int(m.group(2)), path, False)
    for run in runs.values():
        run.epochs = read_metrics(run.run_dir)
        run.steps_per_epoch = int(run.epochs[0].get("steps", 0)) if run.epochs else 0
    for key, record in _records(study, "derive"):
        m = re.fullmatch(r"derive-(.+)-seed(\d+)-(.+)", key)
        if m and record.get("status") == "ok" and (m.group(1), int(m.group(2))) in runs:
            runs[(m.group(1), int(m.group(2)))].archs[m.group(3)] = (record.get("result") or {}).get("arch", "")
    for key, record in _records(study, "evaluate"):
        m = re.fullmatch(r"evaluate-(.+)-seed(\d+)-(.+)", key)
        acc = (record.get("result") or {}).get("test_acc")
        if m and record.get("status") == "ok" and acc is not None and (m.group(1), int(m.group(2))) in runs:
            runs[(m.group(1), int(m.group(2)))].accuracy[m.group(3)] = float(acc)
    return sorted(runs.values(), key=lambda r: (r.label, r.seed))


def baseline_accuracy(study: Path) -> list[float]:
    return [float(r["result"]["test_acc"]) for _, r in _records(study, "evaluate-random")
            if r.get("status") == "ok" and (r.get("result") or {}).get("test_acc") is not None]


def curves(run: Run) -> dict[str, list[tuple[int, float]]]:
    """Per indicator, (epoch number from 1, value) points of one run."""
    out: dict[str, list[tuple[int, float]]] = {"param_free_share": [], "hessian": [], "max_dev": []}
    for row in run.epochs:
        epoch = int(row["epoch"]) + 1
        out["param_free_share"].append((epoch, param_free_share(row["arch"])))
        if isinstance(row.get("hessian_eigenvalue"), (int, float)):
            out["hessian"].append((epoch, float(row["hessian_eigenvalue"])))
        if row.get("alphas"):
            out["max_dev"].append((epoch, max_deviation(row["alphas"])))
    return out


def _cell(text: str) -> str:
    """``text`` safe inside a markdown table cell (``|`` escaped)."""
    return text.replace("|", "\\|")


def _acc(values: list[float], digits: int = 2) -> str:
    """``mean ± half-width (n=k)`` of the 95 % t-interval; a single value as ``v (n=1)``."""
    if len(values) == 1:
        return f"{values[0]:.{digits}f} (n=1)"
    ci = t_interval(values)
    return "–" if ci is None else f"{_fmt(ci, digits)} (n={len(values)})"


def _fmt(ci: tuple[float, float] | None, digits: int = 2) -> str:
    return "–" if ci is None else f"{ci[0]:.{digits}f} ± {ci[1]:.{digits}f}"


def op_shares(arch: str) -> dict[str, float]:
    """Shares of the cell's ops that are ``skip_connect``, ``none``, pooling, and parameter-free in all."""
    ops = arch_ops(arch)
    share = (lambda names: sum(op in names for op in ops) / len(ops))
    return {"param_free": param_free_share(arch), "skip_connect": share({"skip_connect"}), "none": share({"none"}),
            "pooling": share({"avg_pool_3x3", "max_pool_3x3"})}


def selection_table(runs: list[Run]) -> list[str]:
    """Markdown lines: per method and selection, the final cells' op shares (mean over seeds; the
    parameter-free share with its 95 % t-interval)."""
    lines = ["## Parameter-free ops in the final cells, per selection", "",
             "Mean over seeds of the share of the derived cell's ops; the parameter-free share with its 95 % "
             "Student-t interval.", "",
             "| method | selection | cells | param-free share (95% CI) | skip_connect | none | pooling |",
             "|---|---|---|---|---|---|---|"]
    for label in sorted({r.label for r in runs}):
        for selection in ("magnitude", "ostr"):
            cells = [r.archs[selection] for r in runs if r.label == label and r.finished and r.archs.get(selection)]
            if not cells:
                continue
            shares = [op_shares(a) for a in cells]
            pf_text = _acc([s["param_free"] for s in shares], digits=3)
            avg = {k: sum(s[k] for s in shares) / len(shares) for k in ("skip_connect", "none", "pooling")}
            lines.append(f"| {label} | {selection} | {len(cells)} | {pf_text} | {avg['skip_connect']:.3f} | "
                         f"{avg['none']:.3f} | {avg['pooling']:.3f} |")
    return lines + [""]


def write_report(runs: list[Run], baseline: list[float], out: Path, command: str) -> Path:
    from nascli.bench.plots import epoch_curves

    out.mkdir(parents=True, exist_ok=True)
    labels = sorted({r.label for r in runs})
    plots = {"param_free_share": ("Parameter-free share of the derived cell", "share of ops"),
             "hessian": ("Dominant eigenvalue of the Hessian of L_val w.r.t. alpha", "lambda_max"),
             "max_dev": ("Largest |softmax(alpha) - 1/K| (0 = uniform)", "max deviation")}
    for name, (title, ylabel) in plots.items():
        data = {label: [curves(r)[name] for r in runs if r.label == label and curves(r)[name]] for label in labels}
        data = {k: v for k, v in data.items() if v}
        if data:
            (out / f"{name}.png").write_bytes(epoch_curves(data, title=title, ylabel=ylabel))
    lines = ["# Collapse study report (generated by scripts/collapse_report.py)", ""]
    lines += [f"Command: `{command}`", ""] if command else []
    lines += [
             "Columns read the last logged epoch of every run that logged one (unfinished runs included; "
             "`epochs` gives the range reached).", "",
             "| method | runs (finished) | epochs | steps/epoch | param-free share | max dev | λmax | "
             "settled at epoch (steps) | acc magnitude (95% CI) | acc ostr (95% CI) |", "|---|---|---|---|---|---|---|---|---|---|"]
    for label in labels:
        group = [r for r in runs if r.label == label]
        done = [r for r in group if r.epochs]
        last = [r.epochs[-1] for r in done]
        pfs = [param_free_share(e["arch"]) for e in last]
        devs = [max_deviation(e["alphas"]) for e in last if e.get("alphas")]
        hess = [curves(r)["hessian"][-1][1] for r in done if curves(r)["hessian"]]
        settled = [(settled_epoch([e["arch"] for e in r.epochs]), r.steps_per_epoch) for r in done]
        mean = (lambda v: f"{sum(v) / len(v):.3f}" if v else "–")
        settle = ", ".join(f"{e} ({e * s})" for e, s in settled) or "–"
        acc = {sel: [r.accuracy[sel] for r in done if sel in r.accuracy] for sel in ("magnitude", "ostr")}
        reached = sorted(len(r.epochs) for r in done)
        shape = (f"{reached[0]}–{reached[-1]}" if reached[0] != reached[-1] else str(reached[0])) if done else "–"
        steps = str(done[0].steps_per_epoch) if done else "–"
        finished = sum(r.finished for r in group)
        lines.append(f"| {label} | {len(group)} ({finished}) | {shape} | {steps} | {mean(pfs)} | {mean(devs)} | {mean(hess)} | "
                     f"{settle} | {_acc(acc['magnitude'])} | {_acc(acc['ostr'])} |")
    lines += ["", f"Random baseline ({len(baseline)} archs): {_acc(baseline)}", ""]
    lines += selection_table(runs)
    lines += ["## Final cells", "",
              "| method | seed | finished | magnitude | ostr |", "|---|---|---|---|---|"]
    for r in runs:
        final = r.archs.get("magnitude") or (r.epochs[-1]["arch"] if r.epochs else "")
        ostr = r.archs.get("ostr", "–")
        lines.append(f"| {r.label} | {r.seed} | {'yes' if r.finished else f'no ({len(r.epochs)} epochs)'} | "
                     f"`{_cell(final)}` | `{_cell(ostr)}` |")
    report = out / "report.md"
    report.write_text("\n".join(lines) + "\n")
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--study", type=Path, required=True, help="the nas benchmark study directory")
    parser.add_argument("--include-running", action="store_true", help="also report unfinished searches")
    parser.add_argument("--out", type=Path, required=True, help="folder for report.md and the plots")
    parser.add_argument("--command", default="", help="the study's command line, quoted in the report")
    args = parser.parse_args(argv)
    if not (args.study / "jobs").is_dir():
        print(f"error: {args.study} is not a nas benchmark study directory (no jobs/ folder)", file=sys.stderr)
        return 2
    runs = collect(args.study, args.include_running)
    report = write_report(runs, baseline_accuracy(args.study), args.out, args.command)
    print(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
