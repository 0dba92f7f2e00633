"""The conformer supernet: the CTC frame (nascli/spaces/conformer/network.py) around N search blocks.

One alpha (10 edges x 9 ops, cell type ``cell``) is shared by every block, as DARTS shares one normal cell;
the mixer is asked for the edge weights once per forward pass.
"""
from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from nascli.data.speech.batch import CTCOutput, PaddedFeatures
from nascli.spaces.base import Supernet
from nascli.spaces.conformer.cell import SearchBlock
from nascli.spaces.conformer.network import CTCFrame, check_sizes
from nascli.spaces.edge import EdgePartSpec


class ConformerSupernet(Supernet):
    def __init__(self, space, mixer: nn.Module, vocab_size: int, in_features: int,
                 edge_parts: Sequence[EdgePartSpec] = (), *, d_model: int, heads: int, blocks: int,
                 dropout: float, max_relative: int, track_running_stats: bool = True):
        super().__init__()
        check_sizes(d_model, heads, blocks)
        self.space = space
        self.mixer = mixer
        self.edge_part_specs = nn.ModuleList(edge_parts)
        self.frame = CTCFrame(vocab_size, in_features, d_model)
        edges = space.edges("cell")
        self.blocks = nn.ModuleList(SearchBlock(edges, d_model, heads, dropout, max_relative, edge_parts,
                                                track_running_stats) for _ in range(blocks))

    def forward(self, x: PaddedFeatures) -> CTCOutput:
        w = self.mixer.edge_weights("cell")
        h, lengths, pad_mask = self.frame.start(x)
        for block in self.blocks:
            h = block(h, pad_mask, w)
        return self.frame.finish(h, lengths)
