"""What a report says about its study, and the one JSON line ``nas benchmark`` prints.

The line's ``status`` is ``ok`` when every run and every random sample succeeded, ``failed`` when no run
did, else ``partial``; ``jobs`` counts the study's jobs: ``ran`` (a process ran), ``reused`` (taken from
finished runs, derivations or records), ``failed`` (not ok and not skipped) and ``skipped``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from nascli.bench.args import derive_overrides
from nascli.bench.compose import group_overrides
from nascli.bench.jobs import Outcome
from nascli.bench.plan import Plan
from nascli.bench.truth import GroundTruth


def accuracy_source(cfg: DictConfig, plan: Plan, table: GroundTruth | None) -> str:
    """How the report's accuracies were obtained, in words."""
    if table is not None:
        return table.describe(plan.dataset)
    return (f"{plan.metric_title} after training each arch from scratch with protocol `{cfg.protocol.name}` "
            f"(`nas evaluate`, training seed = search seed; random sample k uses seed k)")


def describe_study(cfg: DictConfig, plan: Plan, study_id: str, table: GroundTruth | None) -> dict[str, Any]:
    """The report's ``study`` section: what was compared, how, and with which overrides."""
    return {"id": study_id, "mode": plan.mode, "space": plan.space, "dataset": plan.dataset, "methods": plan.labels,
            "method_names": plan.methods, "seeds": plan.seeds, "selections": plan.selections,
            "evaluation": "table" if table else "train", "protocol": None if table else str(cfg.protocol.name),
            "baseline": {"samples": int(cfg.baseline.samples), "seed": int(cfg.baseline.seed)},
            "group_overrides": plan.group_args,
            "protocol_overrides": [] if table else group_overrides("protocol", cfg.protocol),
            "evaluate_overrides": [str(o) for o in cfg.evaluate_overrides or []],
            "derive_overrides": {s: derive_overrides(cfg, s) for s in plan.selections if derive_overrides(cfg, s)},
            **plan.study_info}


def job_counts(outcomes: dict[str, Outcome]) -> dict[str, int]:
    """``total`` / ``ran`` / ``reused`` / ``failed`` / ``skipped`` jobs (module docstring)."""
    return {"total": len(outcomes),
            "ran": sum(not o.reused and o.status != "skipped" for o in outcomes.values()),
            "reused": sum(o.reused for o in outcomes.values()),
            "failed": sum(o.status not in ("ok", "skipped") for o in outcomes.values()),
            "skipped": sum(o.status == "skipped" for o in outcomes.values())}


def result_line(plan: Plan, bdir: Path, report: dict[str, Any], outcomes: dict[str, Outcome]) -> dict[str, Any]:
    """The command's result: status, where the report is, the report's counts and the job counts."""
    counts = report["counts"]
    done = counts["runs_ok"] == counts["runs"] and counts["baseline_ok"] == counts["baseline"]
    return {"status": "ok" if done else ("failed" if counts["runs_ok"] == 0 else "partial"), "command": "benchmark",
            "mode": plan.mode, "benchmark_dir": str(bdir), "report": str(bdir / "report.json"), **counts,
            "jobs": job_counts(outcomes)}
