"""NAS-Bench-201's official split index files, shipped as package data in ``nascli/data/nb201_splits/``.

The originals (D-X-Y/AutoDL-Projects @ f46486e21b71ae6459a700be720d7648b5429569,
``configs/nas-benchmark/``, MIT licence; provenance and licence beside the data) are JSON files
``{part: ["int", [index strings]]}`` whose two parts are sorted and partition ``0..total-1`` of one
split of a dataset. They are stored losslessly in one file, ``nb201_splits.json.gz``:

    {"format": 1, "files": {<original name>: {"sha256": <sha256 of the original file>, "total": N,
        "parts": {<part>: {"count": n, "sha256": <sha256 of the indices as "i0,i1,...">,
                           "deltas": [i0, i1 - i0, i2 - i1, ...]}}}}}

Rule: index ``k`` of a part is ``sum(deltas[:k + 1])``. :func:`load_index_file` checks, on every load,
that each part decodes to ``count`` strictly increasing indices with the recorded digest and that the
parts partition ``0..total-1``. :func:`pack` is the transformation that produced the shipped file
(``python -m nascli.data.official_splits <folder of the originals>`` rewrites it); the product itself
never reads the originals.
"""
from __future__ import annotations

import gzip
import hashlib
import json
import sys
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch

from nascli.errors import NasError

PACKED = Path(__file__).resolve().parent / "nb201_splits" / "nb201_splits.json.gz"
FORMAT = 1
SHIPPED_FILES = ("cifar-split.txt", "cifar100-test-split.txt", "imagenet-16-120-test-split.txt")
"""The originals the product uses. ``ImageNet16-120-split.txt`` (a half/half split of the ImageNet16-120
training images) is not shipped: NB201's ImageNet16-120 search uses the xvalid half of ``val_data``."""


@dataclass(frozen=True)
class Nb201Split:
    """How one dataset uses its NB201 index file.

    ``indexes`` names the split the file's indices point into (``"train"`` or ``"test"``). Search:
    the weights train on the ``weights`` part of the indexed train split, or on the whole train split
    when ``weights`` is None; the architecture trains on the ``arch`` part. Evaluation reports test
    accuracy on the ``held_out`` part of the test split (never seen by the search), or on the whole
    test split when ``held_out`` is None.
    """

    file: str
    indexes: str
    arch: str
    weights: str | None = None
    held_out: str | None = None


@dataclass(frozen=True)
class IndexFile:
    """One decoded index file: ``parts`` maps each part name to its sorted int64 indices."""

    name: str
    total: int
    parts: dict[str, torch.Tensor]
    source_sha256: str

    def part(self, name: str) -> torch.Tensor:
        if name not in self.parts:
            raise NasError(f"{self.name} has no part {name!r}; parts: {', '.join(sorted(self.parts))}")
        return self.parts[name]


def _digest(indices: list[int]) -> str:
    return hashlib.sha256(",".join(map(str, indices)).encode()).hexdigest()


def _damaged(what: str) -> NasError:
    return NasError(f"{PACKED} is damaged ({what}); reinstall nascli")


def _decode(file: str, entry: dict[str, Any]) -> IndexFile:
    total = int(entry["total"])
    parts: dict[str, torch.Tensor] = {}
    for part, packed in entry["parts"].items():
        deltas = torch.tensor(packed["deltas"], dtype=torch.int64)
        indices = torch.cumsum(deltas, 0)
        if len(indices) != int(packed["count"]) or (len(indices) > 1 and bool((deltas[1:] <= 0).any())):
            raise _damaged(f"{file} {part}: not {packed['count']} strictly increasing indices")
        if _digest(indices.tolist()) != packed["sha256"]:
            raise _damaged(f"{file} {part}: checksum mismatch")
        parts[part] = indices
    union = torch.cat(list(parts.values())).sort().values
    if not torch.equal(union, torch.arange(total)):
        raise _damaged(f"{file}: parts do not partition 0..{total - 1}")
    return IndexFile(file, total, parts, str(entry["sha256"]))


@lru_cache(maxsize=None)
def _document() -> dict[str, Any]:
    try:
        doc = json.loads(gzip.decompress(PACKED.read_bytes()))
    except (OSError, ValueError) as exc:
        raise NasError(f"cannot read NB201's split indices {PACKED} ({exc}); reinstall nascli") from None
    if doc.get("format") != FORMAT:
        raise _damaged(f"format {doc.get('format')!r}, expected {FORMAT}")
    return doc


@lru_cache(maxsize=None)
def load_index_file(name: str) -> IndexFile:
    """The shipped, verified copy of NB201's index file ``name`` (e.g. ``"cifar-split.txt"``)."""
    files = _document()["files"]
    if name not in files:
        raise NasError(f"no NB201 index file {name!r} is shipped; shipped: {', '.join(sorted(files))}")
    return _decode(name, files[name])


# ---------------------------------------------------------------- the packing transformation

def read_original(path: Path) -> dict[str, list[int]]:
    """An AutoDL index file ``{part: ["int", [index strings]]}`` as ``{part: [int, ...]}``."""
    raw = json.loads(Path(path).read_text())
    out = {}
    for part, value in raw.items():
        if not (isinstance(value, list) and len(value) == 2 and value[0] == "int"):
            raise NasError(f"{path}: part {part!r} is not [\"int\", [indices]]")
        out[part] = [int(v) for v in value[1]]
    return out


def pack(folder: Path, names: tuple[str, ...] = SHIPPED_FILES) -> dict[str, Any]:
    """The shipped document built from the original files ``names`` in ``folder`` (see the module doc)."""
    files = {}
    for name in names:
        path = Path(folder) / name
        parts = read_original(path)
        for part, indices in parts.items():
            if indices != sorted(set(indices)):
                raise NasError(f"{path}: part {part!r} is not sorted without repeats; the delta coding needs that")
        total = sum(len(v) for v in parts.values())
        files[name] = {
            "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
            "total": total,
            "parts": {part: {"count": len(v), "sha256": _digest(v),
                             "deltas": [v[0]] + [b - a for a, b in zip(v, v[1:])] if v else []}
                      for part, v in parts.items()},
        }
    return {"format": FORMAT, "source": "D-X-Y/AutoDL-Projects@f46486e21b71ae6459a700be720d7648b5429569 "
                                        "configs/nas-benchmark/ (MIT)", "files": files}


def write_packed(folder: Path, dest: Path = PACKED) -> None:
    """Write :func:`pack` of ``folder`` to ``dest`` (deterministic bytes: no gzip timestamp)."""
    text = json.dumps(pack(folder), separators=(",", ":"), sort_keys=True)
    dest.write_bytes(gzip.compress(text.encode(), compresslevel=9, mtime=0))


if __name__ == "__main__":  # python -m nascli.data.official_splits <folder of the original files>
    write_packed(Path(sys.argv[1]))
