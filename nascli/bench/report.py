"""A study's report: per (method, selection) statistics over seeds, the random baseline, published numbers.

:func:`build_report` turns per-run rows into the report dict (``report.json``); :func:`render_markdown`,
:func:`render_csv` and :func:`rich_table` present it. Everything here is a function of the rows, so the
report of a study is the same whenever its runs are the same (no clocks, no reuse counts).

Per cell (method label x selection), over the runs whose every stage succeeded:

* ``acc``: mean, population std (ddof 0) and best (max) of the final accuracy (%);
* ``ri``: relative improvement over the random baseline's mean, ``100 (mean - random) / random``
  (computed on the means, METHODS.md 8); ``ri_space``: the same against the exact mean over the whole
  space when a table has it (NB201);
* ``published``: the cell's own published rows (:mod:`nascli.bench.published`, matched on method, optimizer
  and selection), shown beside the measured accuracy (DARTS-space errors as ``100 - error``);
* ``search_time_s`` (mean), ``peak_memory_mb`` (max), ``skip_count`` (mean, of the derived arch),
  ``alpha_entropy`` and ``hessian_eigenvalue`` (means of each run's final value) over the runs whose
  search succeeded.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from nascli.bench import published as pub
from nascli.bench.identity import SearchIdentity, as_identity
from nascli.bench.stats import mean_of, relative_improvement, summarize

SCHEMA = "nascli.benchmark/1"
CSV_COLUMNS = ("kind", "method", "selection", "runs", "ok", "acc_mean", "acc_std", "acc_best", "valid_mean",
               "ri", "ri_space", "search_time_s", "peak_memory_mb", "skip_count", "alpha_entropy",
               "hessian_eigenvalue", "published_acc_mean", "published_acc_std", "published_set", "published_row")


def _cell(label: str, selection: str, rows: Sequence[dict[str, Any]], random_mean: float | None,
          space_mean: float | None, higher_is_better: bool = True) -> dict[str, Any]:
    ok = [r for r in rows if r["status"] == "ok"]
    searched = [r for r in rows if r.get("search_status") == "ok"]
    acc = summarize((r["acc"] for r in ok), higher_is_better)
    valid = summarize((r.get("valid_acc") for r in ok), higher_is_better)
    peak = [r["peak_memory_mb"] for r in searched if r.get("peak_memory_mb") is not None]
    archs = Counter(r["arch"] for r in ok if r.get("arch"))
    return {
        "method": label, "selection": selection, "runs": len(rows), "ok": len(ok),
        "statuses": dict(sorted(Counter(r["status"] for r in rows if r["status"] != "ok").items())),
        "acc": acc.as_dict(), "valid_acc": valid.as_dict() if valid.n else None,
        "ri": relative_improvement(acc.mean, random_mean, higher_is_better),
        "ri_space": relative_improvement(acc.mean, space_mean, higher_is_better),
        "search_time_s": mean_of(r.get("search_time_s") for r in searched),
        "peak_memory_mb": max(peak) if peak else None,
        "skip_count": mean_of(r.get("skip_count") for r in ok),
        "alpha_entropy": mean_of(r.get("alpha_entropy") for r in searched),
        "hessian_eigenvalue": mean_of(r.get("hessian_eigenvalue") for r in searched),
        "archs": [[a, n] for a, n in sorted(archs.items(), key=lambda kv: (-kv[1], kv[0]))],
    }


def _matched(ident: SearchIdentity, selection: str, space: str, dataset: str) -> list[tuple[Any, Any, str]]:
    """(set, row, how) published for a cell: its own rows by (method, optimizer, selection); failing those, the
    row its paper preset names (when the cell is derived with the preset's own selection)."""
    found = [(p, r, "method") for p, r in pub.published_for(ident.method, ident.optimizer, selection, space)
             if r.covers(dataset)]
    if found or ident.paper is None or selection != ident.selection:
        return found
    try:
        pset = pub.published_set(ident.paper[0])
    except KeyError:
        return []
    row = pset.row(ident.paper[1])
    return [(pset, row, "preset")] if row is not None and pset.space == space and row.covers(dataset) else []


def _entry(pset: Any, row: Any, dataset: str) -> dict[str, Any]:
    """One published row as report data: test accuracy beside ours, plus what its set holds."""
    out = {"set": pset.key, "row": row.name, "accuracy": row.accuracy(dataset), "trust": pub.trust(row.source),
           "source": row.source}
    if isinstance(row, pub.ErrorRow):
        out.update(error=row.error, params_m=row.params_m, cost_gpu_days=row.cost_gpu_days, stat=row.stat)
    else:
        out.update(valid=row.get(dataset, "valid"), test=row.get(dataset, "test"))
    return out


def _published(cells: Sequence[dict[str, Any]], methods: Mapping[str, SearchIdentity | str], space: str,
               dataset: str) -> dict[str, Any] | None:
    if not pub.covers(dataset, space):
        return None
    ours = []
    for cell in cells:
        ident = as_identity(methods.get(cell["method"], cell["method"]))
        for pset, row, how in _matched(ident, cell["selection"], space, dataset):
            ours.append({"method": cell["method"], "selection": cell["selection"], "matched_by": how,
                         "identity": [ident.method, ident.optimizer, cell["selection"]], **_entry(pset, row, dataset)})
    reference = [_entry(pset, row, dataset) for pset, row in pub.reference_rows(space) if row.covers(dataset)]
    return {"space": space, "dataset": dataset,
            "sets": {p.key: p.title for p in pub.PUBLISHED_SETS if p.key in {e["set"] for e in ours + reference}},
            "methods": ours, "reference": reference}


def build_report(study: dict[str, Any], rows: Sequence[dict[str, Any]], baseline: Sequence[dict[str, Any]],
                 space_stats: dict[str, Any] | None, *, labels: Sequence[str], selections: Sequence[str],
                 methods: Mapping[str, SearchIdentity | str], with_published: bool, accuracy_source: str,
                 plots: Sequence[tuple[str, str]] = (), metric: str = "test accuracy (%)",
                 higher_is_better: bool = True) -> dict[str, Any]:
    """The report dict (see the module docstring).

    ``rows``: one per (label, seed, selection) with ``status`` (``ok`` when search, derivation and
    evaluation all succeeded), ``search_status``, ``acc``, ``valid_acc``, ``arch``, ``skip_count`` and
    the search figures; ``baseline``: one per sampled arch with ``status`` and ``acc``; ``space_stats``:
    the table's exact statistics (``{'test': (mean, std), 'valid': ..., 'optimal': {...}}``) or None;
    ``methods``: label -> :class:`~nascli.bench.identity.SearchIdentity` (method, optimizer, selection, preset)
    or a conf/method name (its default optimizer), for the published rows; ``with_published``: add the
    published rows of the study's space and dataset where there are any; ``plots``: (file, caption); ``metric``:
    the task's primary metric in words (``acc`` holds it: PSNR in dB for super-resolution); ``higher_is_better``:
    its direction (False for CER), which picks "best" and the sign of the relative improvements.
    """
    base_ok = [b for b in baseline if b["status"] == "ok"]
    random_summary = summarize((b["acc"] for b in base_ok), higher_is_better)
    space = None
    if space_stats is not None:
        space = {"mean": space_stats["test"][0], "std": space_stats["test"][1],
                 "best": space_stats["optimal"]["test"],
                 "valid_mean": space_stats["valid"][0], "valid_std": space_stats["valid"][1],
                 "valid_best": space_stats["optimal"]["valid"]}
    space_mean = space["mean"] if space else None
    cells = []
    for label in labels:
        for selection in selections:
            cell_rows = [r for r in rows if r["method"] == label and r["selection"] == selection]
            cells.append(_cell(label, selection, cell_rows, random_summary.mean, space_mean, higher_is_better))
    failures = [{"what": f"{r['method']} seed={r['seed']} selection={r['selection']}", "stage": r.get("stage"),
                 "status": r["status"], "error": r.get("error"), "log": r.get("log")}
                for r in rows if r["status"] != "ok"]
    failures += [{"what": f"random sample {b['sample']} ({b['arch']})", "stage": "evaluate", "status": b["status"],
                  "error": b.get("error"), "log": b.get("log")} for b in baseline if b["status"] != "ok"]
    return {
        "schema": SCHEMA,
        "study": study,
        "accuracy": {"metric": metric, "source": accuracy_source, "higher_is_better": higher_is_better},
        "cells": cells,
        "baseline": {
            "random": {**random_summary.as_dict(), "planned": len(baseline),
                       "archs": [[b["arch"], b["acc"]] for b in baseline]},
            "space": space,
        },
        "published": (_published(cells, methods, str(study.get("space")), str(study.get("dataset")))
                      if with_published else None),
        "counts": {"runs": len(rows), "runs_ok": sum(r["status"] == "ok" for r in rows),
                   "baseline": len(baseline), "baseline_ok": len(base_ok)},
        "failures": failures,
        "plots": [{"file": f, "caption": c} for f, c in plots],
        "runs": list(rows),
        "baseline_runs": list(baseline),
    }


# ----------------------------------------------------------------------------- formatting
def _higher_is_better(report: dict[str, Any]) -> bool:
    """The direction of the report's metric (reports written before it was recorded: accuracy, higher)."""
    return bool(report["accuracy"].get("higher_is_better", True))


def _f(value: Any, digits: int = 2) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _pm(summary: dict[str, Any] | None, digits: int = 2) -> str:
    if not summary or summary.get("mean") is None:
        return "–"
    return f"{summary['mean']:.{digits}f} ± {summary['std']:.{digits}f}"


def _pub(cell: Any) -> str:
    if cell is None:
        return "–"
    mean, std = cell
    return f"{mean:.2f}" if std is None else f"{mean:.2f} ± {std:.2f}"


def _ok(cell: dict[str, Any]) -> str:
    text = f"{cell['ok']}/{cell['runs']}"
    if cell["statuses"]:
        text += " (" + ", ".join(f"{n} {s}" for s, n in cell["statuses"].items()) + ")"
    return text


MAIN_HEADER = ("method", "selection", "runs ok", "measured acc ± std", "published acc", "best", "RI vs random %",
               "RI vs space %", "search s", "peak MB", "skips", "α entropy", "Hessian λmax")


def _published_text(entry: dict[str, Any]) -> str:
    """``54.30 ± 0.00 (nb201_iclr20 DARTS-V1, 2nd)``; a row without numbers says ``not recovered``."""
    value = _pub(entry["accuracy"]) if entry["accuracy"] is not None else "not recovered"
    best = " best" if entry.get("stat") == "best" else ""
    return f"{value}{best} ({entry['set']} {entry['row']}, {entry['trust']})"


def published_cells(report: dict[str, Any]) -> dict[tuple[str, str], str]:
    """(method label, selection) -> the published column's text (every matched row, ``; ``-joined)."""
    out: dict[tuple[str, str], list[str]] = {}
    for entry in (report.get("published") or {}).get("methods", []):
        out.setdefault((entry["method"], entry["selection"]), []).append(_published_text(entry))
    return {k: "; ".join(v) for k, v in out.items()}


def main_rows(report: dict[str, Any]) -> list[tuple[str, ...]]:
    """The rows of the main table (one per cell, then the baselines), as display strings."""
    out = []
    published = published_cells(report)
    for c in report["cells"]:
        beside = published.get((c["method"], c["selection"]), "–")
        out.append((c["method"], c["selection"], _ok(c), _pm(c["acc"]), beside,
                    _f(c["acc"]["best"]), _f(c["ri"]),
                    _f(c["ri_space"]), _f(c["search_time_s"], 1), _f(c["peak_memory_mb"], 0),
                    _f(c["skip_count"], 1), _f(c["alpha_entropy"], 3), _f(c["hessian_eigenvalue"], 3)))
    r = report["baseline"]["random"]
    out.append((f"random ({r['planned']} samples)", "–", f"{r['n']}/{r['planned']}", _pm(r), "–", _f(r["best"]),
                "0.00" if r["mean"] is not None else "–",
                _f(relative_improvement(r["mean"], _space_mean(report), _higher_is_better(report))),
                "–", "–", "–", "–", "–"))
    s = report["baseline"]["space"]
    if s:
        out.append(("whole space (exact)", "–", "all", _pm(s), "–", _f(s["best"]),
                    _f(relative_improvement(s["mean"], r["mean"], _higher_is_better(report))),
                    "0.00", "–", "–", "–", "–", "–"))
    return out


def _space_mean(report: dict[str, Any]) -> float | None:
    s = report["baseline"]["space"]
    return s["mean"] if s else None


def _md_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(x).replace("|", "\\|") for x in row) + " |" for row in rows]
    return lines


def _details(entry: dict[str, Any]) -> str:
    """What a published row holds besides the accuracy: NB201 valid accuracy, or the DARTS-space error,
    parameters and search cost."""
    if "error" in entry:
        parts = [f"error {_pub(entry['error'])} %" + (" (best run)" if entry.get("stat") == "best" else "")
                 if entry["error"] is not None else "error not recovered"]
        if entry.get("params_m") is not None:
            parts.append(f"{entry['params_m']:g}M params")
        if entry.get("cost_gpu_days") is not None:
            parts.append(f"{entry['cost_gpu_days']:g} GPU-days")
        return ", ".join(parts)
    return f"valid {_pub(entry['valid'])}"


def _published_section(report: dict[str, Any]) -> list[str]:
    """The published rows beside ours (each cell's own rows, then the space's framing rows), sets named."""
    pubd = report.get("published")
    if not pubd:
        return []
    lines = [f"## Published numbers: {pubd['space']} on {pubd['dataset']} (nascli/bench/published.py, METHODS.md)", ""]
    lines += [f"- **{k}**: {title}" for k, title in pubd["sets"].items()]
    lines += ["", f"Measured: {report['accuracy']['source']} (mean ± std over runs). Published: the paper's own "
              "full-length search and evaluation; DARTS-space errors are shown as accuracy = 100 − error. A method "
              "is compared only with its own rows (method, optimizer and selection all the paper's: first-order "
              "darts is DARTS-V1, never DARTS-V2); `matched by preset` marks a row named by the run's "
              "`+experiment=paper/...` record. Trust tags: CODE > README > 2nd > MEM (METHODS.md).", ""]
    by_cell = {(c["method"], c["selection"]): c for c in report["cells"]}
    rows = []
    for p in pubd["methods"]:
        c = by_cell[(p["method"], p["selection"])]
        figure = _pub(p["accuracy"]) if p["accuracy"] else "not recovered"
        rows.append((p["method"], p["selection"], _pm(c["acc"]), figure,
                     p["set"], p["row"] + (" (matched by preset)" if p["matched_by"] == "preset" else ""),
                     _details(p), p["source"]))
    for p in pubd["reference"]:
        rows.append(("–", "–", "–", _pub(p["accuracy"]), p["set"], p["row"], _details(p), p["source"]))
    if not rows:
        return lines + ["No published row matches the methods of this study.", ""]
    lines += _md_table(("ours", "selection", "measured acc", "published acc", "set", "published row", "details",
                        "source"), rows)
    return lines + [""]


def _early_stop_text(row: dict[str, Any]) -> str:
    """``stopped at 22, arch of 10`` (DARTS-ES), ``ADA: 2 rollbacks, wd 0.003`` (DARTS-ADA), else ``–``."""
    parts = []
    stop = row.get("stopped_early")
    if isinstance(stop, dict) and "epoch" in stop:
        arch = f", arch of {stop['arch_epoch']}" if "arch_epoch" in stop else ""
        parts.append(f"stopped at {stop['epoch']}{arch}")
    if row.get("ada_adaptations") is not None:
        parts.append(f"ADA: {row['ada_adaptations']} rollbacks, wd {row.get('ada_weight_decay', 0):.3g}")
    return "; ".join(parts) or "–"


def render_markdown(report: dict[str, Any]) -> str:
    """report.md: study, main table, baselines, published numbers, per-run table, failures, plots."""
    st = report["study"]
    lines = [f"# NAS benchmark: {st['space']} on {st['dataset']}", ""]
    lines.append(f"Study `{st['id']}` ({st['mode']}): methods {', '.join(st['methods'])}; seeds "
                 f"{', '.join(str(s) for s in st['seeds'])}; selections {', '.join(st['selections'])}.")
    if st.get("search_overrides"):
        lines.append(f"Search overrides: `{' '.join(st['search_overrides'])}`.")
    if st.get("group_overrides"):
        lines.append(f"Space/dataset overrides: `{' '.join(st['group_overrides'])}`.")
    if st.get("protocol_overrides"):
        lines.append(f"Protocol overrides: `{' '.join(st['protocol_overrides'])}`.")
    if st.get("evaluate_overrides"):
        lines.append(f"Evaluate overrides: `{' '.join(st['evaluate_overrides'])}`.")
    lines += [f"Accuracy: {report['accuracy']['source']}.",
              f"Random baseline: {st['baseline']['samples']} archs drawn uniformly from the space "
              f"(`random.Random({st['baseline']['seed']})`, `space.random_arch`), evaluated exactly like the "
              "methods' archs.", ""]
    lines += ["## Results (mean ± std over seeds)", ""]
    lines += _md_table(MAIN_HEADER, main_rows(report))
    lines += ["", "`runs ok`: runs whose search, derivation and evaluation all succeeded, out of those planned. "
              "std is the population std (ddof 0). RI = 100 (acc_method − acc_random) / acc_random on the means "
              "(Yang et al., ICLR'20); \"vs space\" uses the exact mean over every arch of the space (table "
              "spaces only). Search time, peak memory, α entropy (final epoch, mean over cell types) and the "
              "dominant Hessian eigenvalue of L_val w.r.t. α (last logged; `diagnostics.hessian_every`) are "
              "means over the runs whose search succeeded; skips = skip connections in the derived arch.", ""]
    lines += _published_section(report)
    lines += ["## Runs", ""]
    run_rows = [(r["method"], str(r["seed"]), r["selection"], r["status"], f"`{r['arch']}`" if r.get("arch") else "–",
                 _f(r.get("acc")), _f(r.get("skip_count")), _f(r.get("search_time_s"), 1), _early_stop_text(r))
                for r in report["runs"]]
    lines += _md_table(("method", "seed", "selection", "status", "arch", "acc", "skips", "search s", "early stop"),
                       run_rows)
    if any(row[-1] != "–" for row in run_rows):
        lines += ["", "`early stop`: DARTS-ES stopped at epoch e and returned the arch of epoch r "
                  "(`+components=[darts_es]`); DARTS-ADA rolled back n times, ending at weight decay wd (`+components=[darts_ada]`). Epochs "
                  "are 0-based, as in metrics.jsonl."]
    lines += ["", "Random samples:", ""]
    lines += _md_table(("sample", "eval seed", "status", "arch", "acc"),
                       [(str(b["sample"]), str(b["seed"]), b["status"], f"`{b['arch']}`", _f(b.get("acc")))
                        for b in report["baseline_runs"]])
    lines.append("")
    if report["failures"]:
        lines += ["## Failures", ""]
        lines += [f"- {f['what']}: **{f['status']}** at {f['stage']}: {f['error'] or 'no message'}"
                  + (f" (log `{f['log']}`)" if f.get("log") else "") for f in report["failures"]]
        lines.append("")
    if report["plots"]:
        lines += ["## Plots", ""]
        for p in report["plots"]:
            lines += [f"**{p['caption']}**", "", f"![{p['caption']}]({p['file']})", ""]
    return "\n".join(lines).rstrip() + "\n"


def render_csv(report: dict[str, Any]) -> str:
    """report.csv: one line per cell (with its first published row, if any), then ``random`` and (table
    spaces) ``space`` baseline lines."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    first: dict[tuple[str, str], dict[str, Any]] = {}
    for entry in (report.get("published") or {}).get("methods", []):
        first.setdefault((entry["method"], entry["selection"]), entry)
    for c in report["cells"]:
        p = first.get((c["method"], c["selection"]))
        acc = (p or {}).get("accuracy") or (None, None)
        writer.writerow(["method", c["method"], c["selection"], c["runs"], c["ok"], c["acc"]["mean"], c["acc"]["std"],
                         c["acc"]["best"], (c["valid_acc"] or {}).get("mean"), c["ri"], c["ri_space"],
                         c["search_time_s"], c["peak_memory_mb"], c["skip_count"], c["alpha_entropy"],
                         c["hessian_eigenvalue"], acc[0], acc[1], (p or {}).get("set"), (p or {}).get("row")])
    r = report["baseline"]["random"]
    writer.writerow(["random", "random", "", r["planned"], r["n"], r["mean"], r["std"], r["best"], None,
                     0.0 if r["mean"] is not None else None,
                     relative_improvement(r["mean"], _space_mean(report), _higher_is_better(report)),
                     None, None, None, None, None, None, None, None, None])
    s = report["baseline"]["space"]
    if s:
        writer.writerow(["space", "space", "", "", "", s["mean"], s["std"], s["best"], s["valid_mean"],
                         relative_improvement(s["mean"], r["mean"], _higher_is_better(report)), 0.0,
                         None, None, None, None, None,
                         None, None, None, None])
    return buf.getvalue()  # csv writes None as an empty field


def rich_table(report: dict[str, Any]):
    """The main table as a ``rich`` Table (printed on stderr by the command)."""
    from rich.table import Table

    st = report["study"]
    table = Table(title=f"{st['space']} on {st['dataset']}: {report['accuracy']['metric']}", title_justify="left")
    for i, name in enumerate(MAIN_HEADER):
        table.add_column(name, justify="left" if i < 2 else "right", no_wrap=i < 4)
    for row in main_rows(report):
        table.add_row(*row)
    return table


def report_digest(report: dict[str, Any]) -> str:
    """sha256 of a report without its wall-clock figures (search time, peak memory): equal for the same
    archs and accuracies however often the runs were interrupted and resumed."""
    def strip(node: Any) -> Any:
        if isinstance(node, dict):
            return {k: strip(v) for k, v in node.items() if k not in ("search_time_s", "peak_memory_mb")}
        if isinstance(node, list):
            return [strip(v) for v in node]
        return node

    return hashlib.sha256(json.dumps(strip(report), sort_keys=True).encode()).hexdigest()
