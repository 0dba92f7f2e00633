"""Data layer: dataset readers over real on-disk formats, NB201 split conventions, device-resident
splits, batched device-side augmentation and resumable minibatch streams."""
from nascli.data.augment import augment_batch, normalize
from nascli.data.base import DATASETS, DatasetInfo, DatasetReader, ImageSplit
from nascli.data.splits import balanced_partition, dataset_info, eval_splits, search_splits
from nascli.data.stream import BatchStream, iterate_eval

# Importing the readers registers them in DATASETS.
from nascli.data import cifar, idx, imagenet16, synthetic  # noqa: E402,F401  isort: skip

__all__ = [
    "DATASETS",
    "BatchStream",
    "DatasetInfo",
    "DatasetReader",
    "ImageSplit",
    "augment_batch",
    "balanced_partition",
    "dataset_info",
    "eval_splits",
    "iterate_eval",
    "normalize",
    "search_splits",
]
