"""conformer: DARTS edges inside a Conformer block, for CTC speech recognition (Darts-Conformer).

After Shi, Zhou, Chen, Xie, "Darts-Conformer: Towards Efficient Gradient-Based Neural Architecture Search
For End-to-End ASR" (arXiv 2104.02868, 2021) and the Conformer of Gulati et al., "Conformer:
Convolution-augmented Transformer for Speech Recognition" (Interspeech 2020, arXiv 2005.08100). The space
never names a method: the block's edges are mixed by whatever mixer the method brings.

Taken from the papers:
* Darts-Conformer (abstract and introduction, ar5iv 2104.02868): DARTS's mixed ops fused into Conformer
  blocks through a "Darts mutator" (read here as NNI's DartsMutator, whose alphas carry an extra zero op and
  whose export keeps the top-n inputs per node by their best op and the argmax non-zero op on each: the
  ``default`` rule with n = 2, as in DARTS); one searched cell stacked as the whole encoder in place of the
  Conformer blocks; searched on AISHELL-1 in 0.7 GPU-days;
* Conformer (sec. 2, Fig. 1-2): 4x convolutional subsampling front end; the block FFN/2 -> MHSA -> conv
  module -> FFN/2 -> LayerNorm, each sub-layer pre-LN with a residual (half-step residual for the macaron
  FFNs); FFN expansion 4 with Swish; conv module pointwise conv -> GLU -> depthwise conv -> BatchNorm ->
  Swish -> pointwise conv; the paper's sizes (d_model, heads, blocks) are S 144/4/16, M 256/4/16,
  L 512/8/17, kernel 32.

Chosen here (the Darts-Conformer full text, with its exact op list and cell topology, was not available to
check; each choice is stated where it is coded):
* the block as a DAG of 4 computed nodes, node i reading every earlier node (10 edges), the block output the
  LayerNorm of node 4 (nascli/spaces/conformer/arch.py); one alpha shared by every block;
* ops: none, skip_connect, ffn_half, mhsa, conv_3/7/15/31 and dil_conv_7 (dilation 2), each sub-layer op
  carrying its own residual so that the plain Conformer block is the chain ``conformer_baseline``
  (depthwise kernel 15, the usual odd choice, as in WeNet's AISHELL-1 recipe);
* attention with a learned per-head bias of the clipped relative distance (|j - i| <= max_relative) instead
  of Transformer-XL's sinusoidal relative encoding; no absolute positions;
* a linear CTC head (the papers train attention encoder-decoders with a joint CTC loss; this space's task
  trains CTC only), log-softmax over the vocabulary incl. the blank at 0;
* padded frames zeroed before every depthwise conv and after every node, padded keys masked in attention,
  so a valid output never depends on padded input (BatchNorm's batch statistics do include the zeroed frames);
* further rules ``top1`` (one input per node: a chain of sub-layers) and ``all_edges`` (NB201's argmax incl.
  none); tiny CPU sizes by default (nascli/conf/space/conformer.yaml).
"""
from nascli.spaces.conformer.arch import NAMED_ARCHS, ConformerArch, parse_conformer
from nascli.spaces.conformer.space import ConformerSpace

__all__ = ["NAMED_ARCHS", "ConformerArch", "ConformerSpace", "parse_conformer"]
