"""dataset.resize (nascli/data/resize.py) and the one-line refusal of image sizes a space cannot take."""
from __future__ import annotations

import pytest
import torch
from omegaconf import OmegaConf

from helpers import TINY_SEARCH, nas, result_line
from nascli.data import dataset_info, search_splits
from nascli.data.base import DatasetInfo, ImageSplit
from nascli.data.resize import resize_images, resize_info, resize_split
from nascli.spaces import get_space


def test_constant_images_stay_constant_and_size_changes():
    images = torch.full((3, 2, 28, 28), 77, dtype=torch.uint8)
    out = resize_images(images, 16)
    assert out.shape == (3, 2, 16, 16) and out.dtype == torch.uint8
    assert torch.equal(out, torch.full_like(out, 77))


def test_downsampling_by_two_averages_each_2x2_block():
    img = torch.tensor([[0, 100, 40, 40], [100, 200, 40, 40], [0, 0, 8, 8], [0, 0, 8, 8]], dtype=torch.uint8)
    out = resize_images(img.view(1, 1, 4, 4), 2)[0, 0]
    assert out.tolist() == [[100, 40], [0, 8]]


def test_a_non_integer_factor_averages_overlapping_bins():
    # 3 -> 2: output pixel 0 averages input rows/cols 0..1, pixel 1 averages 1..2 (floor/ceil bin edges)
    img = torch.tensor([[0, 30, 90], [60, 90, 150], [120, 150, 210]], dtype=torch.uint8).view(1, 1, 3, 3)
    assert resize_images(img, 2)[0, 0].tolist() == [[45, 90], [105, 150]]


def test_resize_keeps_labels_and_name_and_native_size_is_a_no_op():
    split = ImageSplit(torch.randint(0, 256, (5, 1, 8, 8), dtype=torch.uint8), torch.arange(5), "balanced-train")
    small = resize_split(split, 4)
    assert small.images.shape == (5, 1, 4, 4) and torch.equal(small.labels, split.labels)
    assert small.name == "balanced-train"
    assert resize_split(split, None) is split
    assert resize_images(split.images, 8) is split.images


def test_info_scales_the_crop_padding():
    info = DatasetInfo("x", 10, 3, 32, (0.5,) * 3, (0.25,) * 3, crop_padding=4)
    assert resize_info(info, 16).image_size == 16 and resize_info(info, 16).crop_padding == 2
    assert resize_info(info, 8).crop_padding == 1
    assert resize_info(info, None) is info


def test_search_splits_and_info_follow_dataset_resize():
    cfg = OmegaConf.create({"name": "synthetic", "split": "balanced", "train_portion": 0.5, "seed": 0,
                            "num_classes": 10, "channels": 3, "image_size": 16, "num_train": 64, "num_test": 16,
                            "resize": 8})
    weights, arch, info = search_splits(cfg)
    assert weights.images.shape[1:] == (3, 8, 8) and arch.images.shape[1:] == (3, 8, 8)
    assert info.image_size == 8 and dataset_info(cfg).image_size == 8
    assert len(weights) + len(arch) == 64


def test_nb201_refuses_sizes_not_divisible_by_four():
    space = get_space("nb201")
    assert space.input_size_problem(16) is None and space.input_size_problem(28) is None
    problem = space.input_size_problem(14)
    assert problem.startswith("space nb201 needs an image size divisible by 4") and "14x14" in problem


def test_a_search_on_an_impossible_size_is_one_line_and_writes_nothing(tmp_path):
    proc = nas("search", *TINY_SEARCH, "dataset.resize=14", "search.epochs=1", f"out_root={tmp_path}", check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines() == [
        "error: space nb201 needs an image size divisible by 4 (two stride-2 reductions), got 14x14; "
        "pick dataset.resize from e.g. 8, 12, 16, 28, 32"]
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("bad", ["0", "-3", "abc"])
def test_bad_resize_values_are_one_line(tmp_path, bad):
    proc = nas("search", *TINY_SEARCH, f"dataset.resize={bad}", f"out_root={tmp_path}", check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "dataset.resize" in lines[0]


def test_a_resized_search_runs_and_records_the_size(tmp_path):
    proc = nas("search", *TINY_SEARCH, "dataset.resize=4", "search.epochs=1", "search.max_steps_per_epoch=2",
               f"out_root={tmp_path}")
    run = result_line(proc)["run_dir"]
    cfg = OmegaConf.load(f"{run}/config.yaml")
    assert cfg.dataset.resize == 4
