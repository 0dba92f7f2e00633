"""``nas benchmark``: not implemented yet; says so clearly and exits non-zero."""
from __future__ import annotations

from omegaconf import DictConfig

from nascli.errors import NasError


class NotImplementedYet(NasError):
    exit_code = 3


def benchmark(cfg: DictConfig) -> None:
    raise NotImplementedYet("`nas benchmark` is not implemented yet (planned: methods x seeds studies); "
                            "for now run `nas search -m seed=0,1,2,3 method=darts,darts_minus` and compare result.json files")
