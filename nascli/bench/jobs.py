"""Run a study's jobs (``nas search`` / ``derive`` / ``evaluate``) as isolated subprocesses.

Each job is ``python -m nascli <command> <overrides...>`` in its own process, so a crash or an
out-of-memory kill of one job is recorded as that job's outcome and the study goes on. Jobs declare
the jobs they depend on; a job whose dependency did not succeed is ``skipped``. At most ``parallel``
jobs run at once, started in plan order. A job's stdout (the one JSON result line) and stderr (its log)
go to files under ``log_dir``; children get ``PR_SET_PDEATHSIG`` on Linux, so killing the study kills
its running jobs too (their run directories then resume on the next study).

Outcome statuses: ``ok`` | ``failed`` (non-zero exit or no ok result line) | ``oom`` (an out-of-memory
message in the log) | ``killed`` (ended by a signal) | ``skipped`` (a dependency did not succeed).
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

OOM_MARKERS = ("out of memory", "outofmemoryerror", "cannot allocate memory", "memoryerror",
               "defaultcpuallocator: can't allocate")


_BOILERPLATE = ("Set the environment variable HYDRA_FULL_ERROR",)  # Hydra's footer under every traceback


@dataclass(frozen=True)
class Launch:
    """What :attr:`Job.prepare` returns: the ``nas`` arguments, and an optional lock name (two jobs with
    the same lock never run at once: they would write the same run directory)."""

    argv: list[str]
    lock: str | None = None


@dataclass
class Job:
    key: str                                        # unique and file-name safe
    kind: str                                       # search | derive | evaluate
    title: str                                      # for people: "search darts seed=0"
    prepare: Callable[[dict[str, "Outcome"]], Launch]  # built when the dependencies are done
    deps: tuple[str, ...] = ()
    watch: Path | None = None                       # metrics.jsonl to tail for the progress display
    epochs: int | None = None                       # epochs expected in ``watch``


@dataclass
class Outcome:
    status: str
    result: dict[str, Any] | None = None
    error: str | None = None
    reused: bool = False
    seconds: float = 0.0
    argv: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Outcome":
        return cls(**{k: data[k] for k in ("status", "result", "error", "reused", "seconds", "argv") if k in data})


def last_json_line(text: str) -> dict[str, Any] | None:
    """The last line of ``text`` that parses as a JSON object (a command's result line)."""
    for line in reversed(text.splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                obj = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(obj, dict):
                return obj
    return None


def error_line(stderr: str, limit: int = 300) -> str | None:
    """The most telling line of a failed job's log: its last non-empty line, shortened."""
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip() and not ln.startswith(_BOILERPLATE)]
    if not lines:
        return None
    line = lines[-1]
    return line if len(line) <= limit else line[: limit - 3] + "..."


def classify(returncode: int, result: dict[str, Any] | None, stderr: str) -> tuple[str, str | None]:
    """``(status, error)`` of a finished job from its exit code, result line and log (module docstring)."""
    if returncode == 0 and result is not None and result.get("status") == "ok":
        return "ok", None
    lowered = stderr.lower()
    if any(marker in lowered for marker in OOM_MARKERS):
        return "oom", error_line(stderr)
    if returncode < 0:
        name = signal.Signals(-returncode).name if -returncode in signal.valid_signals() else str(-returncode)
        note = " (the kernel's out-of-memory killer sends SIGKILL)" if -returncode == signal.SIGKILL else ""
        return "killed", f"killed by {name}{note}"
    if returncode == 0:
        status = str(result.get("status")) if result else "failed"
        return (status if status != "ok" else "failed"), error_line(stderr) or "no result line on stdout"
    return "failed", error_line(stderr) or f"exit code {returncode}"


def _die_with_parent() -> None:  # pragma: no cover - runs in the child
    """Linux: deliver SIGKILL to this child when the study process dies (prctl PR_SET_PDEATHSIG)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)
    except (OSError, AttributeError):
        pass


class _Running:
    def __init__(self, job: Job, launch: Launch, proc: subprocess.Popen, out: IO, err: IO, started: float,
                 out_path: Path, err_path: Path, slot: int):
        self.job, self.launch, self.proc = job, launch, proc
        self.out, self.err, self.started = out, err, started
        self.out_path, self.err_path, self.slot = out_path, err_path, slot


class JobObserver:
    """Hooks of :func:`run_jobs` (the progress display implements them); all optional."""

    def started(self, job: Job) -> None: ...

    def finished(self, job: Job, outcome: Outcome) -> None: ...

    def tick(self, running: Sequence[Job]) -> None: ...


def run_jobs(jobs: Sequence[Job], *, parallel: int, log_dir: Path,
             reuse: Callable[[Job, Launch], Outcome | None] | None = None,
             on_done: Callable[[Job, Outcome], None] | None = None,
             observer: JobObserver | None = None, poll_s: float = 0.2,
             env: dict[str, str] | None = None, program: Sequence[str] = (),
             slot_env: Callable[[int], dict[str, str]] | None = None) -> dict[str, Outcome]:
    """Run ``jobs`` (in plan order, dependencies first) and return every job's :class:`Outcome` by key.

    ``reuse(job, launch)`` may return a stored outcome instead of starting the process (finished runs);
    ``on_done(job, outcome)`` is called once per job, reused or not, e.g. to persist a ledger.
    ``program`` is what runs a job's arguments (default ``python -m nascli``). ``slot_env(slot)`` adds
    environment variables for the ``slot``-th of the ``parallel`` concurrent processes (the lowest free
    slot is used), e.g. a different ``CUDA_VISIBLE_DEVICES`` per slot.
    """
    program = list(program) or [sys.executable, "-m", "nascli"]
    observer = observer or JobObserver()
    keys = [j.key for j in jobs]
    if len(set(keys)) != len(keys):
        raise ValueError("job keys must be unique")
    known = set(keys)
    for job in jobs:
        missing = [d for d in job.deps if d not in known]
        if missing:
            raise ValueError(f"job {job.key} depends on unknown jobs {missing}")
    log_dir.mkdir(parents=True, exist_ok=True)
    child_env = dict(os.environ, PYTHONUNBUFFERED="1", COLUMNS="200")
    child_env.update(env or {})
    outcomes: dict[str, Outcome] = {}
    pending = list(jobs)
    running: list[_Running] = []
    prepared: dict[str, Launch] = {}

    def finish(job: Job, outcome: Outcome) -> None:
        outcomes[job.key] = outcome
        if on_done:
            on_done(job, outcome)
        observer.finished(job, outcome)

    while pending or running:
        started_any = True
        while started_any and len(running) < max(1, parallel):
            started_any = False
            held = {r.launch.lock for r in running if r.launch.lock}
            for job in list(pending):
                if any(d not in outcomes for d in job.deps):
                    continue
                bad = [d for d in job.deps if not outcomes[d].ok]
                if bad:
                    pending.remove(job)
                    finish(job, Outcome("skipped", error=f"{bad[0]} did not succeed ({outcomes[bad[0]].status})"))
                    started_any = True
                    break
                if job.key not in prepared:
                    try:
                        prepared[job.key] = job.prepare(outcomes)
                    except Exception as exc:  # noqa: BLE001 - a broken plan entry is that job's failure
                        pending.remove(job)
                        finish(job, Outcome("failed", error=f"{type(exc).__name__}: {exc}"))
                        started_any = True
                        break
                launch = prepared[job.key]
                if launch.lock and launch.lock in held:
                    continue
                stored = reuse(job, launch) if reuse else None
                pending.remove(job)
                if stored is not None:
                    stored.reused = True
                    finish(job, stored)
                else:
                    slot = min(set(range(max(1, parallel))) - {r.slot for r in running})
                    job_env = {**child_env, **(slot_env(slot) if slot_env else {})}
                    running.append(_spawn(program, job, launch, log_dir, job_env, slot))
                    observer.started(job)
                started_any = True
                break
        for r in list(running):
            code = r.proc.poll()
            if code is None:
                continue
            running.remove(r)
            r.out.close()
            r.err.close()
            stdout = r.out_path.read_text(errors="replace")
            stderr = r.err_path.read_text(errors="replace").split("\n", 1)[-1]  # minus the "$ nas ..." line
            result = last_json_line(stdout)
            status, error = classify(code, result, stderr)
            finish(r.job, Outcome(status, result=result, error=error, seconds=round(time.time() - r.started, 3),
                                  argv=list(r.launch.argv)))
        observer.tick([r.job for r in running])
        if running:
            time.sleep(poll_s)
    return outcomes


def _spawn(program: list[str], job: Job, launch: Launch, log_dir: Path, env: dict[str, str], slot: int) -> _Running:
    out_path, err_path = log_dir / f"{job.key}.out", log_dir / f"{job.key}.log"
    out, err = open(out_path, "w"), open(err_path, "w")
    err.write("$ nas " + " ".join(launch.argv) + "\n")
    err.flush()
    proc = subprocess.Popen([*program, *launch.argv], stdout=out, stderr=err,
                            stdin=subprocess.DEVNULL, env=env,
                            preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None)
    return _Running(job, launch, proc, out, err, time.time(), out_path, err_path, slot)
