"""sisr_trilevel: a network-, cell- and kernel-level search space for single-image super-resolution.

After Wu, Huang, Kumar, Sukthanker, Timofte, Van Gool, "Trilevel Neural Architecture Search for Efficient
Single Image Super-Resolution" (arXiv 2101.06658, 2021). The space never names a method: the three levels are
three weight matrices of whatever mixer the method brings (``mixer=sparsestmax`` for the paper).

Taken from the paper (abstract and method overview, ar5iv 2101.06658) and from public code derived from the
authors' implementation (a TrilevelNAS ``model_search_flexible.py`` / ``sparsestmax.py`` seen in the public
index; names below are that code's):
* three levels searched together in one supernet: network path, cell operations, kernel width, each relaxed
  by sparsestmax (``gamma``, ``alpha``, ``ratio``); search and training in one phase;
* network level as a tree: at every node either a cell or an upsampling step follows (``dfs`` /
  ``path_generator``), each tree edge with its own weights, the output a weighted sum over the tree's nodes;
* cells as a chain of mixed ops (``op_per_cell``) with a scaled residual ``out * 0.2 + x``;
* the kernel level as slimmable channel widths of the features inside a cell (``width_mult_list``);
* no BatchNorm in the ops; sub-pixel (PixelShuffle) upsampling; a 3x3 conv head and tail;
* sparsestmax itself from SSN (switchablenorms/Sparse_SwitchNorm@28904b5, utils/ssn_utils.py), generalised to
  n choices as in the TrilevelNAS code (nascli/search/mixers/sparsestmax.py).

Chosen here (the paper's full text was not available to check them; each is stated where it is coded):
* op list: conv_3x3, conv_5x5, dil_conv_3x3 (dilation 2), sep_conv_3x3, res_block_3x3 (EDSR block), skip,
  none; pre-activation ReLU-conv, bias on; K = 3 slots per cell (the reference config has 5);
* one cell genotype shared by every cell (DARTS-style; the reference keeps one alpha per cell), and one
  kernel-width choice per inner feature, also shared;
* widths {0.25, 0.5, 0.75, 1.0} of C, applied as soft channel masks in the supernet;
* network level: only fully upsampled nodes are candidates, (a, b) = a LR cells, the upsampler, b HR cells,
  a + b <= S (the reference also sums not-yet-upsampled nodes, which only works because its "upsampling"
  cells keep the LR size and one PixelShuffle(4) ends the net); x4 upsamples in two x2 steps (EDSR);
* sorting for compression as a derivation rule: the cheapest candidate (cost a + 4 b) within 0.05 of the
  largest network weight (nascli/spaces/sisr/arch.py); the reference instead adds an order loss on gamma;
* global residual: bicubic upsampling of the input added to the output (VDSR-style; the reference and EDSR
  have none), option ``global_residual: none`` to switch it off;
* level parameters initialised as DARTS alphas (1e-3 N(0, 1)); sparsestmax radius 0 -> 1 linearly over the
  epochs (SSN's schedule per epoch).
"""
from nascli.spaces.sisr.arch import NAMED_ARCHS, SISRArch, parse_sisr
from nascli.spaces.sisr.space import SISRTrilevelSpace

__all__ = ["NAMED_ARCHS", "SISRArch", "SISRTrilevelSpace", "parse_sisr"]
