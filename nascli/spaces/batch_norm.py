"""The bookkeeping of ``nn.BatchNorm2d.forward`` for cells that call ``F.batch_norm`` themselves (to pass a
mixing weight as the BN weight, or to normalise a slice of a wide BN's channels)."""
from __future__ import annotations

from torch import nn


def count_batch(bn: nn.BatchNorm2d) -> tuple[bool, float]:
    """One forward's bookkeeping, as ``nn.BatchNorm2d.forward`` does it: in training mode with running
    statistics, ``num_batches_tracked += 1``. Returns (normalise with the batch statistics?, the running
    average factor: ``momentum``, or ``1 / num_batches_tracked`` when momentum is None)."""
    factor = 0.0 if bn.momentum is None else bn.momentum
    if bn.training and bn.track_running_stats and bn.num_batches_tracked is not None:
        bn.num_batches_tracked.add_(1)
        factor = 1.0 / float(bn.num_batches_tracked) if bn.momentum is None else bn.momentum
    use_batch = bn.training or (bn.running_mean is None and bn.running_var is None)
    return use_batch, factor
