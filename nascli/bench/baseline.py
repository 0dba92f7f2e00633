"""The random baseline's arch files: ``<benchmark dir>/baseline/sample_<k>.json``, what ``nas evaluate`` trains.

Each file is the sampled arch's JSON with a provenance ``{baseline, sample, seed}``; a file that already
holds exactly that is left untouched (its evaluate job's arguments, and so its reuse, stay the same).
"""
from __future__ import annotations

from pathlib import Path

from nascli.bench.study import read_json
from nascli.rundir import atomic_write_json


def write_baseline(bdir: Path, archs: list, seed: int) -> list[Path]:
    """The arch file of every sample, in sample order (module docstring)."""
    files = []
    for k, arch in enumerate(archs):
        data = arch.to_json()
        data["provenance"] = {"baseline": "uniform random sample", "sample": k, "seed": seed}
        path = bdir / "baseline" / f"sample_{k:02d}.json"
        if read_json(path) != data:
            atomic_write_json(path, data)
        files.append(path)
    return files
