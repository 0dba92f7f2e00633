"""One process per run directory: an advisory ``flock`` on ``<run dir>/.lock``.

The lock belongs to an open file description, so the operating system releases it when its holder
exits in any way, ``kill -9`` included: a lock is never stale. The holder writes its pid (and host)
into the file so that a refused process can name it. The lock file itself is never deleted while
the directory is in use: deleting a lock file lets two processes lock two different files. A
directory that the lock created and that is still empty when the lock is released is removed again.
"""
from __future__ import annotations

import errno
import fcntl
import os
import socket
import time
from pathlib import Path

from nascli.errors import RunLockedError

LOCK_NAME = ".lock"


def _read_holder(path: Path, wait_s: float = 1.0) -> str:
    """The holder line of a lock file (the holder writes it just after locking, so wait briefly)."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            text = path.read_text().strip()
        except OSError:
            text = ""
        if text or time.monotonic() >= deadline:
            return text
        time.sleep(0.02)


def _holder_words(text: str) -> str:
    pid, _, host = text.partition(" ")
    if not pid.isdigit():
        return "another process"
    return f"process {pid}" + (f" on {host}" if host and host != socket.gethostname() else "")


class RunLock:
    """Exclusive ownership of ``directory``; :meth:`acquire` raises :class:`RunLockedError` at once
    (no waiting) when another process holds it. Usable as a context manager."""

    def __init__(self, directory: Path):
        self.directory = Path(directory)
        self.path = self.directory / LOCK_NAME
        self._fd: int | None = None
        self._created: list[Path] = []

    @property
    def held(self) -> bool:
        return self._fd is not None

    def _make_directory(self) -> None:
        missing = []
        for d in (self.directory, *self.directory.parents):
            if d.exists():
                break
            missing.append(d)
        self.directory.mkdir(parents=True, exist_ok=True)
        self._created = self._created or missing  # deepest first

    def acquire(self) -> "RunLock":
        """Take the lock; rule: the locked file must still be the one at ``self.path`` (it may have been
        removed by a holder that found its directory empty), else try again."""
        if self._fd is not None:
            raise RuntimeError(f"{self.path} is already locked by this object")
        for _ in range(50):
            self._make_directory()
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            except FileNotFoundError:  # the directory was removed between mkdir and open
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                os.close(fd)
                if exc.errno not in (errno.EAGAIN, errno.EWOULDBLOCK, errno.EACCES):
                    raise
                holder = _holder_words(_read_holder(self.path))
                raise RunLockedError(f"run directory {self.directory} is in use by {holder}; wait for it to "
                                     "finish or stop it, then run this command again") from None
            try:
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if not same:
                os.close(fd)
                continue
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()} {socket.gethostname()}\n".encode())
            self._fd = fd
            return self
        raise RunLockedError(f"run directory {self.directory}: could not lock {self.path}; run the command again")

    def release(self) -> None:
        """Unlock; a directory this lock created that holds nothing but the lock file is removed."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            if self._created and [p.name for p in self.directory.iterdir()] == [LOCK_NAME]:
                self.path.unlink()  # still locked here, so nobody can be holding this file
                for d in self._created:
                    try:
                        d.rmdir()
                    except OSError:
                        break
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
            self._created = []

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()
