"""The sharpDARTS search spaces (Hundt, Jain, Hager 2019; METHODS.md 8) as DARTS space variants.

sharpDARTS keeps the DARTS cell (14 edges per cell type, normal and reduce cells, the same supernet, derivation
rule and NetworkCIFAR / NetworkImageNet; ahundt/sharpDARTS cnn/model.py is quark0's model.py with an op dict)
but builds its convolutions as **SharpSepConv** blocks (ahundt/sharpDARTS cnn/operations.py):

    ReLU -> DW k x k (stride s, dilation d, C_in groups) -> 1x1 (C_in -> C_mid) -> BN -> ReLU
         -> DW k x k (stride 1, no dilation, C_mid groups) -> 1x1 (C_mid -> C_out) -> BN

with C_mid = C_out, except ``flood`` ops (C_mid = 4 C_out) and ``choke`` ops (C_mid = 32). ``dil_conv_k`` is a
SharpSepConv whose first depthwise conv is dilated by 2 (unlike DARTS's single DilConv). Pools, ``skip_connect``
(FactorizedReduce on stride 2) and ``none`` are the DARTS modules (sharpDARTS's ResizablePool with C_in = C_out
is the plain pool). Parameters of one SharpSepConv with C_in = C_out = C, kernel k, C_mid = M and affine BNs:
``C k^2 + C M + 2 M + M k^2 + M C + 2 C`` (search: affine=False, no BN parameters).
With C_mid = C a SharpSepConv has exactly the modules of DARTS's SepConv (``sep_conv_k`` is the same op in both);
``dil_conv_k`` and the flood/choke ops differ.

Parameter counts at the CIFAR protocol size (NetworkCIFAR C=36, 20 cells, auxiliary head not counted, as the
reference's ``count_parameters_in_MB``): ``sharpsepconv_darts`` 3,555,622 (published 3.6M),
``sharpsepconv_darts_max_w`` 3,546,550, ``sharp_darts`` 1,974,934 (published 1.98M; the difference, 0.25 %, was
not traced: choke C_mid = 32 as in the reference OPS; C_mid = C would give 2,695,294).

Three spaces, one per op list of the reference (``genotypes.py``), all with the same op modules (:data:`SHARP_OP_SET`):

* ``sharp_darts``: the 8 DARTS op names (``DARTS_PRIMITIVES`` searched with ``--ops OPS``; the SharpSepConvDARTS
  search that found ``sharpsepconv_darts``);
* ``sharp_darts_choke``: sharpDARTS ``PRIMITIVES`` (9 ops: none, max pool, skip, sep/dil 3x3, their flood and
  choke variants; the search that found ``sharp_darts``, log in the reference genotypes.py);
* ``sharper_darts``: ``SHARPER_PRIMITIVES`` (12 ops: the DARTS 8, sep_conv_7x7, flood_conv_3x3/5x5,
  dil_flood_conv_3x3; choke ops and dil_flood_conv_5x5 are commented out there).

Published genotypes (``arch=<name>``, any of the three spaces whose edges offer the genotype's ops):
``sharpsepconv_darts``, ``sharpsepconv_darts_max_w`` (METHODS.md 9) and ``sharp_darts`` (the reference's
``SHARP_DARTS = CHOKE_FLOOD_DIL_IS_SEP_CONV``). No tabular benchmark or NB301 score covers SharpSepConv cells.
"""
from __future__ import annotations

from typing import Any

from torch import nn

from nascli.spaces import SPACES
from nascli.spaces.base import Arch
from nascli.spaces.darts.genotype import CELL_TYPES, DartsArch
from nascli.spaces.darts.ops import CELL_OPS, PRIMITIVES, OpFactory, OpSet
from nascli.spaces.darts.space import DartsSpace

#: C_mid of the choke ops (ahundt/sharpDARTS cnn/operations.py OPS default C_mid=32; train_search.py --mid_channels 32)
CHOKE_C_MID = 32
#: C_mid = FLOOD_MULT * C_out of the flood ops (operations.py C_mid_mult=4)
FLOOD_MULT = 4


class SharpSepConv(nn.Sequential):
    """[ReLU, DW k x k (stride, dilation), 1x1 -> C_mid, BN, ReLU, DW k x k (stride 1), 1x1 -> C_out, BN] (module
    docstring); every conv has ``bias=False``, the BNs are affine when ``affine``. ``padding`` is the first
    depthwise conv's (``dilation * (k // 2)`` in every sharpDARTS op), the second uses ``k // 2``."""

    def __init__(self, C_in: int, C_out: int, kernel_size: int, stride: int, padding: int, dilation: int = 1,
                 affine: bool = True, C_mid: int | None = None):
        c_mid = C_out if C_mid is None else C_mid
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(C_in, C_in, kernel_size, stride=stride, padding=padding, dilation=dilation, groups=C_in,
                      bias=False),
            nn.Conv2d(C_in, c_mid, 1, bias=False),
            nn.BatchNorm2d(c_mid, affine=affine),
            nn.ReLU(inplace=False),
            nn.Conv2d(c_mid, c_mid, kernel_size, stride=1, padding=kernel_size // 2, groups=c_mid, bias=False),
            nn.Conv2d(c_mid, C_out, 1, bias=False),
            nn.BatchNorm2d(C_out, affine=affine),
        )
        self.C_mid = c_mid


def _sharp(k: int, dilation: int = 1, mid: str = "same") -> OpFactory:
    """factory(C, stride, affine) of a SharpSepConv with kernel k, the given dilation and C_mid rule
    (``same``: C, ``flood``: 4C, ``choke``: 32)."""
    def build(C: int, stride: int, affine: bool) -> nn.Module:
        c_mid = {"same": C, "flood": FLOOD_MULT * C, "choke": CHOKE_C_MID}[mid]
        return SharpSepConv(C, C, k, stride, dilation * (k // 2), dilation, affine=affine, C_mid=c_mid)
    return build


# name -> factory; ahundt/sharpDARTS cnn/operations.py OPS (dil_flood_conv_5x5 left out: its padding 2 with
# dilation 2 shrinks the map, and no op list of the reference uses it; conv_7x1_1x7 is in no op list either)
SHARP_OPS: dict[str, OpFactory] = {
    "none": CELL_OPS["none"],
    "max_pool_3x3": CELL_OPS["max_pool_3x3"],
    "avg_pool_3x3": CELL_OPS["avg_pool_3x3"],
    "skip_connect": CELL_OPS["skip_connect"],
    "sep_conv_3x3": _sharp(3),
    "sep_conv_5x5": _sharp(5),
    "sep_conv_7x7": _sharp(7),
    "dil_conv_3x3": _sharp(3, dilation=2),
    "dil_conv_5x5": _sharp(5, dilation=2),
    "flood_conv_3x3": _sharp(3, mid="flood"),
    "flood_conv_5x5": _sharp(5, mid="flood"),
    "dil_flood_conv_3x3": _sharp(3, dilation=2, mid="flood"),
    "choke_conv_3x3": _sharp(3, mid="choke"),
    "dil_choke_conv_3x3": _sharp(3, dilation=2, mid="choke"),
}

SHARP_OP_SET = OpSet(SHARP_OPS, {
    **{name: "sharp" for name in SHARP_OPS if "conv" in name},
    "max_pool_3x3": "pool", "avg_pool_3x3": "pool", "skip_connect": "skip",
})

# space name -> alpha columns (ahundt/sharpDARTS cnn/genotypes.py)
OP_LISTS: dict[str, tuple[str, ...]] = {
    "sharp_darts": PRIMITIVES,  # DARTS_PRIMITIVES
    "sharp_darts_choke": ("none", "max_pool_3x3", "skip_connect", "sep_conv_3x3", "dil_conv_3x3", "flood_conv_3x3",
                          "dil_flood_conv_3x3", "choke_conv_3x3", "dil_choke_conv_3x3"),  # PRIMITIVES
    "sharper_darts": ("none", "max_pool_3x3", "avg_pool_3x3", "skip_connect", "sep_conv_3x3", "sep_conv_5x5",
                      "sep_conv_7x7", "dil_conv_3x3", "dil_conv_5x5", "flood_conv_3x3", "flood_conv_5x5",
                      "dil_flood_conv_3x3"),  # SHARPER_PRIMITIVES
}


class _SharpArch(DartsArch):
    """A genotype naming any sharpDARTS op (the published table's class; a space converts it to its own)."""

    space = "sharp_darts"
    valid_ops = tuple(SHARP_OPS)


def _g(normal: list[tuple[str, int]], reduce: list[tuple[str, int]]) -> DartsArch:
    return _SharpArch(normal=tuple(normal), normal_concat=(2, 3, 4, 5), reduce=tuple(reduce),
                      reduce_concat=(2, 3, 4, 5))


# Published sharpDARTS genotypes (ahundt/sharpDARTS@6f593d4 cnn/genotypes.py via METHODS.md 9; 'layout' dropped).
SHARP_PUBLISHED: dict[str, DartsArch] = {
    # SHARPSEPCONV_DARTS (= DARTS_PRIMITIVES_DIL_IS_SEPCONV): CIFAR-10 1.98 +- 0.07 % with AutoAugment, 3.6M
    "sharpsepconv_darts": _g(
        [("sep_conv_3x3", 0), ("sep_conv_3x3", 1), ("sep_conv_3x3", 0), ("sep_conv_3x3", 2), ("skip_connect", 0),
         ("sep_conv_3x3", 1), ("skip_connect", 0), ("sep_conv_3x3", 1)],
        [("max_pool_3x3", 0), ("skip_connect", 1), ("skip_connect", 2), ("avg_pool_3x3", 0), ("skip_connect", 2),
         ("avg_pool_3x3", 0), ("skip_connect", 2), ("skip_connect", 3)]),
    # SHARPSEPCONV_DARTS_MAX_W (searched with the Max-W weighting)
    "sharpsepconv_darts_max_w": _g(
        [("dil_conv_3x3", 0), ("dil_conv_5x5", 1), ("sep_conv_3x3", 2), ("dil_conv_5x5", 1), ("avg_pool_3x3", 2),
         ("sep_conv_3x3", 0), ("avg_pool_3x3", 4), ("max_pool_3x3", 3)],
        [("max_pool_3x3", 0), ("skip_connect", 1), ("sep_conv_5x5", 0), ("skip_connect", 2), ("sep_conv_5x5", 0),
         ("dil_conv_5x5", 3), ("sep_conv_5x5", 4), ("skip_connect", 3)]),
    # SHARP_DARTS = CHOKE_FLOOD_DIL_IS_SEP_CONV (ahundt/sharpDARTS@8fd6575 cnn/genotypes.py): 2.29 +- 0.06 %, 1.98M
    "sharp_darts": _g(
        [("choke_conv_3x3", 0), ("choke_conv_3x3", 1), ("skip_connect", 0), ("choke_conv_3x3", 1),
         ("skip_connect", 0), ("skip_connect", 1), ("skip_connect", 0), ("skip_connect", 1)],
        [("max_pool_3x3", 0), ("skip_connect", 1), ("max_pool_3x3", 0), ("skip_connect", 2), ("max_pool_3x3", 0),
         ("skip_connect", 2), ("skip_connect", 2), ("flood_conv_3x3", 0)]),
}


class SharpDartsSpace(DartsSpace):
    """A sharpDARTS space (module docstring); subclasses set ``name``, ``ops`` and ``arch_cls``."""

    op_set = SHARP_OP_SET
    published = SHARP_PUBLISHED

    def ground_truth(self, arch: Arch, dataset: str) -> dict[str, Any] | None:
        """None: no tabular benchmark covers SharpSepConv cells."""
        return None

    def surrogate_estimate(self, arch: Arch) -> dict[str, Any]:
        """``nb301: None``: NAS-Bench-301 was trained on DARTS ops, not on SharpSepConv blocks."""
        self._check(arch)
        return {"nb301": None, "nb301_note": f"n/a: NB301 scores DARTS-op cells; {self.name} builds its convs "
                                             f"as SharpSepConv"}


def _register(name: str, ops: tuple[str, ...]) -> type[SharpDartsSpace]:
    """A registered SharpDartsSpace subclass (and its arch class) for ``name``."""
    stem = name.title().replace("_", "")
    arch_cls = type(f"{stem}Arch", (DartsArch,),
                    {"space": name, "valid_ops": ops, "__module__": __name__,
                     "__doc__": f"A genotype of the {name} space (``DartsArch`` with space={name!r})."})
    cls = type(f"{stem}Space", (SharpDartsSpace,),
               {"name": name, "ops": ops, "arch_cls": arch_cls, "__module__": __name__,
                "__doc__": f"The sharpDARTS space {name} (module docstring)."})
    return SPACES.register(name)(cls)


SHARP_SPACES: dict[str, type[SharpDartsSpace]] = {name: _register(name, ops) for name, ops in OP_LISTS.items()}

__all__ = ["CELL_TYPES", "CHOKE_C_MID", "FLOOD_MULT", "OP_LISTS", "SHARP_OPS", "SHARP_OP_SET", "SHARP_PUBLISHED",
           "SHARP_SPACES", "SharpDartsSpace", "SharpSepConv"]
