"""Published DARTS-space genotypes, by lowercase name, usable as ``arch=<name>``.

The tuples are data transcribed from the authors' ``genotypes.py`` files (via METHODS.md §9, which copied
them verbatim); each block names its source as ``repo@commit path``. ``range(2, 6)`` concats are written
as ``(2, 3, 4, 5)``. Only genotypes that use the 8 standard DARTS ops with 4 intermediate nodes are
listed, because only those build with :mod:`nascli.spaces.darts.ops`. Left out on purpose:

* NASNet, AmoebaNet (quark0/darts@f276dd3 cnn/genotypes.py): 5 intermediate nodes and ops outside the
  DARTS set (``sep_conv_7x7``, ``conv_7x1_1x7``).
* SETN (D-X-Y/AutoDL-Projects@f46486e xautodl/nas_infer_model/DXYs/genotypes.py): uses the AutoDL-only op
  ``conv_3x1_1x3``.
* SHARPSEPCONV_DARTS, SHARPSEPCONV_DARTS_MAX_W (ahundt/sharpDARTS@6f593d4 cnn/genotypes.py): the op names
  are standard but sharpDARTS builds them as SharpSepConv blocks (its dil_conv differs from DARTS's), so they
  live in the sharpDARTS spaces' own table (``nascli/spaces/darts/sharp.py``, ``space=sharp_darts``).

Aliases map other common spellings to the canonical names (``darts`` = ``darts_v2`` as in the reference
code, where ``DARTS = DARTS_V2``).
"""
from __future__ import annotations

from nascli.errors import UnknownChoiceError
from nascli.spaces.darts.genotype import DartsArch

PUBLISHED: dict[str, DartsArch] = {
    # ---- from quark0/darts@f276dd3 cnn/genotypes.py
    # DARTS first order (quark0 DARTS_V1)
    "darts_v1": DartsArch(
        normal=(
            ("sep_conv_3x3", 1), ("sep_conv_3x3", 0), ("skip_connect", 0), ("sep_conv_3x3", 1),
            ("skip_connect", 0), ("sep_conv_3x3", 1), ("sep_conv_3x3", 0), ("skip_connect", 2),
        ),
        normal_concat=(2, 3, 4, 5),
        reduce=(
            ("max_pool_3x3", 0), ("max_pool_3x3", 1), ("skip_connect", 2), ("max_pool_3x3", 0),
            ("max_pool_3x3", 0), ("skip_connect", 2), ("skip_connect", 2), ("avg_pool_3x3", 0),
        ),
        reduce_concat=(2, 3, 4, 5),
    ),
    # DARTS second order (quark0 DARTS_V2; the reference DARTS = DARTS_V2)
    "darts_v2": DartsArch(
        normal=(
            ("sep_conv_3x3", 0), ("sep_conv_3x3", 1), ("sep_conv_3x3", 0), ("sep_conv_3x3", 1),
            ("sep_conv_3x3", 1), ("skip_connect", 0), ("skip_connect", 0), ("dil_conv_3x3", 2),
        ),
        normal_concat=(2, 3, 4, 5),
        reduce=(
            ("max_pool_3x3", 0), ("max_pool_3x3", 1), ("skip_connect", 2), ("max_pool_3x3", 1),
            ("max_pool_3x3", 0), ("skip_connect", 2), ("skip_connect", 2), ("max_pool_3x3", 1),
        ),
        reduce_concat=(2, 3, 4, 5),
    ),

    # ---- from yuhuixu1993/PC-DARTS@b74702f genotypes.py
    # PC-DARTS searched on CIFAR-10 (PC_DARTS_cifar)
    "pc_darts": DartsArch(
        normal=(
            ("sep_conv_3x3", 1), ("skip_connect", 0), ("sep_conv_3x3", 0), ("dil_conv_3x3", 1),
            ("sep_conv_5x5", 0), ("sep_conv_3x3", 1), ("avg_pool_3x3", 0), ("dil_conv_3x3", 1),
        ),
        normal_concat=(2, 3, 4, 5),
        reduce=(
            ("sep_conv_5x5", 1), ("max_pool_3x3", 0), ("sep_conv_5x5", 1), ("sep_conv_5x5", 2),
            ("sep_conv_3x3", 0), ("sep_conv_3x3", 3), ("sep_conv_3x3", 1), ("sep_conv_3x3", 2),
        ),
        reduce_concat=(2, 3, 4, 5),
    ),
    # PC-DARTS searched on ImageNet (PC_DARTS_image)
    "pc_darts_image": DartsArch(
        normal=(
            ("skip_connect", 1), ("sep_conv_3x3", 0), ("sep_conv_3x3", 0), ("skip_connect", 1),
            ("sep_conv_3x3", 1), ("sep_conv_3x3", 3), ("sep_conv_3x3", 1), ("dil_conv_5x5", 4),
        ),
        normal_concat=(2, 3, 4, 5),
        reduce=(
            ("sep_conv_3x3", 0), ("skip_connect", 1), ("dil_conv_5x5", 2), ("max_pool_3x3", 1),
            ("sep_conv_3x3", 2), ("sep_conv_3x3", 1), ("sep_conv_5x5", 0), ("sep_conv_3x3", 3),
        ),
        reduce_concat=(2, 3, 4, 5),
    ),

    # ---- from Meituan-AutoML/DARTS-@adb81a8 src/eval/genotypes.py
    # DARTS- CIFAR-10 search 0 (cifar10_s0_0, the best one)
    "darts_minus": DartsArch(
        normal=(
            ("sep_conv_3x3", 0), ("sep_conv_5x5", 1), ("sep_conv_3x3", 1), ("dil_conv_3x3", 2),
            ("skip_connect", 1), ("sep_conv_3x3", 0), ("skip_connect", 1), ("sep_conv_3x3", 0),
        ),
        normal_concat=(2, 3, 4, 5),
        reduce=(
            ("sep_conv_3x3", 0), ("max_pool_3x3", 1), ("skip_connect", 2), ("max_pool_3x3", 0),
            ("skip_connect", 2), ("skip_connect", 3), ("skip_connect", 2), ("skip_connect", 3),
        ),
        reduce_concat=(2, 3, 4, 5),
    ),
    # DARTS- cifar10_s0_1
    "darts_minus_s0_1": DartsArch(
        normal=(
            ("sep_conv_3x3", 0), ("dil_conv_5x5", 1), ("sep_conv_3x3", 0), ("sep_conv_3x3", 1),
            ("dil_conv_5x5", 1), ("sep_conv_3x3", 0), ("skip_connect", 1), ("sep_conv_3x3", 0),
        ),
        normal_concat=(2, 3, 4, 5),
        reduce=(
            ("sep_conv_3x3", 1), ("max_pool_3x3", 0), ("skip_connect", 2), ("max_pool_3x3", 1),
            ("skip_connect", 2), ("skip_connect", 3), ("skip_connect", 2), ("skip_connect", 3),
        ),
        reduce_concat=(2, 3, 4, 5),
    ),
    # DARTS- cifar10_s0_2
    "darts_minus_s0_2": DartsArch(
        normal=(
            ("sep_conv_5x5", 1), ("sep_conv_3x3", 0), ("sep_conv_3x3", 0), ("sep_conv_3x3", 1),
            ("skip_connect", 1), ("sep_conv_5x5", 0), ("sep_conv_3x3", 0), ("skip_connect", 1),
        ),
        normal_concat=(2, 3, 4, 5),
        reduce=(
            ("sep_conv_3x3", 1), ("sep_conv_3x3", 0), ("skip_connect", 2), ("max_pool_3x3", 1),
            ("skip_connect", 2), ("skip_connect", 3), ("skip_connect", 2), ("skip_connect", 3),
        ),
        reduce_concat=(2, 3, 4, 5),
    ),
    # DARTS- cifar10_s0_3
    "darts_minus_s0_3": DartsArch(
        normal=(
            ("sep_conv_3x3", 0), ("sep_conv_3x3", 1), ("sep_conv_3x3", 0), ("sep_conv_3x3", 1),
            ("sep_conv_3x3", 0), ("dil_conv_5x5", 1), ("skip_connect", 1), ("skip_connect", 0),
        ),
        normal_concat=(2, 3, 4, 5),
        reduce=(
            ("max_pool_3x3", 0), ("max_pool_3x3", 1), ("skip_connect", 2), ("sep_conv_5x5", 0),
            ("skip_connect", 3), ("skip_connect", 2), ("skip_connect", 3), ("skip_connect", 2),
        ),
        reduce_concat=(2, 3, 4, 5),
    ),
    # DARTS- cifar10_s0_4
    "darts_minus_s0_4": DartsArch(
        normal=(
            ("sep_conv_3x3", 0), ("sep_conv_5x5", 1), ("sep_conv_3x3", 1), ("sep_conv_3x3", 0),
            ("skip_connect", 1), ("dil_conv_3x3", 0), ("skip_connect", 1), ("sep_conv_5x5", 0),
        ),
        normal_concat=(2, 3, 4, 5),
        reduce=(
            ("max_pool_3x3", 0), ("max_pool_3x3", 1), ("max_pool_3x3", 0), ("skip_connect", 2),
            ("skip_connect", 2), ("skip_connect", 3), ("skip_connect", 2), ("skip_connect", 3),
        ),
        reduce_concat=(2, 3, 4, 5),
    ),
    # DARTS- cifar100_s0_0
    "darts_minus_c100_s0_0": DartsArch(
        normal=(
            ("dil_conv_5x5", 0), ("dil_conv_3x3", 1), ("sep_conv_3x3", 1), ("dil_conv_3x3", 0),
            ("dil_conv_5x5", 0), ("dil_conv_3x3", 1), ("sep_conv_3x3", 1), ("dil_conv_5x5", 0),
        ),
        normal_concat=(2, 3, 4, 5),
        reduce=(
            ("max_pool_3x3", 0), ("sep_conv_5x5", 1), ("skip_connect", 2), ("sep_conv_5x5", 0),
            ("skip_connect", 2), ("skip_connect", 3), ("skip_connect", 2), ("skip_connect", 3),
        ),
        reduce_concat=(2, 3, 4, 5),
    ),
    # DARTS- cifar100_s0_1
    "darts_minus_c100_s0_1": DartsArch(
        normal=(
            ("sep_conv_3x3", 1), ("dil_conv_3x3", 0), ("dil_conv_5x5", 1), ("dil_conv_5x5", 0),
            ("dil_conv_5x5", 1), ("dil_conv_3x3", 0), ("sep_conv_3x3", 1), ("sep_conv_3x3", 0),
        ),
        normal_concat=(2, 3, 4, 5),
        reduce=(
            ("avg_pool_3x3", 1), ("avg_pool_3x3", 0), ("avg_pool_3x3", 1), ("skip_connect", 2),
            ("skip_connect", 2), ("avg_pool_3x3", 1), ("skip_connect", 2), ("skip_connect", 3),
        ),
        reduce_concat=(2, 3, 4, 5),
    ),
    # DARTS- cifar100_s0_2
    "darts_minus_c100_s0_2": DartsArch(
        normal=(
            ("dil_conv_3x3", 0), ("sep_conv_3x3", 1), ("dil_conv_3x3", 0), ("sep_conv_5x5", 1),
            ("sep_conv_3x3", 1), ("dil_conv_3x3", 0), ("skip_connect", 1), ("dil_conv_3x3", 0),
        ),
        normal_concat=(2, 3, 4, 5),
        reduce=(
            ("avg_pool_3x3", 1), ("skip_connect", 0), ("skip_connect", 2), ("avg_pool_3x3", 1),
            ("skip_connect", 2), ("skip_connect", 3), ("skip_connect", 2), ("skip_connect", 3),
        ),
        reduce_concat=(2, 3, 4, 5),
    ),
    # DARTS- cifar100_s0_3
    "darts_minus_c100_s0_3": DartsArch(
        normal=(
            ("dil_conv_5x5", 0), ("sep_conv_5x5", 1), ("sep_conv_3x3", 0), ("skip_connect", 1),
            ("sep_conv_3x3", 1), ("sep_conv_3x3", 0), ("skip_connect", 1), ("dil_conv_3x3", 0),
        ),
        normal_concat=(2, 3, 4, 5),
        reduce=(
            ("sep_conv_3x3", 1), ("sep_conv_3x3", 0), ("skip_connect", 2), ("avg_pool_3x3", 0),
            ("skip_connect", 2), ("skip_connect", 3), ("skip_connect", 2), ("skip_connect", 3),
        ),
        reduce_concat=(2, 3, 4, 5),
    ),

    # ---- from xiangning-chen/DrNAS@f2caa4d DARTS-space/genotypes.py
    # DrNAS searched on CIFAR-10 [DrNAS_cifar10]
    "drnas_cifar10": DartsArch(
        normal=(
            ("sep_conv_3x3", 0), ("sep_conv_5x5", 1), ("sep_conv_3x3", 1), ("sep_conv_3x3", 2),
            ("skip_connect", 0), ("sep_conv_3x3", 1), ("sep_conv_3x3", 2), ("dil_conv_5x5", 3),
        ),
        normal_concat=(2, 3, 4, 5),
        reduce=(
            ("max_pool_3x3", 0), ("sep_conv_5x5", 1), ("dil_conv_5x5", 2), ("sep_conv_5x5", 1),
            ("sep_conv_5x5", 1), ("dil_conv_5x5", 3), ("skip_connect", 4), ("sep_conv_5x5", 1),
        ),
        reduce_concat=(2, 3, 4, 5),
    ),
    # DrNAS searched on ImageNet [DrNAS_imagenet]
    "drnas_imagenet": DartsArch(
        normal=(
            ("sep_conv_3x3", 1), ("sep_conv_3x3", 0), ("sep_conv_3x3", 0), ("sep_conv_3x3", 1),
            ("sep_conv_3x3", 0), ("dil_conv_3x3", 3), ("skip_connect", 0), ("sep_conv_3x3", 1),
        ),
        normal_concat=(2, 3, 4, 5),
        reduce=(
            ("max_pool_3x3", 0), ("sep_conv_3x3", 1), ("sep_conv_3x3", 0), ("skip_connect", 2),
            ("sep_conv_3x3", 0), ("sep_conv_3x3", 2), ("sep_conv_3x3", 3), ("sep_conv_3x3", 1),
        ),
        reduce_concat=(2, 3, 4, 5),
    ),

    # ---- from xiangning-chen/SmoothDARTS@d3dbfed sota/cnn/genotypes.py
    # SDARTS-RS (c10_s5_random)
    "sdarts_rs": DartsArch(
        normal=(
            ("sep_conv_3x3", 1), ("sep_conv_3x3", 0), ("sep_conv_5x5", 1), ("skip_connect", 0),
            ("sep_conv_3x3", 3), ("skip_connect", 1), ("sep_conv_3x3", 1), ("dil_conv_3x3", 2),
        ),
        normal_concat=(2, 3, 4, 5),
        reduce=(
            ("max_pool_3x3", 0), ("sep_conv_3x3", 1), ("skip_connect", 2), ("max_pool_3x3", 0),
            ("dil_conv_5x5", 3), ("max_pool_3x3", 0), ("sep_conv_3x3", 2), ("sep_conv_5x5", 3),
        ),
        reduce_concat=(2, 3, 4, 5),
    ),
    # SDARTS-ADV (c10_s5_pgd)
    "sdarts_pgd": DartsArch(
        normal=(
            ("sep_conv_3x3", 0), ("sep_conv_3x3", 1), ("sep_conv_3x3", 1), ("skip_connect", 0),
            ("sep_conv_5x5", 0), ("dil_conv_3x3", 3), ("dil_conv_3x3", 4), ("skip_connect", 0),
        ),
        normal_concat=(2, 3, 4, 5),
        reduce=(
            ("max_pool_3x3", 0), ("sep_conv_5x5", 1), ("skip_connect", 2), ("max_pool_3x3", 0),
            ("skip_connect", 3), ("skip_connect", 2), ("skip_connect", 2), ("sep_conv_5x5", 4),
        ),
        reduce_concat=(2, 3, 4, 5),
    ),

    # ---- from skhu101/GM-NAS@a69837d WS-GM/sota/cnn/genotypes.py
    # GM + DARTS (1st order)
    # [search_darts_sota_ws_res_s5_2_cos_e0_edge_crit_grad_split_crit_grad_fix_alpha_equal_res_final_fix_sche_2_4_6_15_id_5]
    "gm_darts_1st": DartsArch(
        normal=(
            ("sep_conv_3x3", 0), ("sep_conv_3x3", 1), ("dil_conv_3x3", 2), ("sep_conv_5x5", 1),
            ("sep_conv_3x3", 1), ("dil_conv_5x5", 3), ("skip_connect", 0), ("dil_conv_3x3", 2),
        ),
        normal_concat=(2, 3, 4, 5),
        reduce=(
            ("max_pool_3x3", 0), ("max_pool_3x3", 1), ("dil_conv_5x5", 2), ("sep_conv_3x3", 0),
            ("dil_conv_3x3", 3), ("skip_connect", 1), ("dil_conv_5x5", 4), ("sep_conv_5x5", 3),
        ),
        reduce_concat=(2, 3, 4, 5),
    ),
    # GM + DARTS (2nd order)
    # [search_darts_so_sota_ws_s5_1_cos_e0_edge_crit_grad_split_crit_grad_fix_alpha_equal_res_final_fix_sche_2_4_6_15_id_4]
    "gm_darts_2nd": DartsArch(
        normal=(
            ("sep_conv_3x3", 0), ("sep_conv_3x3", 1), ("sep_conv_3x3", 0), ("dil_conv_3x3", 2),
            ("sep_conv_5x5", 0), ("dil_conv_5x5", 3), ("skip_connect", 0), ("sep_conv_3x3", 1),
        ),
        normal_concat=(2, 3, 4, 5),
        reduce=(
            ("max_pool_3x3", 0), ("max_pool_3x3", 1), ("sep_conv_3x3", 0), ("max_pool_3x3", 1),
            ("max_pool_3x3", 1), ("skip_connect", 3), ("max_pool_3x3", 1), ("skip_connect", 3),
        ),
        reduce_concat=(2, 3, 4, 5),
    ),
    # GM + SNAS
    # [search_snas_ws_darts_res_s5_3_cos_e0_edge_crit_grad_split_crit_grad_fix_alpha_equal_res_final_fix_sche_2_4_6_15_id_6]
    "gm_snas": DartsArch(
        normal=(
            ("sep_conv_3x3", 0), ("sep_conv_5x5", 1), ("sep_conv_3x3", 1), ("sep_conv_3x3", 2),
            ("sep_conv_3x3", 1), ("dil_conv_5x5", 3), ("dil_conv_3x3", 2), ("skip_connect", 0),
        ),
        normal_concat=(2, 3, 4, 5),
        reduce=(
            ("max_pool_3x3", 0), ("sep_conv_3x3", 1), ("max_pool_3x3", 0), ("skip_connect", 2),
            ("dil_conv_5x5", 3), ("skip_connect", 2), ("skip_connect", 2), ("dil_conv_3x3", 3),
        ),
        reduce_concat=(2, 3, 4, 5),
    ),

    # ---- from ruocwang/darts-pt@4ec3149 sota/cnn/genotypes.py
    "darts_pt_s5_0": DartsArch(
        normal=(
            ("sep_conv_3x3", 0), ("sep_conv_3x3", 1), ("sep_conv_5x5", 0), ("dil_conv_3x3", 1),
            ("skip_connect", 0), ("skip_connect", 2), ("skip_connect", 0), ("max_pool_3x3", 4),
        ),
        normal_concat=(2, 3, 4, 5),
        reduce=(
            ("sep_conv_3x3", 0), ("avg_pool_3x3", 1), ("dil_conv_5x5", 1), ("dil_conv_3x3", 2),
            ("avg_pool_3x3", 0), ("max_pool_3x3", 2), ("sep_conv_3x3", 2), ("skip_connect", 4),
        ),
        reduce_concat=(2, 3, 4, 5),
    ),
    "darts_pt_s5_1": DartsArch(
        normal=(
            ("sep_conv_3x3", 0), ("sep_conv_3x3", 1), ("sep_conv_3x3", 0), ("dil_conv_3x3", 1),
            ("max_pool_3x3", 0), ("skip_connect", 2), ("skip_connect", 0), ("dil_conv_3x3", 4),
        ),
        normal_concat=(2, 3, 4, 5),
        reduce=(
            ("dil_conv_5x5", 0), ("avg_pool_3x3", 1), ("max_pool_3x3", 0), ("sep_conv_5x5", 2),
            ("max_pool_3x3", 1), ("dil_conv_3x3", 3), ("sep_conv_5x5", 0), ("sep_conv_3x3", 4),
        ),
        reduce_concat=(2, 3, 4, 5),
    ),
    "darts_pt_s5_2": DartsArch(
        normal=(
            ("skip_connect", 0), ("sep_conv_3x3", 1), ("sep_conv_3x3", 0), ("dil_conv_3x3", 1),
            ("skip_connect", 2), ("dil_conv_3x3", 3), ("max_pool_3x3", 1), ("skip_connect", 2),
        ),
        normal_concat=(2, 3, 4, 5),
        reduce=(
            ("avg_pool_3x3", 0), ("max_pool_3x3", 1), ("avg_pool_3x3", 0), ("sep_conv_3x3", 1),
            ("dil_conv_5x5", 2), ("skip_connect", 3), ("sep_conv_3x3", 2), ("sep_conv_5x5", 4),
        ),
        reduce_concat=(2, 3, 4, 5),
    ),
    "darts_pt_s5_3": DartsArch(
        normal=(
            ("sep_conv_3x3", 0), ("sep_conv_3x3", 1), ("sep_conv_3x3", 0), ("sep_conv_3x3", 1),
            ("skip_connect", 0), ("skip_connect", 2), ("sep_conv_3x3", 1), ("skip_connect", 3),
        ),
        normal_concat=(2, 3, 4, 5),
        reduce=(
            ("avg_pool_3x3", 0), ("sep_conv_5x5", 1), ("max_pool_3x3", 1), ("skip_connect", 2),
            ("dil_conv_5x5", 1), ("max_pool_3x3", 3), ("sep_conv_5x5", 2), ("skip_connect", 3),
        ),
        reduce_concat=(2, 3, 4, 5),
    ),
    "blank_pt_s5_0": DartsArch(
        normal=(
            ("sep_conv_3x3", 0), ("sep_conv_5x5", 1), ("sep_conv_3x3", 0), ("sep_conv_3x3", 1),
            ("avg_pool_3x3", 1), ("skip_connect", 3), ("max_pool_3x3", 0), ("avg_pool_3x3", 2),
        ),
        normal_concat=(2, 3, 4, 5),
        reduce=(
            ("skip_connect", 0), ("sep_conv_5x5", 1), ("dil_conv_3x3", 1), ("sep_conv_5x5", 2),
            ("max_pool_3x3", 0), ("skip_connect", 3), ("max_pool_3x3", 0), ("max_pool_3x3", 2),
        ),
        reduce_concat=(2, 3, 4, 5),
    ),
    "blank_pt_s5_1": DartsArch(
        normal=(
            ("avg_pool_3x3", 0), ("avg_pool_3x3", 1), ("sep_conv_3x3", 0), ("max_pool_3x3", 2),
            ("skip_connect", 2), ("sep_conv_3x3", 3), ("sep_conv_5x5", 0), ("sep_conv_5x5", 1),
        ),
        normal_concat=(2, 3, 4, 5),
        reduce=(
            ("max_pool_3x3", 0), ("dil_conv_5x5", 1), ("sep_conv_3x3", 0), ("skip_connect", 1),
            ("avg_pool_3x3", 2), ("max_pool_3x3", 3), ("sep_conv_5x5", 3), ("sep_conv_5x5", 4),
        ),
        reduce_concat=(2, 3, 4, 5),
    ),
    "blank_pt_s5_2": DartsArch(
        normal=(
            ("avg_pool_3x3", 0), ("dil_conv_3x3", 1), ("sep_conv_5x5", 0), ("max_pool_3x3", 1),
            ("max_pool_3x3", 0), ("skip_connect", 1), ("sep_conv_5x5", 1), ("avg_pool_3x3", 2),
        ),
        normal_concat=(2, 3, 4, 5),
        reduce=(
            ("sep_conv_3x3", 0), ("avg_pool_3x3", 1), ("avg_pool_3x3", 0), ("sep_conv_5x5", 1),
            ("max_pool_3x3", 0), ("sep_conv_5x5", 3), ("max_pool_3x3", 2), ("dil_conv_5x5", 4),
        ),
        reduce_concat=(2, 3, 4, 5),
    ),
    "blank_pt_s5_3": DartsArch(
        normal=(
            ("sep_conv_3x3", 0), ("sep_conv_3x3", 1), ("sep_conv_3x3", 0), ("skip_connect", 1),
            ("max_pool_3x3", 2), ("sep_conv_3x3", 3), ("avg_pool_3x3", 0), ("sep_conv_5x5", 1),
        ),
        normal_concat=(2, 3, 4, 5),
        reduce=(
            ("dil_conv_5x5", 0), ("sep_conv_5x5", 1), ("sep_conv_5x5", 0), ("dil_conv_3x3", 1),
            ("avg_pool_3x3", 1), ("skip_connect", 2), ("max_pool_3x3", 0), ("skip_connect", 4),
        ),
        reduce_concat=(2, 3, 4, 5),
    ),

    # ---- from aaron851113/MS-DARTS@61a1693 sota/cnn/genotypes.py (read via read_file)
    # MS-DARTS (c10_s5_ms)
    "ms_darts": DartsArch(
        normal=(
            ("sep_conv_3x3", 1), ("sep_conv_3x3", 0), ("skip_connect", 0), ("sep_conv_3x3", 2),
            ("sep_conv_3x3", 0), ("sep_conv_3x3", 1), ("sep_conv_3x3", 0), ("dil_conv_3x3", 3),
        ),
        normal_concat=(2, 3, 4, 5),
        reduce=(
            ("sep_conv_3x3", 0), ("avg_pool_3x3", 1), ("sep_conv_3x3", 0), ("sep_conv_3x3", 2),
            ("max_pool_3x3", 0), ("dil_conv_3x3", 3), ("sep_conv_3x3", 3), ("skip_connect", 2),
        ),
        reduce_concat=(2, 3, 4, 5),
    ),

    # ---- from D-X-Y/AutoDL-Projects@f46486e xautodl/nas_infer_model/DXYs/genotypes.py
    # GDAS_V1 (AutoDL nested format, flattened in node order)
    "gdas_v1": DartsArch(
        normal=(
            ("skip_connect", 0), ("skip_connect", 1), ("skip_connect", 0), ("sep_conv_5x5", 2),
            ("sep_conv_3x3", 3), ("skip_connect", 0), ("sep_conv_5x5", 4), ("sep_conv_3x3", 3),
        ),
        normal_concat=(2, 3, 4, 5),
        reduce=(
            ("sep_conv_5x5", 0), ("sep_conv_3x3", 1), ("sep_conv_5x5", 2), ("sep_conv_5x5", 1),
            ("dil_conv_5x5", 2), ("sep_conv_3x3", 1), ("sep_conv_5x5", 0), ("sep_conv_5x5", 1),
        ),
        reduce_concat=(2, 3, 4, 5),
    ),
}

ALIASES: dict[str, str] = {
    "darts": "darts_v2",
    "pc_darts_cifar": "pc_darts",
    "darts_minus_s0_0": "darts_minus",
    "sdarts_adv": "sdarts_pgd",
    "c10_s5_ms": "ms_darts",
}


def published_names() -> list[str]:
    """Canonical names and aliases, sorted."""
    return sorted([*PUBLISHED, *ALIASES])


def is_published(name: str) -> bool:
    key = name.strip().lower()
    return key in PUBLISHED or key in ALIASES


def get_published(name: str) -> DartsArch:
    """The published genotype called ``name`` (case-insensitive); UnknownChoiceError lists the names."""
    key = name.strip().lower()
    key = ALIASES.get(key, key)
    if key not in PUBLISHED:
        raise UnknownChoiceError("published DARTS genotype", name, published_names())
    return PUBLISHED[key]
