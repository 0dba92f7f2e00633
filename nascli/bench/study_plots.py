"""Which plots a study's data allows, and their data (the drawing is :mod:`nascli.bench.plots`).

* ``accuracy_per_epoch.png``: per method over the search epochs, the table test accuracy of the arch
  derived at each epoch when every logged epoch has one (with the random and whole-space means as lines),
  else the supernet's validation accuracy;
* ``final_accuracy.png``: every ok run's final accuracy per (method, selection), and the random samples;
* ``skip_count.png`` / ``hessian_eigenvalue.png``: per-epoch indicators, when logged;
* ``alphas_<label>.png``: softmax(alpha) per edge over the search of the first seed of each method
  that logged alphas.

Only the search runs that produced at least one row with an ok search contribute curves.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from nascli.bench.graph import job_key
from nascli.bench.plan import Plan
from nascli.bench.study import read_metrics
from nascli.spaces import get_space

Plot = tuple[str, str, bytes]   # (file name, caption, PNG bytes)


def _curve(metrics: list[dict], pick: Callable[[dict], Any]) -> list[tuple[int, float]]:
    out = []
    for m in metrics:
        v = pick(m)
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            out.append((int(m.get("epoch", len(out))) + 1, float(v)))
    return out


def _table_test(m: dict) -> Any:
    bench = m.get("benchmark")
    return bench.get("test") if isinstance(bench, dict) else None


def make_plots(plan: Plan, report: dict[str, Any], rows: list[dict]) -> list[Plot]:
    """(file name, caption, PNG bytes) of every plot the data allows (module docstring)."""
    from nascli.bench import plots

    ok_runs = [r for r in plan.runs if any(x["search_status"] == "ok" and x["search_run"] == str(r.run_dir)
                                           for x in rows)]
    metrics = {str(r.run_dir): read_metrics(r.run_dir) for r in ok_runs}
    by_label = {label: [r for r in ok_runs if r.label == label] for label in plan.labels}
    out: list[Plot] = []
    all_table = bool(metrics) and all(_table_test(m) is not None for ms in metrics.values() for m in ms)
    pick = _table_test if all_table else (lambda m: m.get("val_acc"))
    metric = ("table test accuracy of the arch derived (magnitude) at each epoch" if all_table
              else "supernet validation accuracy (val_acc)")
    curves = {label: [_curve(metrics[str(r.run_dir)], pick) for r in runs] for label, runs in by_label.items()}
    hlines = {}
    base = report["baseline"]
    if all_table and base["random"]["mean"] is not None:
        hlines[f"random archs, mean of {base['random']['n']}"] = base["random"]["mean"]
    if all_table and base["space"]:
        hlines["whole space, exact mean"] = base["space"]["mean"]
    if any(c for cs in curves.values() for c in cs):
        out.append(("accuracy_per_epoch.png", f"Accuracy per search epoch: {metric}",
                    plots.accuracy_curves(curves, metric=metric, dataset=plan.dataset, hlines=hlines)))
    points = {}
    for c in report["cells"]:
        name = c["method"] if len(plan.selections) == 1 else f"{c['method']} / {c['selection']}"
        points[name] = [r["acc"] for r in rows if r["method"] == c["method"] and r["selection"] == c["selection"]
                        and r["status"] == "ok"]
    out.append(("final_accuracy.png", "Final accuracy of each run's derived arch, and of the random archs",
                plots.final_accuracy(points, random_points=[b["acc"] for b in report["baseline_runs"]
                                                            if b["status"] == "ok"],
                                     space_mean=base["space"]["mean"] if base["space"] else None,
                                     metric=report["accuracy"]["metric"], dataset=plan.dataset)))
    skips = {label: [_curve(metrics[str(r.run_dir)], lambda m: m.get("skip_count")) for r in runs]
             for label, runs in by_label.items()}
    if any(c for cs in skips.values() for c in cs):
        out.append(("skip_count.png", "Skip connections in the arch derived (magnitude) at each epoch",
                    plots.epoch_curves(skips, title=f"skip connections in the derived arch ({plan.dataset})",
                                       ylabel="skip connections", integer_y=True)))
    hess = {label: [_curve(metrics[str(r.run_dir)], lambda m: m.get("hessian_eigenvalue")) for r in runs]
            for label, runs in by_label.items()}
    if any(c for cs in hess.values() for c in cs):
        out.append(("hessian_eigenvalue.png", "Dominant Hessian eigenvalue of L_val w.r.t. alpha",
                    plots.epoch_curves(hess, title=f"dominant eigenvalue of the Hessian of L_val w.r.t. α "
                                                   f"({plan.dataset})",
                                       ylabel="λ_max (largest Hessian eigenvalue)")))
    out.extend(_alpha_plots(plan, by_label, metrics))
    return out


def _alpha_plots(plan: Plan, by_label: dict[str, list], metrics: dict[str, list[dict]]) -> list[Plot]:
    from nascli.bench import plots

    space = get_space(plan.space)
    edge_names = {ct: [f"edge {e.src}→{e.dst}" for e in space.edges(ct)] for ct in space.cell_types}
    out: list[Plot] = []
    for label, runs in by_label.items():
        for r in sorted(runs, key=lambda x: x.seed):
            recs = [m for m in metrics[str(r.run_dir)] if isinstance(m.get("alphas"), dict)]
            if recs:
                out.append((f"alphas_{job_key(label)}.png", f"softmax(α) per edge, {label} seed {r.seed}",
                            plots.alpha_trajectories([int(m["epoch"]) + 1 for m in recs], [m["alphas"] for m in recs],
                                                     edge_names, list(space.ops),
                                                     title=f"{label}, seed {r.seed}: softmax(α) per edge "
                                                           "over the search")))
                break
    return out
