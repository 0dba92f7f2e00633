"""Discrete DARTS networks for training from scratch: NetworkCIFAR and NetworkImageNet.

Reference: quark0/darts@f276dd3 ``cnn/model.py`` (METHODS.md §0.2, §0.3), reproduced module for module so
that parameter counts and multiply-adds equal the reference's:

* Cell: ``preprocess0`` = FactorizedReduce(C_pp -> C) after a reduction cell, else ReLU-Conv1x1-BN;
  ``preprocess1`` = ReLU-Conv1x1-BN; each genotype pair ``(op, j)`` becomes ``op_set.factories[op](C, stride,
  affine=True)`` (the space's :class:`~nascli.spaces.darts.ops.OpSet`, by default ``CELL_OPS``)
  with stride 2 when the cell reduces and ``j < 2`` (``CELL_OPS``: the 8 PRIMITIVES and R-DARTS's ``noise``, which
  stays noise in evaluation as in R-DARTS); node = sum of its two op outputs; output = concat of
  the ``*_concat`` nodes. In training with ``drop_prob > 0`` every op output that is not an Identity
  (stride-1 ``skip_connect``) goes through drop path: a per-sample Bernoulli(1 - p) mask, scaled by 1/(1 - p).
* NetworkCIFAR(C=36, layers=20): stem Conv3x3(in -> 3C) + BN; reduction cells at layers//3 and
  2*layers//3 (C doubles there); auxiliary head after cell 2*layers//3; global average pool + Linear.
* NetworkImageNet(C=48, layers=14): stem0 = Conv3x3 s2 (in -> C/2), BN, ReLU, Conv3x3 s2 (C/2 -> C), BN;
  stem1 = ReLU, Conv3x3 s2, BN; the first cell sees ``reduction_prev=True``; AvgPool(7) + Linear.

``forward`` returns the logits in eval mode (and in training without an auxiliary head) and
``(logits, aux_logits)`` in training with the auxiliary head. The auxiliary head's parameters have
``auxiliary`` in their names, so DARTS's ``count_parameters_in_MB`` (which skips them) is
:func:`nascli.profile.count_parameters`.
"""
from __future__ import annotations

import torch
from torch import nn

from nascli.spaces.darts.genotype import DartsArch
from nascli.spaces.darts.ops import DARTS_OP_SET, FactorizedReduce, OpSet, ReLUConvBN


def drop_path(x: torch.Tensor, drop_prob: float) -> torch.Tensor:
    """Zero whole samples with probability ``drop_prob`` and rescale the rest by ``1/(1 - drop_prob)``."""
    if drop_prob <= 0.0:
        return x
    keep = 1.0 - drop_prob
    mask = torch.empty(x.shape[0], 1, 1, 1, device=x.device, dtype=x.dtype).bernoulli_(keep)
    return x / keep * mask


class Cell(nn.Module):
    """One discrete DARTS cell (normal or reduction) built from a genotype."""

    def __init__(self, genotype: DartsArch, C_prev_prev: int, C_prev: int, C: int, reduction: bool,
                 reduction_prev: bool, op_set: OpSet = DARTS_OP_SET):
        super().__init__()
        self.reduction = reduction
        if reduction_prev:
            self.preprocess0: nn.Module = FactorizedReduce(C_prev_prev, C)
        else:
            self.preprocess0 = ReLUConvBN(C_prev_prev, C, 1, 1, 0)
        self.preprocess1 = ReLUConvBN(C_prev, C, 1, 1, 0)
        cell_type = "reduce" if reduction else "normal"
        pairs = genotype.cell(cell_type)
        self._steps = len(pairs) // 2
        self._concat = tuple(genotype.concat(cell_type))
        self.multiplier = len(self._concat)
        self._indices = tuple(src for _, src in pairs)
        self._ops = nn.ModuleList(
            op_set.factories[op](C, 2 if reduction and src < 2 else 1, True) for op, src in pairs
        )

    def forward(self, s0: torch.Tensor, s1: torch.Tensor, drop_prob: float) -> torch.Tensor:
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        drop = self.training and drop_prob > 0.0
        for i in range(self._steps):
            node = 0
            for k in (2 * i, 2 * i + 1):
                op = self._ops[k]
                h = op(states[self._indices[k]])
                if drop and not isinstance(op, nn.Identity):
                    h = drop_path(h, drop_prob)
                node = node + h
            states.append(node)
        return torch.cat([states[i] for i in self._concat], dim=1)


class AuxiliaryHeadCIFAR(nn.Module):
    """Auxiliary classifier on the 8x8 output of cell 2*layers//3 (quark0 model.py)."""

    def __init__(self, C: int, num_classes: int):
        super().__init__()
        self.features = nn.Sequential(
            nn.ReLU(inplace=False),  # reference: inplace on the trunk's s1 (same values); kept out of place
            nn.AvgPool2d(5, stride=3, padding=0, count_include_pad=False),  # 8x8 -> 2x2
            nn.Conv2d(C, 128, 1, bias=False),
            nn.BatchNorm2d(128),
            nn.ReLU(inplace=True),
            nn.Conv2d(128, 768, 2, bias=False),
            nn.BatchNorm2d(768),
            nn.ReLU(inplace=True),
        )
        self.classifier = nn.Linear(768, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)
        return self.classifier(x.flatten(1))


class AuxiliaryHeadImageNet(nn.Module):
    """Auxiliary classifier of the ImageNet network (quark0 model.py). As in the reference, there is no
    BatchNorm after the 2x2 conv (the reference keeps it commented out "for consistency with the
    experiments in the paper"). At 224x224 input the head sees 7x7 maps (5x5 pool stride 2 -> 2x2)."""

    def __init__(self, C: int, num_classes: int):
        super().__init__()
        self.features = nn.Sequential(
            nn.ReLU(inplace=False),  # reference: inplace (same values); kept out of place
            nn.AvgPool2d(5, stride=2, padding=0, count_include_pad=False),
            nn.Conv2d(C, 128, 1, bias=False),
            nn.BatchNorm2d(128),
            nn.ReLU(inplace=True),
            nn.Conv2d(128, 768, 2, bias=False),
            nn.ReLU(inplace=True),
        )
        self.classifier = nn.Linear(768, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)
        return self.classifier(x.flatten(1))


def _build_cells(genotype: DartsArch, C: int, layers: int, C_prev_prev: int, C_prev: int,
                 reduction_prev: bool, op_set: OpSet = DARTS_OP_SET) -> tuple[nn.ModuleList, int, int]:
    """The cell stack; returns (cells, C_prev of the last cell, C_prev after cell 2*layers//3)."""
    cells = nn.ModuleList()
    C_curr = C
    C_aux = C_prev
    for i in range(layers):
        reduction = i in (layers // 3, 2 * layers // 3)
        if reduction:
            C_curr *= 2
        cell = Cell(genotype, C_prev_prev, C_prev, C_curr, reduction, reduction_prev, op_set)
        reduction_prev = reduction
        cells.append(cell)
        C_prev_prev, C_prev = C_prev, cell.multiplier * C_curr
        if i == 2 * layers // 3:
            C_aux = C_prev
    return cells, C_prev, C_aux


def _check_args(genotype: DartsArch, layers: int) -> None:
    if not isinstance(genotype, DartsArch):
        raise TypeError(f"genotype must be a DartsArch, got {type(genotype).__name__}")
    if layers < 3:
        raise ValueError(f"a DARTS network needs at least 3 cells (two of them reduce), got layers={layers}")


class NetworkCIFAR(nn.Module):
    """The DARTS evaluation network for 32x32-ish inputs (CIFAR protocol, METHODS.md §0.2)."""

    def __init__(self, C: int, num_classes: int, layers: int, auxiliary: bool, genotype: DartsArch,
                 in_channels: int = 3, stem_multiplier: int = 3, drop_path_prob: float = 0.0,
                 op_set: OpSet = DARTS_OP_SET):
        super().__init__()
        _check_args(genotype, layers)
        self._layers = layers
        self._auxiliary = auxiliary
        self.drop_path_prob = drop_path_prob  # set per epoch by the training loop (0.2 * epoch / epochs)
        C_stem = stem_multiplier * C
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, C_stem, 3, padding=1, bias=False),
            nn.BatchNorm2d(C_stem),
        )
        self.cells, C_prev, C_aux = _build_cells(genotype, C, layers, C_stem, C_stem, reduction_prev=False,
                                                 op_set=op_set)
        if auxiliary:
            self.auxiliary_head = AuxiliaryHeadCIFAR(C_aux, num_classes)
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(C_prev, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        logits_aux = None
        s0 = s1 = self.stem(x)
        for i, cell in enumerate(self.cells):
            s0, s1 = s1, cell(s0, s1, self.drop_path_prob)
            if i == 2 * self._layers // 3 and self._auxiliary and self.training:
                logits_aux = self.auxiliary_head(s1)
        logits = self.classifier(self.global_pooling(s1).flatten(1))
        if logits_aux is not None:
            return logits, logits_aux
        return logits


class NetworkImageNet(nn.Module):
    """The DARTS mobile-setting ImageNet network (224x224 inputs, METHODS.md §0.3)."""

    def __init__(self, C: int, num_classes: int, layers: int, auxiliary: bool, genotype: DartsArch,
                 in_channels: int = 3, drop_path_prob: float = 0.0, op_set: OpSet = DARTS_OP_SET):
        super().__init__()
        _check_args(genotype, layers)
        self._layers = layers
        self._auxiliary = auxiliary
        self.drop_path_prob = drop_path_prob  # the ImageNet protocol uses 0
        self.stem0 = nn.Sequential(
            nn.Conv2d(in_channels, C // 2, kernel_size=3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(C // 2),
            nn.ReLU(inplace=True),
            nn.Conv2d(C // 2, C, 3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(C),
        )
        self.stem1 = nn.Sequential(
            nn.ReLU(inplace=False),  # reference: inplace on s0 (same values); kept out of place
            nn.Conv2d(C, C, 3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(C),
        )
        self.cells, C_prev, C_aux = _build_cells(genotype, C, layers, C, C, reduction_prev=True, op_set=op_set)
        if auxiliary:
            self.auxiliary_head = AuxiliaryHeadImageNet(C_aux, num_classes)
        self.global_pooling = nn.AvgPool2d(7)
        self.classifier = nn.Linear(C_prev, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        logits_aux = None
        s0 = self.stem0(x)
        s1 = self.stem1(s0)
        for i, cell in enumerate(self.cells):
            s0, s1 = s1, cell(s0, s1, self.drop_path_prob)
            if i == 2 * self._layers // 3 and self._auxiliary and self.training:
                logits_aux = self.auxiliary_head(s1)
        logits = self.classifier(self.global_pooling(s1).flatten(1))
        if logits_aux is not None:
            return logits, logits_aux
        return logits

