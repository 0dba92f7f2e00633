"""Live progress of a study on stderr: jobs done / running / failed, current epochs, ETA.

The current epoch of a running search is read by counting the records of its ``metrics.jsonl`` (one per
finished epoch). The ETA is ``(sum over pending jobs of est(kind) + sum over running jobs of
max(est(kind) - elapsed, 0)) / parallel``, where ``est(kind)`` is the mean wall time of the jobs of that
kind that actually ran (reused ones excluded), or of all that ran while none of that kind has. On a
terminal the display is a ``rich`` Live panel; elsewhere (logs, CI) only one line per finished job.
"""
from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.markup import escape
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from nascli.bench.jobs import Job, JobObserver, Outcome

_MARK = {"ok": "[green]done[/]", "failed": "[red]FAILED[/]", "oom": "[red]OOM[/]", "killed": "[red]KILLED[/]",
         "skipped": "[yellow]skipped[/]"}


def format_seconds(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m" if h else (f"{m}m{s:02d}s" if m else f"{s}s")


def epochs_done(path: Path | None) -> int | None:
    """Finished epochs logged in a ``metrics.jsonl`` (``None`` while it does not exist)."""
    if path is None or not path.exists():
        return None
    try:
        return sum(1 for line in path.read_text().splitlines() if line.strip())
    except OSError:
        return None


class StudyProgress(JobObserver):
    """A :class:`~nascli.bench.jobs.JobObserver` that draws the study's state (use as a context manager)."""

    def __init__(self, console: Console, title: str, jobs: Sequence[Job], parallel: int, enabled: bool = True):
        self.console, self.title, self.parallel = console, title, max(1, parallel)
        self.jobs = list(jobs)
        self.kinds = {j.key: j.kind for j in self.jobs}
        self.outcomes: dict[str, Outcome] = {}
        self.running: dict[str, tuple[Job, float]] = {}
        self.live: Live | None = None
        self.enabled = enabled and console.is_terminal
        self._last = 0.0

    # ----------------------------------------------------------------- context
    def __enter__(self) -> "StudyProgress":
        if self.enabled:
            self.live = Live(self.render(), console=self.console, refresh_per_second=4, transient=True)
            self.live.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.live is not None:
            self.live.__exit__(*exc)
            self.live = None
        self.console.print(self.summary_line())

    # ----------------------------------------------------------------- observer hooks
    def started(self, job: Job) -> None:
        self.running[job.key] = (job, time.time())
        self._refresh(force=True)

    def finished(self, job: Job, outcome: Outcome) -> None:
        self.running.pop(job.key, None)
        self.outcomes[job.key] = outcome
        how = "reused" if outcome.reused else _MARK.get(outcome.status, escape(outcome.status))
        took = "" if outcome.reused or outcome.status == "skipped" else f" ({format_seconds(outcome.seconds)})"
        why = f": {escape(outcome.error)}" if outcome.error and not outcome.ok else ""
        self.console.print(f"  {how} {escape(job.title)}{took}{why}", soft_wrap=True)
        self._refresh(force=True)

    def tick(self, running: Sequence[Job]) -> None:
        self._refresh()

    # ----------------------------------------------------------------- rendering
    def _refresh(self, force: bool = False) -> None:
        now = time.time()
        if self.live is not None and (force or now - self._last > 0.5):
            self._last = now
            self.live.update(self.render())

    def counts(self) -> dict[str, int]:
        done = len(self.outcomes)
        failed = sum(1 for o in self.outcomes.values() if o.status not in ("ok", "skipped"))
        return {"total": len(self.jobs), "done": done, "running": len(self.running), "failed": failed,
                "skipped": sum(1 for o in self.outcomes.values() if o.status == "skipped"),
                "reused": sum(1 for o in self.outcomes.values() if o.reused)}

    def estimate(self, kind: str) -> float | None:
        ran = [(self.kinds[k], o.seconds) for k, o in self.outcomes.items() if not o.reused and o.status != "skipped"]
        same = [s for k, s in ran if k == kind]
        pool = same or [s for _, s in ran]
        return sum(pool) / len(pool) if pool else None

    def eta(self) -> float | None:
        now, total = time.time(), 0.0
        for job in self.jobs:
            if job.key in self.outcomes:
                continue
            est = self.estimate(job.kind)
            if est is None:
                return None
            if job.key in self.running:
                total += max(est - (now - self.running[job.key][1]), 0.0)
            else:
                total += est
        return total / self.parallel

    def summary_line(self) -> str:
        c = self.counts()
        return (f"[bold]{escape(self.title)}[/]: {c['done']}/{c['total']} jobs done ({c['reused']} reused), "
                f"{c['running']} running, {c['failed']} failed, {c['skipped']} skipped")

    def render(self) -> Group:
        c = self.counts()
        eta = self.eta()
        head = Text.from_markup(f"[bold]{escape(self.title)}[/]\n"
                                f"done {c['done']}/{c['total']} ({c['reused']} reused) · running {c['running']} · "
                                f"failed {c['failed']} · skipped {c['skipped']} · "
                                f"ETA {format_seconds(eta) if eta is not None else 'estimating'}")
        bar = ProgressBar(total=max(c["total"], 1), completed=c["done"], width=60)
        table = Table.grid(padding=(0, 2))
        now = time.time()
        for job, started in self.running.values():
            done = epochs_done(job.watch)
            epoch = f"epoch {done}/{job.epochs}" if done is not None and job.epochs else "running"
            table.add_row(escape(job.title), epoch, format_seconds(now - started))
        layout = Table.grid()
        layout.add_row(head)
        layout.add_row(bar)
        return Group(layout, table)
