"""Widen the candidate ops of a supernet edge in place (DrNAS progressive learning; xiangning-chen/DrNAS@f2caa4d
``net2wider.py``, ``operations.py`` ``wider``; METHODS.md 8).

When partial channels go from K to K' < K, every op of an edge must map C/K' instead of C/K channels. The
reference grows each conv and BatchNorm of each op by **copying existing channels** (Net2Net-style
replication without the 1/n rescaling) and keeps the SGD momentum of the copies:

* a dense conv's new output channels are copies of randomly chosen old ones (index r_out, uniform over the
  old channels); its new input channels copy the columns of the channels the previous layer copied when
  that layer was a depthwise conv (the columns must follow their depthwise filters), else random columns
  (the op's input: the new input channels are new data, not copies);
* a depthwise conv grows its filters the same way (random copies) and its ``groups``;
* a BatchNorm copies the statistics (and affine parameters) of the channels its conv copied; a BN that
  follows no conv (after pooling) copies random channels; a BN after two parallel convs (FactorizedReduce)
  copies per half. (The reference's FactorizedReduce indexes the BN with the two halves' indices
  concatenated, which mixes up the second half's statistics; here each copy takes its own channel's.)

The new channels see input channels the op did not see before, so the op's function changes: widening is
an initialisation of the wider op from the trained narrow one, not a function-preserving transform. Every
tensor is reindexed by a map ``src`` (new position -> old position, the identity on the old positions), and
the same map is applied to the parameter's optimizer state (SGD momentum), so Parameter objects keep their
identity (optimizers keep referring to them).
"""
from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

StateOf = Callable[[nn.Parameter], dict]


def grow_map(old: int, new: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """src (new,): positions 0..old-1 map to themselves, the new - old others to uniform random old ones."""
    if new < old:
        raise ValueError(f"cannot widen {old} channels to {new}")
    extra = torch.randint(0, old, (new - old,), generator=generator)
    return torch.cat([torch.arange(old), extra])


def _reindex(t: torch.Tensor, dim: int, src: torch.Tensor) -> torch.Tensor:
    return t.index_select(dim, src.to(t.device))


def _reindex_param(p: nn.Parameter, dim: int, src: torch.Tensor, state_of: StateOf | None) -> None:
    """p.data and every same-shaped tensor of its optimizer state reindexed along ``dim`` (in place)."""
    if state_of is not None:
        state = state_of(p)
        for key, value in list(state.items()):
            if torch.is_tensor(value) and value.shape == p.shape:
                state[key] = _reindex(value, dim, src)
    p.data = _reindex(p.data, dim, src)
    p.grad = None


def widen_conv(conv: nn.Conv2d, old: int, new: int, in_src: torch.Tensor | None, state_of: StateOf | None,
               generator: torch.Generator | None = None) -> torch.Tensor:
    """Grow ``conv`` from op width ``old`` to ``new``; returns its output map. Depthwise convs (groups =
    in_channels) grow their filters; dense convs grow their outputs (a half-width conv, as in
    FactorizedReduce, grows to new/2) and their inputs by ``in_src`` (random when ``None``)."""
    depthwise = conv.groups > 1 and conv.groups == conv.in_channels
    out_new = conv.out_channels * new // old
    out_src = grow_map(conv.out_channels, out_new, generator)
    _reindex_param(conv.weight, 0, out_src, state_of)
    if conv.bias is not None:
        _reindex_param(conv.bias, 0, out_src, state_of)
    if depthwise:
        conv.groups = conv.in_channels = out_new
    else:
        if in_src is None:
            in_src = grow_map(conv.in_channels, conv.in_channels * new // old, generator)
        _reindex_param(conv.weight, 1, in_src, state_of)
        conv.in_channels = len(in_src)
    conv.out_channels = out_new
    return out_src


def widen_bn(bn: nn.BatchNorm2d, src: torch.Tensor, state_of: StateOf | None) -> None:
    """Grow ``bn`` by the channel map ``src`` (statistics and affine parameters)."""
    for name in ("running_mean", "running_var"):
        buf = getattr(bn, name)
        if buf is not None:
            setattr(bn, name, _reindex(buf, 0, src))
    if bn.affine:
        _reindex_param(bn.weight, 0, src, state_of)
        _reindex_param(bn.bias, 0, src, state_of)
    bn.num_features = len(src)


def ambiguous_at_width_one(op: nn.Module) -> bool:
    """Whether ``op`` has a conv directly followed by another conv (a depthwise-pointwise pair, or parallel
    convs), whose depthwise part is a 1x1-channel dense-looking conv at width 1."""
    kinds = [type(m) for m in op.modules() if isinstance(m, (nn.Conv2d, nn.BatchNorm2d))]
    return any(a is nn.Conv2d and b is nn.Conv2d for a, b in zip(kinds, kinds[1:]))


def widen_op(op: nn.Module, old: int, new: int, state_of: StateOf | None = None,
             generator: torch.Generator | None = None) -> None:
    """Grow every conv and BN of one candidate op from width ``old`` to ``new`` (module docstring), walking
    its modules in registration order (the op's data flow for the DARTS / NB201 ops). A depthwise conv is
    recognised by groups = in_channels > 1, so a width-1 op with a depthwise conv cannot be widened
    (:func:`ambiguous_at_width_one`)."""
    if new == old:
        return
    if old == 1 and ambiguous_at_width_one(op):
        raise ValueError("cannot widen an op with a depthwise conv from width 1 (its conv is indistinguishable "
                         "from a dense one); use a larger supernet C")
    pending: list[tuple[torch.Tensor, int]] = []  # (output map, old channels) of convs since the last BN
    last_depthwise: torch.Tensor | None = None
    for m in op.modules():
        if isinstance(m, nn.Conv2d):
            old_out = m.out_channels
            depthwise = m.groups > 1 and m.groups == m.in_channels
            src = widen_conv(m, old, new, None if depthwise else last_depthwise, state_of, generator)
            last_depthwise = src if depthwise else None
            if depthwise:
                pending = []
            else:
                pending.append((src, old_out))
        elif isinstance(m, nn.BatchNorm2d):
            if pending:
                parts, offset = [], 0
                for src, n_old in pending:
                    parts.append(src + offset)
                    offset += n_old
                bn_src = torch.cat(parts)
            else:
                bn_src = grow_map(m.num_features, m.num_features * new // old, generator)
            widen_bn(m, bn_src, state_of)
            pending, last_depthwise = [], None
