"""NB201 as a :class:`SearchSpace`."""
from __future__ import annotations

import random
from typing import Any

import torch

from nascli.errors import BadArchError
from nascli.spaces import SPACES
from nascli.spaces.base import Edge, SearchSpace, SupernetOptions
from nascli.spaces.nb201.arch import NB201_EDGES, NB201_OPS, NB201Arch, parse_nb201


@SPACES.register("nb201")
class NB201Space(SearchSpace):
    name = "nb201"
    ops = NB201_OPS
    cell_types = ("cell",)

    def edges(self, cell_type: str = "cell") -> list[Edge]:
        return [Edge("cell", k, s, d, 1) for k, (s, d) in enumerate(NB201_EDGES)]

    def build_supernet(self, mixer, num_classes: int, in_channels: int, options: SupernetOptions,
                       C: int = 16, N: int = 5, impl: str = "fast", **_: Any):
        from nascli.spaces.nb201.supernet import NB201Supernet
        return NB201Supernet(self, mixer, num_classes, in_channels, options, C=C, N=N, impl=impl)

    def build_network(self, arch, num_classes: int, in_channels: int = 3, C: int = 16, N: int = 5, **_: Any):
        from nascli.spaces.nb201.network import NB201Network
        return NB201Network(arch, num_classes, in_channels, C=C, N=N)

    def parse_arch(self, text: str) -> NB201Arch:
        return parse_nb201(text)

    def arch_from_json(self, data: dict[str, Any]) -> NB201Arch:
        """``{"space": "nb201", "arch": "<NB201 string>", ...}`` (other keys ignored); one-line BadArchError
        for any other shape."""
        if not isinstance(data, dict):
            raise BadArchError(f"NB201 arch JSON must be an object with \"space\": \"nb201\" and \"arch\", "
                               f"got a {type(data).__name__}")
        if data.get("space") != "nb201" or "arch" not in data:
            raise BadArchError(f"not an NB201 arch.json (space={data.get('space')!r}); expected \"space\": \"nb201\" "
                               "and \"arch\": an NB201 string")
        if not isinstance(data["arch"], str):
            raise BadArchError(f"NB201 arch.json \"arch\" is {data['arch']!r}; expected an NB201 string like "
                               "'|nor_conv_3x3~0|+|nor_conv_3x3~0|skip_connect~1|+|...~0|...~1|...~2|'")
        return parse_nb201(data["arch"])

    def random_arch(self, rng: random.Random) -> NB201Arch:
        return NB201Arch([rng.choice(NB201_OPS) for _ in NB201_EDGES])

    def discretize(self, op_scores: dict[str, torch.Tensor], edge_scores=None, rule: str = "default") -> NB201Arch:
        """NB201 rule (AutoDL search_model_darts.genotype): argmax per edge over all 5 ops, ``none``
        included; every node keeps all of its edges. Ties go to the lower op index."""
        if rule != "default":
            raise BadArchError(f"unknown NB201 derivation rule {rule!r}; valid rules: default")
        scores = op_scores["cell"]
        return NB201Arch([NB201_OPS[int(torch.argmax(row))] for row in scores])

    def skip_count(self, arch: NB201Arch) -> int:
        return sum(op == "skip_connect" for op in arch.ops)
