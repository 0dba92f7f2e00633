"""Official zip releases (DIV2K): find a local zip or download it (md5-checked), then extract its PNG
members safely (no member outside the destination folder)."""
from __future__ import annotations

import os
import shutil
import zipfile
from dataclasses import dataclass
from pathlib import Path

from nascli.data.download import DownloadFailed, download, md5_of
from nascli.errors import DataMissingError

_CHUNK = 1 << 20


@dataclass(frozen=True)
class ZipRelease:
    """One official zip: its file name, download URL and md5, and the folder its members unpack to."""

    file: str
    url: str
    md5: str | None
    folder: str


def extract_zip(archive: Path, dest: Path, md5: str | None) -> None:
    """Check ``archive`` (a zip whose md5 is ``md5`` when given) and extract its files into ``dest``."""
    if md5 is not None and (found := md5_of(archive)) != md5:
        raise DataMissingError(f"{archive} has md5 {found}, expected {md5} (the official release); "
                               "delete it to download again, or place the extracted folders in dataset.root")
    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError) as exc:
        raise DataMissingError(f"{archive} is not a readable zip archive ({' '.join(str(exc).split())})") from None
    root = dest.resolve()
    with zf:
        for info in zf.infolist():
            if info.is_dir():
                continue
            target = dest / info.filename
            if not target.resolve().is_relative_to(root):
                raise DataMissingError(f"{archive}: unsafe member name {info.filename!r}")
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(target.name + ".part")
            with zf.open(info) as src, open(tmp, "wb") as out:
                shutil.copyfileobj(src, out, _CHUNK)
            os.replace(tmp, target)


def fetch_release(release: ZipRelease, dest: Path) -> None:
    """Make ``dest/<release.folder>`` exist: extract ``dest/<release.file>`` when present (md5-checked first),
    else download it (``download`` checks the md5 while writing; raises :class:`DownloadFailed` when every
    attempt fails) and extract it."""
    archive = dest / release.file
    if archive.is_file():
        extract_zip(archive, dest, release.md5)
        return
    dest.mkdir(parents=True, exist_ok=True)
    extract_zip(download([release.url], archive, release.md5), dest, None)


__all__ = ["DownloadFailed", "ZipRelease", "extract_zip", "fetch_release"]
