"""Finding dataset files on disk, checksum-verified downloads, safe tarball extraction, and the
one-line missing-data error."""
from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
import urllib.request
from collections.abc import Iterable, Sequence
from pathlib import Path

from nascli.errors import DataMissingError

DOWNLOAD_TIMEOUT_S = 15.0  # per connection attempt; offline machines fail fast
_CHUNK = 1 << 20


def cache_dir(name: str) -> Path:
    """Default download location ``~/.cache/nascli/<name>`` (``$NASCLI_CACHE_DIR/<name>`` when set)."""
    base = os.environ.get("NASCLI_CACHE_DIR") or "~/.cache/nascli"
    return Path(base).expanduser() / name


def search_dirs(root: str | os.PathLike | None, *defaults: str | os.PathLike) -> list[Path]:
    """``root`` (if given) followed by ``defaults``, expanded, without duplicates, in order."""
    out: list[Path] = []
    for d in ([root] if root else []) + list(defaults):
        p = Path(d).expanduser()
        if p not in out:
            out.append(p)
    return out


def md5_of(path: str | os.PathLike) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


class DownloadFailed(Exception):
    """Every URL for a file failed; the message is one line listing the reasons."""


def download(urls: Sequence[str], dest: Path, md5: str | None, timeout: float = DOWNLOAD_TIMEOUT_S) -> Path:
    """Fetch the first URL that works into ``dest`` (via ``dest.part``, renamed after the md5 check)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    reasons = []
    for url in urls:
        try:
            digest = hashlib.md5()
            with urllib.request.urlopen(url, timeout=timeout) as response, open(part, "wb") as out:
                for chunk in iter(lambda: response.read(_CHUNK), b""):
                    digest.update(chunk)
                    out.write(chunk)
            if md5 is not None and digest.hexdigest() != md5:
                raise OSError(f"md5 {digest.hexdigest()} != expected {md5}")
            os.replace(part, dest)
            return dest
        except Exception as exc:  # network, HTTP, disk or checksum: try the next mirror
            reasons.append(f"{url}: {_one_line(exc)}")
            part.unlink(missing_ok=True)
    raise DownloadFailed("; ".join(reasons))


def verify_archive(archive: Path, md5: str | None, *, fix: str = "") -> None:
    """Refuse a local tar(.gz) that is not a tar archive or whose md5 differs from ``md5``, before any
    member is extracted (a truncated download, a renamed file, another release). One line, naming
    the file, what it is and what is expected; ``fix`` adds how to put it right."""
    tail = f"; {fix}" if fix else ""
    try:
        is_tar = tarfile.is_tarfile(archive)
    except OSError as exc:
        raise DataMissingError(f"{archive} cannot be read ({_one_line(exc)}){tail}") from None
    if not is_tar:
        raise DataMissingError(f"{archive} is not a tar archive; expected the official release"
                               f"{f' (md5 {md5})' if md5 else ''}{tail}")
    if md5 is not None:
        found = md5_of(archive)
        if found != md5:
            raise DataMissingError(f"{archive} has md5 {found}, expected {md5} (the official release){tail}")


def extract_members(archive: Path, dest: Path, members: Iterable[str]) -> None:
    """Extract exactly ``members`` (regular files, relative names) of a tar(.gz) into ``dest``."""
    wanted = set(members)
    try:
        tar = tarfile.open(archive, "r:*")
        found = {m.name.removeprefix("./"): m for m in tar.getmembers() if m.isfile()}
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise DataMissingError(f"{archive} is not a readable tar archive ({_one_line(exc)})") from None
    with tar:
        missing = sorted(wanted - found.keys())
        if missing:
            raise DataMissingError(f"{archive} lacks {', '.join(missing)}")
        dest.mkdir(parents=True, exist_ok=True)
        for name in sorted(wanted):
            target = dest / name
            if not target.resolve().is_relative_to(dest.resolve()):
                raise DataMissingError(f"{archive}: unsafe member name {name!r}")
            target.parent.mkdir(parents=True, exist_ok=True)
            src = tar.extractfile(found[name])
            assert src is not None
            tmp = target.with_name(target.name + ".part")
            with src, open(tmp, "wb") as out:
                shutil.copyfileobj(src, out, _CHUNK)
            os.replace(tmp, target)


def is_writable_dir(path: Path) -> bool:
    """True when ``path`` exists (or can be created) and files can be written in it."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError:
        return False
    return os.access(path, os.W_OK)


def missing_data_error(dataset: str, files: Sequence[str], dirs: Sequence[Path], note: str = "") -> DataMissingError:
    """One-line error naming the dataset, the expected files, the folders searched and the fix."""
    where = ", ".join(str(d) for d in dirs) or "(no folder)"
    extra = f"; {note}" if note else ""
    return DataMissingError(
        f"{dataset}: data files not found: expected {', '.join(files)} in one of [{where}]{extra}; "
        f"put them in a folder and pass dataset.root=/path/to/folder"
    )


def _one_line(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}"
    return " ".join(text.split())
