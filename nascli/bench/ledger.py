"""Which of a study's jobs need no process, and the record of each job's outcome.

A job is reused (its outcome taken without starting ``nas``) by the rule of its kind (:data:`REUSE_RULES`):

* ``search``: its run directory holds a finished ``result.json`` (wherever that run was started from:
  another study, a plain ``nas search``, a sweep);
* ``derive``: the search run directory holds a finished derivation of the same selection with the same
  options (:func:`nascli.bench.derivations.finished_derivation`), whichever study or command made it;
* ``evaluate``: another job of this study already trained the same arch with the same seed (its lock),
  or this study's record of the job is ``ok`` with unchanged arguments and its run still holds that result.

Records live in ``<benchmark dir>/jobs/<key>.json`` (beside the job's log); a reused outcome is not
written again, so a record always describes the process that ran.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from nascli.bench.derivations import finished_derivation
from nascli.bench.graph import Derivation
from nascli.bench.jobs import Job, Launch, Outcome
from nascli.bench.study import read_json
from nascli.rundir import RunDir, atomic_write_json


def _run_still_holds(result: dict[str, Any] | None) -> bool:
    """Whether a stored ok outcome is still what its run directory says."""
    return bool(result) and RunDir(Path(result.get("run_dir", ""))).finished_result() == result


class Ledger:
    """Reuse decisions and job records of one study (module docstring)."""

    def __init__(self, directory: Path, search_dirs: dict[str, Path], derivations: dict[str, Derivation],
                 space: str):
        self.dir, self.search_dirs, self.derivations, self.space = directory, search_dirs, derivations, space
        self.by_lock: dict[str, Outcome] = {}
        self.locks: dict[str, str | None] = {}

    def path(self, key: str) -> Path:
        """The record file of job ``key``."""
        return self.dir / f"{key}.json"

    def reuse(self, job: Job, launch: Launch) -> Outcome | None:
        """The outcome of ``job`` without running it, or ``None`` when it has to run."""
        self.locks[job.key] = launch.lock
        rule = REUSE_RULES.get(job.kind, Ledger._recorded)
        return rule(self, job, launch)

    def record(self, job: Job, outcome: Outcome) -> None:
        """Remember an ok outcome under its lock; write the record of a job that ran."""
        lock = self.locks.get(job.key)
        if outcome.ok and lock:
            self.by_lock.setdefault(lock, outcome)
        if not outcome.reused:
            atomic_write_json(self.path(job.key), {**outcome.as_dict(), "reused": False})

    # ------------------------------------------------------------------ the rules
    def _finished_search(self, job: Job, launch: Launch) -> Outcome | None:
        done = RunDir(self.search_dirs[job.key]).finished_result()
        return Outcome("ok", result=done, argv=launch.argv) if done else None

    def _finished_derivation(self, job: Job, launch: Launch) -> Outcome | None:
        what = self.derivations[job.key]
        done = finished_derivation(what.run_dir, what.selection, self.space)
        return Outcome("ok", result=done, argv=launch.argv) if done else None

    def _recorded(self, job: Job, launch: Launch) -> Outcome | None:
        if launch.lock and launch.lock in self.by_lock:  # the same arch and seed, trained by another job
            return Outcome("ok", result=self.by_lock[launch.lock].result, argv=launch.argv)
        data = read_json(self.path(job.key))
        if not data or data.get("status") != "ok" or data.get("argv") != launch.argv:
            return None
        return Outcome.from_dict(data) if _run_still_holds(data.get("result")) else None


REUSE_RULES: dict[str, Callable[[Ledger, Job, Launch], Outcome | None]] = {
    "search": Ledger._finished_search,      # noqa: SLF001 - the rules are the class's own methods
    "derive": Ledger._finished_derivation,  # noqa: SLF001
    "evaluate": Ledger._recorded,           # noqa: SLF001
}
