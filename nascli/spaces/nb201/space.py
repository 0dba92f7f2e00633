"""NB201 as a :class:`SearchSpace`."""
from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import torch

from nascli.errors import BadArchError
from nascli.spaces import SPACES
from nascli.spaces.base import Edge, SearchSpace
from nascli.spaces.nb201.arch import NB201_EDGES, NB201_OPS, NUM_NODES, NB201Arch, parse_nb201


@SPACES.register("nb201")
class NB201Space(SearchSpace):
    name = "nb201"
    ops = NB201_OPS
    cell_types = ("cell",)
    parameter_free_ops = frozenset({"none", "skip_connect", "avg_pool_3x3"})

    def edges(self, cell_type: str = "cell") -> list[Edge]:
        return [Edge("cell", k, s, d, 1) for k, (s, d) in enumerate(NB201_EDGES)]

    def input_size_problem(self, image_size: int) -> str | None:
        """The two stride-2 ResNet blocks add AvgPool2d(2, 2) (floor) to a stride-2 conv (ceil): their
        shapes agree only when the size is even at both, i.e. divisible by 4 (METHODS.md 0.4)."""
        if image_size % 4:
            return (f"space nb201 needs an image size divisible by 4 (two stride-2 reductions), got "
                    f"{image_size}x{image_size}; pick dataset.resize from e.g. 8, 12, 16, 28, 32")
        return None

    def build_supernet(self, mixer, num_classes: int, in_channels: int, edge_parts=(), *, C: int = 16, N: int = 5,
                       impl: str = "fast", track_running_stats: bool = True):
        from nascli.spaces.nb201.supernet import NB201Supernet
        return NB201Supernet(self, mixer, num_classes, in_channels, edge_parts, C=C, N=N, impl=impl,
                             track_running_stats=track_running_stats)

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

    def cell_ops(self, arch: NB201Arch) -> dict[str, list[str]]:
        """The 6 edge ops of the one cell."""
        return {"cell": list(arch.ops)}

    def ground_truth(self, arch: NB201Arch, dataset: str) -> dict[str, Any] | None:
        """The NAS-Bench-201 table's accuracies of ``arch`` on ``dataset`` (None for datasets it lacks)."""
        from nascli.bench.nb201_table import lookup
        return lookup(arch.to_string(), dataset)

    def draw(self, arch: NB201Arch, directory: Path) -> list[Path]:
        """``cell.png``: nodes 0..3 (0 the input, 3 the output), ``none`` edges omitted."""
        from nascli.viz import draw_cell

        nodes = [str(i) for i in range(NUM_NODES)]
        edges = [(str(s), str(d), op) for s, d, op in arch.edges() if op != "none"]
        path = Path(directory) / "cell.png"
        draw_cell(path, title="NB201 cell", nodes=nodes, edges=edges, inputs=[nodes[0]], outputs=[nodes[-1]],
                  rank={n: i for i, n in enumerate(nodes)})
        return [path]
