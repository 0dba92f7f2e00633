"""``sr_photos``: the embedded offline default, real photographs that scikit-image ships inside its wheel.

Every photo below loads from the installed wheel (``skimage.data.<loader>()`` reads a file bundled in
``skimage/data/``; no pooch download), checked with the network blocked on scikit-image 0.26.0. Sources
and licences are as scikit-image's docstrings state them.

Split by photograph (a photo is never in both): ``dataset.train_photos`` (default astronaut, coffee,
rocket, immunohistochemistry) and ``dataset.test_photos`` (default chelsea); overlapping lists are refused.
Each photo is mod-cropped to a multiple of the scale and downscaled whole by :func:`downscale_bicubic`.
Training photos are then cut into non-overlapping ``dataset.tile`` x ``dataset.tile`` HR tiles on a grid
from the top-left corner (row-major, the remainder dropped) with the matching LR tiles, so the search
split (:mod:`nascli.data.sr.reader`) has units to divide (the shipped config: 20 tiles of 192 px, which
leave room for EDSR's 48 px LR patches even at x4); test photos stay whole. ``tile: null`` keeps training
photos whole too.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import torch

from nascli.data.base import cfg_get
from nascli.data.sr.deps import require
from nascli.data.sr.images import SRImages
from nascli.data.sr.reader import SR_DATASETS, SRDatasetReader
from nascli.data.sr.resample import downscale_bicubic, mod_crop
from nascli.errors import NasError


@dataclass(frozen=True)
class Photo:
    """One photograph bundled with scikit-image: what it shows, where it is from, its licence."""

    shows: str
    source: str
    licence: str


PHOTOS: dict[str, Photo] = {
    "astronaut": Photo("astronaut Eileen Collins, 512x512", "NASA Great Images database", "public domain"),
    "chelsea": Photo("Chelsea the cat, 451x300", "photographer Stefan van der Walt", "CC0"),
    "coffee": Photo("coffee cup on wood, 600x400", "Pikolo Espresso Bar, photographer Rachel Michetti", "CC0"),
    "rocket": Photo("Falcon 9 launch of DSCOVR, 640x427", "SpaceX Photos (Flickr)", "public domain"),
    "immunohistochemistry": Photo("IHC-stained colonic glands, 512x512",
                                  "Center for Microscopy And Molecular Imaging (CMMI)",
                                  "no known copyright restrictions"),
    "hubble_deep_field": Photo("Hubble eXtreme Deep Field, 1000x872", "NASA HubbleSite", "public domain"),
    "retina": Photo("fundus photograph of a human retina, 1411x1411",
                    "Wikimedia Commons (Mikael Haggstrom)", "CC0"),
}


@lru_cache(maxsize=len(PHOTOS))
def _photo(name: str) -> torch.Tensor:
    """The photo as uint8 (3, H, W) from the scikit-image wheel."""
    data = require("skimage.data", "the embedded sr_photos dataset")
    array = getattr(data, name)()
    return torch.from_numpy(array.copy()).permute(2, 0, 1).contiguous()


def _names(cfg: Any, key: str, default: tuple[str, ...]) -> list[str]:
    names = [str(n) for n in cfg_get(cfg, key, default)]
    for n in names:
        if n not in PHOTOS:
            raise NasError(f"unknown photo {n!r} in dataset.{key}; valid choices: {', '.join(sorted(PHOTOS))}")
    if not names:
        raise NasError(f"dataset.{key} is empty; name at least one of {', '.join(sorted(PHOTOS))}")
    return names


def tile_pairs(lr: torch.Tensor, hr: torch.Tensor, tile: int,
               scale: int) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Non-overlapping HR tiles of ``tile`` px (row-major grid from the top-left) and their LR tiles."""
    t = tile // scale
    cells = [(r, c) for r in range(lr.shape[1] // t) for c in range(lr.shape[2] // t)]
    lrs = [lr[:, r * t:(r + 1) * t, c * t:(c + 1) * t].contiguous() for r, c in cells]
    hrs = [hr[:, r * tile:(r + 1) * tile, c * tile:(c + 1) * tile].contiguous() for r, c in cells]
    return lrs, hrs


@lru_cache(maxsize=8)
def _images(names: tuple[str, ...], scale: int, tile: int | None, split: str) -> SRImages:
    lrs, hrs = [], []
    for name in names:
        hr = mod_crop(_photo(name), scale).contiguous()
        lr = downscale_bicubic(hr, scale)
        if tile is None:
            lrs.append(lr)
            hrs.append(hr)
        else:
            parts = tile_pairs(lr, hr, tile, scale)
            lrs += parts[0]
            hrs += parts[1]
    if not lrs:
        raise NasError(f"dataset.tile={tile} is larger than every {split} photo ({', '.join(names)})")
    return SRImages(lrs, hrs, split)


@SR_DATASETS.register("sr_photos")
class SRPhotos(SRDatasetReader):
    """Real photographs from scikit-image's wheel (module doc); train tiles / whole test photos."""

    name = "sr_photos"
    train_default = ("astronaut", "coffee", "rocket", "immunohistochemistry")
    test_default = ("chelsea",)

    def __init__(self, cfg: Any, scale: int):
        super().__init__(cfg, scale)
        self._splits()  # bad lists or tile fail before any photo is read
        self._tile()

    def _tile(self) -> int | None:
        tile = cfg_get(self.cfg, "tile", None)
        if tile is None:
            return None
        if isinstance(tile, bool) or not isinstance(tile, int) or tile < self.scale or tile % self.scale:
            raise NasError(f"dataset.tile={tile!r} must be a positive multiple of the scale {self.scale} (HR pixels) "
                           "or null")
        return int(tile)

    def _splits(self) -> tuple[list[str], list[str]]:
        train = _names(self.cfg, "train_photos", self.train_default)
        test = _names(self.cfg, "test_photos", self.test_default)
        both = sorted(set(train) & set(test))
        if both:
            raise NasError(f"dataset.train_photos and dataset.test_photos share {', '.join(both)}; "
                           "a photo may be in one split only")
        return train, test

    def train(self) -> SRImages:
        return _images(tuple(self._splits()[0]), self.scale, self._tile(), "train")

    def test(self) -> SRImages:
        return _images(tuple(self._splits()[1]), self.scale, None, "test")
