"""The synthetic dataset: deterministic, fast, learnable."""
from __future__ import annotations

import torch
from omegaconf import OmegaConf

import nascli.data as D
from nascli.data.synthetic import generate


def cfg(**kw):
    base = {"name": "synthetic", "root": None, "download": True, "train_portion": 0.5, "seed": 0, "num_classes": 10,
            "channels": 3, "image_size": 16, "num_train": 2048, "num_test": 512}
    return OmegaConf.create({**base, **kw})


def test_shapes_defaults_and_info():
    train, test, info = D.eval_splits(cfg())
    assert train.images.shape == (2048, 3, 16, 16) and test.images.shape == (512, 3, 16, 16)
    assert train.images.dtype == torch.uint8 and train.labels.dtype == torch.int64
    assert torch.bincount(train.labels).tolist() == [205] * 8 + [204] * 2  # balanced
    assert (info.num_classes, info.channels, info.image_size, info.crop_padding) == (10, 3, 16, 2)
    x = train.images.double() / 255
    assert abs(x.mean().item() - info.mean[0]) < 0.02 and abs(x.std().item() - info.std[0]) < 0.02


def test_deterministic_and_seed_dependent():
    generate.cache_clear()
    a, _, _ = D.eval_splits(cfg())
    generate.cache_clear()
    torch.manual_seed(42)  # the global RNG must not matter
    b, _, _ = D.eval_splits(cfg())
    c, _, _ = D.eval_splits(cfg(seed=1))
    assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)
    assert not torch.equal(a.images, c.images)


def test_generated_once_per_arguments():
    # generation cost is paid once per config: later readers (eval and search splits) share the tensors
    generate.cache_clear()
    a, a_test, _ = D.eval_splits(cfg(seed=5))
    b, b_test, _ = D.eval_splits(cfg(seed=5))
    D.search_splits(cfg(seed=5))
    assert a.images is b.images and a_test.labels is b_test.labels
    assert generate.cache_info().misses == 1 and generate.cache_info().currsize == 1
    D.eval_splits(cfg(seed=6))
    assert generate.cache_info().misses == 2


def test_class_separable_by_nearest_class_mean():
    train, test, _ = D.eval_splits(cfg())
    means = torch.stack([train.images[train.labels == k].float().mean(0) for k in range(10)])
    dist = (test.images.float()[:, None] - means[None]).flatten(2).pow(2).sum(-1)
    correct = int((dist.argmin(1) == test.labels).sum())
    assert correct == 462  # of 512: 90.2% for a nearest-class-mean classifier (chance is 10%), not 100%


def test_search_split_halves_and_options():
    w, a, info = D.search_splits(cfg(num_classes=4, channels=1, image_size=8, num_train=64, num_test=16))
    assert len(w) == len(a) == 32 and w.images.shape[1:] == (1, 8, 8)
    assert torch.bincount(w.labels).tolist() == [8] * 4
    assert info.mean == (info.mean[0],) and info.crop_padding == 1
