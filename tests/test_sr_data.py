"""Super-resolution data and metrics (nascli.data.sr): the readers on real PNG folders in the DIV2K and
benchmark layouts and on the photographs shipped by scikit-image, the patch stream, Y-channel PSNR/SSIM
against hand computations, and the bicubic kernel."""
from __future__ import annotations

import hashlib
import math
import sys
import zipfile
from pathlib import Path

import pytest
import torch

from nascli.data.sr import (SR_DATASETS, SRImages, SRInfo, SRPatchStream, iterate_sr_eval, psnr_y, ssim_y,
                            upscale_bicubic)
from nascli.data.sr import div2k as div2k_module
from nascli.data.sr.png import read_rgb, write_png
from nascli.data.sr.resample import downscale_bicubic, mod_crop
from nascli.errors import DataMissingError, NasError

sys.path.insert(0, str(Path(__file__).parent))
from sr_files import smooth_image, write_benchmark_layout, write_div2k_layout  # noqa: E402


def reader(name: str, scale: int = 2, **cfg):
    return SR_DATASETS.get(name)(cfg, scale)


# ------------------------------------------------------------------------------------------- readers
def test_registry_names_and_bad_scale():
    assert SR_DATASETS.names() == ["div2k", "sr_benchmark", "sr_photos"]
    assert reader("div2k", 3).info() == SRInfo("div2k", 3, 3)
    with pytest.raises(NasError, match=r"unknown super-resolution scale 5; valid choices: 2, 3, 4"):
        reader("div2k", 5)


def test_div2k_reads_pairs_from_the_lr_folder(tmp_path):
    write_div2k_layout(tmp_path, n_train=3, n_valid=2, scales=(2, 3), size=(48, 60))
    r = reader("div2k", 3, root=str(tmp_path))
    train, test = r.eval_splits()
    assert (len(train), train.name, len(test), test.name) == (3, "train", 2, "valid")
    for i, lr, hr in zip(range(1, 4), train.lr, train.hr):
        assert hr.dtype == torch.uint8 and tuple(hr.shape) == (3, 48, 60) and tuple(lr.shape) == (3, 16, 20)
        assert torch.equal(hr, read_rgb(tmp_path / "DIV2K_train_HR" / f"{i:04d}.png"))
        assert torch.equal(lr, read_rgb(tmp_path / "DIV2K_train_LR_bicubic" / "X3" / f"{i:04d}x3.png"))
    assert torch.equal(test.hr[1], read_rgb(tmp_path / "DIV2K_valid_HR" / "0802.png"))


def test_div2k_lr_file_differs_from_generated_one_is_used(tmp_path):
    """Proof that LR comes from the folder: an LR file replaced by other pixels is what the reader returns."""
    write_div2k_layout(tmp_path, n_train=2, n_valid=1)
    other = smooth_image((24, 30), seed=999)
    write_png(tmp_path / "DIV2K_train_LR_bicubic" / "X2" / "0002x2.png", other)
    assert torch.equal(reader("div2k", root=str(tmp_path)).train().lr[1], other)


def test_div2k_generates_lr_when_the_folder_is_missing(tmp_path):
    write_div2k_layout(tmp_path, n_train=2, n_valid=1, size=(50, 62), lr=False)
    train = reader("div2k", 4, root=str(tmp_path)).train()
    hr = read_rgb(tmp_path / "DIV2K_train_HR" / "0001.png")
    assert tuple(train.hr[0].shape) == (3, 48, 60)  # mod-crop of 50x62 to multiples of 4
    assert torch.equal(train.hr[0], hr[:, :48, :60])
    assert torch.equal(train.lr[0], downscale_bicubic(hr[:, :48, :60].contiguous(), 4))


def test_div2k_missing_lr_file_names_it(tmp_path):
    write_div2k_layout(tmp_path, n_train=2, n_valid=1)
    (tmp_path / "DIV2K_train_LR_bicubic" / "X2" / "0002x2.png").unlink()
    with pytest.raises(DataMissingError) as err:
        reader("div2k", root=str(tmp_path)).train()
    msg = str(err.value)
    assert "\n" not in msg and "DIV2K_train_LR_bicubic/X2/0002x2.png is missing" in msg


def test_div2k_missing_data_is_one_line_naming_the_folders(tmp_path, monkeypatch):
    monkeypatch.setenv("NASCLI_CACHE_DIR", str(tmp_path / "cache"))
    with pytest.raises(DataMissingError) as err:
        reader("div2k", root=str(tmp_path / "none")).train()
    msg = str(err.value)
    assert "\n" not in msg
    assert msg.startswith("div2k: no images in DIV2K_train_HR/ under [")
    assert "<folder>/DIV2K_train_HR/<name>.png" in msg and "DIV2K_train_LR_bicubic/X2/<name>x2.png" in msg
    assert "dataset.root=<folder>" in msg and "dataset.download=true" in msg


def test_div2k_local_zip_is_md5_checked_then_extracted(tmp_path, monkeypatch):
    src = write_div2k_layout(tmp_path / "src", n_train=2, n_valid=1)
    root = tmp_path / "root"
    root.mkdir()
    archive = root / "DIV2K_train_HR.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for p in sorted((src / "DIV2K_train_HR").iterdir()):
            zf.write(p, f"DIV2K_train_HR/{p.name}")
    with zipfile.ZipFile(root / "DIV2K_train_LR_bicubic_X2.zip", "w") as zf:
        for p in sorted((src / "DIV2K_train_LR_bicubic" / "X2").iterdir()):
            zf.write(p, f"DIV2K_train_LR_bicubic/X2/{p.name}")
    monkeypatch.setitem(div2k_module.MD5, "DIV2K_train_LR_bicubic_X2.zip",
                        hashlib.md5((root / "DIV2K_train_LR_bicubic_X2.zip").read_bytes()).hexdigest())
    monkeypatch.setenv("NASCLI_CACHE_DIR", str(tmp_path / "cache"))
    with pytest.raises(DataMissingError, match=r"DIV2K_train_HR.zip has md5 [0-9a-f]{32}, expected bdc2d9338d4e"):
        reader("div2k", root=str(root)).train()
    monkeypatch.setitem(div2k_module.MD5, "DIV2K_train_HR.zip", hashlib.md5(archive.read_bytes()).hexdigest())
    train = reader("div2k", root=str(root)).train()
    assert len(train) == 2 and torch.equal(train.hr[1], read_rgb(src / "DIV2K_train_HR" / "0002.png"))
    assert (root / "DIV2K_train_LR_bicubic" / "X2" / "0002x2.png").is_file()  # the LR zip beside it too


def test_div2k_max_train_keeps_the_first_images(tmp_path):
    write_div2k_layout(tmp_path, n_train=4, n_valid=1)
    train = reader("div2k", root=str(tmp_path), max_train=2).train()
    assert len(train) == 2 and torch.equal(train.hr[1], read_rgb(tmp_path / "DIV2K_train_HR" / "0002.png"))
    with pytest.raises(NasError, match=r"dataset.max_train must be a positive integer or null, got 0"):
        reader("div2k", root=str(tmp_path), max_train=0)


def test_benchmark_mod_crop_naming_and_choice(tmp_path):
    write_benchmark_layout(tmp_path, "Set14", names=("comic", "zebra"), scales=(3,), size=(50, 62))
    write_div2k_layout(tmp_path / "DIV2K", n_train=2, n_valid=1, scales=(3,))
    r = reader("sr_benchmark", 3, root=str(tmp_path), benchmark="Set14")
    test = r.test()
    assert test.name == "Set14" and len(test) == 2
    assert tuple(test.hr[0].shape) == (3, 48, 60) and tuple(test.lr[0].shape) == (3, 16, 20)
    hr = read_rgb(tmp_path / "benchmark" / "Set14" / "HR" / "zebra.png")
    assert torch.equal(test.hr[1], hr[:, :48, :60])
    assert torch.equal(test.lr[1], read_rgb(tmp_path / "benchmark" / "Set14" / "LR_bicubic" / "X3" / "zebrax3.png"))
    assert len(r.train()) == 2  # DIV2K train under <root>/DIV2K
    with pytest.raises(NasError, match=r"unknown dataset.benchmark 'Set6'; valid choices: Set5, Set14, B100, Urban100"):
        reader("sr_benchmark", 3, root=str(tmp_path), benchmark="Set6")  # before any file is read
    with pytest.raises(DataMissingError, match=r"sr_benchmark: no images in benchmark/Set5/HR/ .*"
                                               r"<folder>/benchmark/Set5/LR_bicubic/X3/<name>x3.png"):
        reader("sr_benchmark", 3, root=str(tmp_path)).test()


def test_benchmark_train_missing_names_train_root(tmp_path):
    write_benchmark_layout(tmp_path)
    with pytest.raises(DataMissingError) as err:
        reader("sr_benchmark", root=str(tmp_path)).train()
    assert "DIV2K_train_HR/" in str(err.value) and "dataset.train_root=<folder>" in str(err.value)


def test_search_splits_are_disjoint_deterministic_and_seeded(tmp_path):
    write_div2k_layout(tmp_path, n_train=6, n_valid=1, size=(16, 16))
    r = reader("div2k", root=str(tmp_path), train_portion=0.5, seed=0)
    train = r.train()
    ids = {id(t): i for i, t in enumerate(train.hr)}
    w, a = r.search_splits()
    assert (w.name, a.name, len(w), len(a)) == ("search-weights", "search-arch", 3, 3)
    wi, ai = [ids[id(t)] for t in w.hr], [ids[id(t)] for t in a.hr]
    assert sorted(wi + ai) == list(range(6)) and wi == sorted(wi)
    expected = sorted(torch.randperm(6, generator=torch.Generator().manual_seed(0))[:3].tolist())
    assert wi == expected
    assert [ids[id(t)] for t in r.search_splits()[0].hr] == wi
    other = reader("div2k", root=str(tmp_path), train_portion=0.5, seed=1)
    assert [ids[id(t)] for t in other.search_splits()[0].hr] != wi
    with pytest.raises(NasError, match=r"dataset.train_portion=0.05 leaves an empty search split of 6"):
        reader("div2k", root=str(tmp_path), train_portion=0.05).search_splits()


def test_sr_photos_split_by_photo_and_tiles():
    r = reader("sr_photos", 2, tile=120)
    train, test = r.train(), r.test()
    assert len(train) == 62 and all(tuple(t.shape) == (3, 120, 120) for t in train.hr)
    assert all(tuple(t.shape) == (3, 60, 60) for t in train.lr)
    assert len(test) == 1 and tuple(test.hr[0].shape) == (3, 300, 450)  # chelsea 451x300, mod-cropped
    # tiles are cut from the whole downscaled photo: the first LR tile is the photo's LR top-left corner
    from nascli.data.sr.photos import _photo
    astronaut = _photo("astronaut")
    assert torch.equal(train.hr[0], astronaut[:, :120, :120])
    assert torch.equal(train.lr[0], downscale_bicubic(astronaut, 2)[:, :60, :60])
    assert not any(torch.equal(test.hr[0][:, :120, :120], t) for t in train.hr)
    with pytest.raises(NasError, match=r"dataset.train_photos and dataset.test_photos share chelsea"):
        reader("sr_photos", train_photos=["chelsea", "coffee"], test_photos=["chelsea"])
    with pytest.raises(NasError, match=r"unknown photo 'lena' in dataset.test_photos; valid choices: astronaut"):
        reader("sr_photos", test_photos=["lena"])
    with pytest.raises(NasError, match=r"dataset.tile=100 must be a positive multiple of the scale 3"):
        reader("sr_photos", 3, tile=100)


# ------------------------------------------------------------------------------------------- stream
def coordinate_pairs(sizes, scale: int) -> SRImages:
    """LR images whose pixels encode (row, column, image) and HR = nearest-neighbour enlargement, so an
    HR patch matches its LR patch exactly when HR == LR with each pixel repeated scale x scale times."""
    lrs = []
    for k, (h, w) in enumerate(sizes):
        rows = torch.arange(h).view(h, 1).expand(h, w)
        cols = torch.arange(w).view(1, w).expand(h, w)
        lrs.append(torch.stack([rows, cols, torch.full((h, w), k)]).to(torch.uint8))
    hrs = [t.repeat_interleave(scale, 1).repeat_interleave(scale, 2) for t in lrs]
    return SRImages(lrs, hrs, "coords")


@pytest.mark.parametrize("augment", [False, True])
def test_stream_patches_are_aligned(augment):
    images = coordinate_pairs([(20, 30), (12, 16), (25, 14)], 3)
    stream = SRPatchStream(images, 3, 8, 5, seed=0, augment=augment)
    turned = 0
    for _ in range(6):
        lr, hr = stream.next()
        assert lr.dtype == hr.dtype == torch.float32
        assert tuple(lr.shape) == (5, 3, 8, 8) and tuple(hr.shape) == (5, 3, 24, 24)
        assert torch.equal(hr, lr.repeat_interleave(3, 2).repeat_interleave(3, 3))
        codes = (lr * 255).round().long()
        for patch in codes:
            rows, cols = patch[0], patch[1]
            if not augment:  # an untouched window: rows run down, columns run right, one step at a time
                assert torch.equal(rows, rows[:1, :1] + torch.arange(8).view(8, 1).expand(8, 8))
                assert torch.equal(cols, cols[:1, :1] + torch.arange(8).view(1, 8).expand(8, 8))
            turned += int(not torch.equal(rows[1:, 0] - rows[:-1, 0], torch.ones(7, dtype=torch.long)))
            k = int(patch[2, 0, 0])
            h, w = images.lr[k].shape[1:]
            assert int(rows.max()) < h and int(cols.max()) < w  # inside its own image
            assert {int(rows.max() - rows.min()), int(cols.max() - cols.min())} == {7}
    assert (turned > 0) == augment


def test_stream_shuffle_order_and_random_mode():
    images = coordinate_pairs([(10, 10)] * 5, 2)
    stream = SRPatchStream(images, 2, 4, 3, seed=7, augment=False)
    assert stream.batches_per_pass() == 1
    seen = []
    for _ in range(5):  # 15 draws = 3 whole permutations of the 5 images
        lr, _ = stream.next()
        seen += (lr[:, 2, 0, 0] * 255).round().long().tolist()
    assert all(sorted(seen[i:i + 5]) == list(range(5)) for i in (0, 5, 10))
    assert SRPatchStream(coordinate_pairs([(10, 10)] * 8, 2), 2, 4, 3, seed=0).batches_per_pass() == 2
    rnd = SRPatchStream(images, 2, 4, 16, seed=0, mode="random")
    assert tuple(rnd.next()[0].shape) == (16, 3, 4, 4)


def test_stream_determinism_and_bitwise_resume(tmp_path):
    images = coordinate_pairs([(20, 30), (12, 16), (25, 14), (18, 18), (13, 40)], 2)
    a, b = SRPatchStream(images, 2, 6, 3, seed=3), SRPatchStream(images, 2, 6, 3, seed=3)
    first = [a.next() for _ in range(4)]
    assert all(torch.equal(x[0], y[0]) and torch.equal(x[1], y[1]) for x, y in zip(first, [b.next() for _ in range(4)]))
    assert not torch.equal(first[0][0], SRPatchStream(images, 2, 6, 3, seed=4).next()[0])
    torch.save(a.state_dict(), tmp_path / "s.pt")
    cont = [a.next() for _ in range(5)]  # crosses permutation boundaries (5 images, batches of 3)
    resumed = SRPatchStream(images, 2, 6, 3, seed=99)
    resumed.load_state_dict(torch.load(tmp_path / "s.pt", weights_only=True))
    again = [resumed.next() for _ in range(5)]
    assert all(torch.equal(x[0], y[0]) and torch.equal(x[1], y[1]) for x, y in zip(cont, again))
    assert (resumed.batches_drawn, resumed.passes_done) == (a.batches_drawn, a.passes_done) == (9, 5)
    with pytest.raises(NasError, match=r"patch stream state has batch_size=3, this stream has 4"):
        SRPatchStream(images, 2, 6, 4, seed=0).load_state_dict(a.state_dict())


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_stream_on_another_device_draws_the_same_patches():
    """All randomness is on a CPU generator, so the same seed gives the same patches on any device."""
    images, device = coordinate_pairs([(20, 30), (12, 16), (25, 14)], 2), "cuda"
    cpu, dev = SRPatchStream(images, 2, 8, 4, seed=5), SRPatchStream(images.to(device), 2, 8, 4, seed=5)
    for _ in range(3):
        (a, b), (c, d) = cpu.next(), dev.next()
        assert c.device.type == d.device.type == device
        assert torch.equal(a, c.cpu()) and torch.equal(b, d.cpu())


def test_stream_refuses_bad_inputs():
    images = coordinate_pairs([(20, 30), (9, 16)], 2)
    with pytest.raises(NasError, match=r"LR patch size 10 does not fit the smallest coords LR image \(16x9 pixels\)"):
        SRPatchStream(images, 2, 10, 2, seed=0)
    with pytest.raises(NasError, match=r"coords pairs are x2, the stream was asked for x3"):
        SRPatchStream(images, 3, 4, 2, seed=0)
    with pytest.raises(NasError, match=r"unknown patch stream mode 'cyclic'; valid choices: shuffle, random"):
        SRPatchStream(images, 2, 4, 2, seed=0, mode="cyclic")


def test_iterate_sr_eval_whole_images_in_order():
    images = coordinate_pairs([(6, 7), (5, 9), (8, 8)], 4)
    out = list(iterate_sr_eval(images, max_images=2))
    assert len(out) == 2 and len(list(iterate_sr_eval(images))) == 3
    lr, hr = out[1]
    assert tuple(lr.shape) == (1, 3, 5, 9) and tuple(hr.shape) == (1, 3, 20, 36)
    assert torch.equal(lr[0], images.lr[1].float() / 255) and torch.equal(hr[0], images.hr[1].float() / 255)


def test_images_subset_and_validation():
    images = coordinate_pairs([(6, 7), (5, 9), (8, 8)], 2)
    sub = images.subset(torch.tensor([2, 0]), "part")
    assert sub.name == "part" and sub.lr[0] is images.lr[2] and sub.hr[1] is images.hr[0] and sub.scale == 2
    with pytest.raises(ValueError, match="not an integer upscaling"):
        SRImages([images.lr[0]], [images.hr[1]], "bad")


# ------------------------------------------------------------------------------------------- metrics
def gray(value: float, h: int = 20, w: int = 20) -> torch.Tensor:
    return torch.full((1, 1, h, w), value, dtype=torch.float64)


def test_psnr_of_a_known_mse():
    # one channel is its own Y; every pixel off by 10 grey levels: PSNR = 20 log10(255 / 10)
    assert psnr_y(gray(110 / 255), gray(100 / 255), 2) == pytest.approx(20 * math.log10(255 / 10), abs=1e-9)


def test_psnr_y_weights_on_rgb():
    black = torch.zeros(1, 3, 12, 12)
    red = black.clone()
    red[:, 0] = 1.0
    # Y(red) - Y(black) = 65.481 / 255 on every pixel
    assert psnr_y(red, black, 2) == pytest.approx(20 * math.log10(255 / 65.481), abs=1e-9)


def test_identical_images_give_inf_and_one_after_rounding_and_clamping():
    hr = torch.randint(0, 256, (1, 3, 24, 24)).float() / 255
    sr = hr + 0.4 / 255  # rounds back to hr
    sr[hr == 1.0] = 1.3  # clamps back to 1
    assert psnr_y(sr, hr, 2) == math.inf and ssim_y(sr, hr, 2) == 1.0


def test_border_crop_by_hand():
    hr = gray(100 / 255, 10, 10)
    sr = hr.clone()
    sr[..., 0, :] = 0.0  # differences only in the outer ring: cropped away at scale 2
    assert psnr_y(sr, hr, 2) == math.inf
    sr[..., 3, 4] += 51 / 255  # one pixel inside, error 0.2
    assert psnr_y(sr, hr, 2) == pytest.approx(10 * math.log10(36 / 0.04), abs=1e-9)  # 6x6 kept
    assert psnr_y(sr, hr, 3) == pytest.approx(10 * math.log10(16 / 0.04), abs=1e-9)  # 4x4 kept


def test_ssim_of_constant_images_by_hand():
    # flat images: variances and covariance are 0, SSIM = (2ab + C1) / (a^2 + b^2 + C1), C1 = (0.01 * 1)^2
    a, b, c1 = 110 / 255, 100 / 255, 0.01 ** 2
    assert ssim_y(gray(a), gray(b), 2) == pytest.approx((2 * a * b + c1) / (a * a + b * b + c1), abs=1e-12)
    sr = gray(b)
    sr[..., :, :2] = 0.9  # only in the cropped border band
    assert ssim_y(sr, gray(b), 2) == 1.0


def test_metric_refusals():
    with pytest.raises(NasError, match=r"SSIM needs at least 11x11 pixels after the border crop, got 8x8"):
        ssim_y(gray(0.5, 12, 12), gray(0.5, 12, 12), 2)
    with pytest.raises(NasError, match=r"differ in shape"):
        psnr_y(gray(0.5, 12, 12), gray(0.5, 12, 14), 2)


# ------------------------------------------------------------------------------------------- bicubic
def test_upscale_bicubic_uses_keys_kernel_a_minus_half():
    # a step 0,0,0,0,1,1,1,1 along the width, doubled: output column 7 sits at input 3.25 with taps 2..5 at
    # distances 1.25, 0.25, 0.75, 1.75: W(0.75) + W(1.75) = 0.2265625 - 0.0234375 for Keys' a = -0.5
    # (torch's plain bicubic, a = -0.75, gives 0.2265625 there)
    lr = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1], dtype=torch.float32).expand(1, 1, 6, 8)
    up = upscale_bicubic(lr, 2)
    assert tuple(up.shape) == (1, 1, 12, 16)
    assert torch.allclose(up[0, 0, :, 7], torch.full((12,), 0.203125), atol=1e-6)
    assert torch.allclose(up[0, 0, :, 8], torch.full((12,), 0.796875), atol=1e-6)  # W(0.25) + W(1.25)
    assert torch.allclose(upscale_bicubic(torch.full((2, 3, 5, 7), 0.3), 3), torch.full((2, 3, 15, 21), 0.3))


def test_downscale_bicubic_rules():
    flat = torch.full((3, 12, 18), 77, dtype=torch.uint8)
    assert torch.equal(downscale_bicubic(flat, 3), torch.full((3, 4, 6), 77, dtype=torch.uint8))
    assert tuple(mod_crop(torch.zeros(3, 50, 62), 4).shape) == (3, 48, 60)
    with pytest.raises(ValueError, match="not a multiple of scale 4"):
        downscale_bicubic(torch.zeros(3, 50, 62, dtype=torch.uint8), 4)


def test_bicubic_baseline_beats_nearest_on_a_photo_pair(tmp_path):
    write_div2k_layout(tmp_path, n_train=1, n_valid=1, size=(64, 64))
    lr, hr = next(iterate_sr_eval(reader("div2k", root=str(tmp_path)).test()))
    nearest = lr.repeat_interleave(2, 2).repeat_interleave(2, 3)
    assert psnr_y(upscale_bicubic(lr, 2), hr, 2) > psnr_y(nearest, hr, 2)


# ------------------------------------------------------------------------------------------- config, extra, download
@pytest.mark.parametrize("name", ["sr_photos", "div2k", "sr_benchmark"])
def test_config_files_carry_the_contract_keys(name):
    from omegaconf import OmegaConf

    from nascli.paths import CONF_DIR

    cfg = OmegaConf.load(Path(CONF_DIR) / "dataset" / f"{name}.yaml")
    assert cfg.name == name and {"root", "download", "train_portion", "seed"} <= set(cfg)
    assert SR_DATASETS.get(name)(cfg, 2).info() == SRInfo(name, 3, 2)


def test_shipped_sr_photos_config_reads_20_tiles_and_splits_them():
    from omegaconf import OmegaConf

    from nascli.paths import CONF_DIR

    r = SR_DATASETS.get("sr_photos")(OmegaConf.load(Path(CONF_DIR) / "dataset" / "sr_photos.yaml"), 4)
    weights, arch = r.search_splits()
    assert (len(weights), len(arch)) == (10, 10)
    assert tuple(weights.lr[0].shape) == (3, 48, 48) and tuple(weights.hr[0].shape) == (3, 192, 192)
    lr, hr = SRPatchStream(weights, 4, 48, 16, seed=0).next()  # EDSR's 48 px LR patches fit at x4
    assert tuple(lr.shape) == (16, 3, 48, 48) and tuple(hr.shape) == (16, 3, 192, 192)


def test_missing_extra_is_one_line_naming_the_install(monkeypatch):
    from nascli.data.sr import photos
    from nascli.data.sr.deps import MissingExtraError

    monkeypatch.setitem(sys.modules, "skimage.data", None)  # import fails as if scikit-image were absent
    photos._photo.cache_clear()
    with pytest.raises(MissingExtraError, match=r"^the embedded sr_photos dataset needs scikit-image, which is not "
                                                r"installed: pip install 'nascli\[sr\]'$"):
        photos._photo("coffee")
    monkeypatch.setitem(sys.modules, "skimage.metrics", None)
    with pytest.raises(MissingExtraError, match=r"PSNR/SSIM needs scikit-image"):
        psnr_y(gray(0.5), gray(0.5), 2)


def test_importing_the_package_loads_neither_skimage_nor_pillow():
    import subprocess

    code = ("import sys, nascli, nascli.data.sr; "
            "print(sorted(m for m in ('skimage', 'PIL', 'scipy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_div2k_download_fetches_hr_and_lr_zips_then_reads_them(tmp_path, monkeypatch):
    src = write_div2k_layout(tmp_path / "src", n_train=2, n_valid=1, scales=(4,), size=(32, 32))
    fetched = []

    def fake_download(urls, dest, md5):  # the official zip, built from the src folders
        fetched.append((urls[0], dest.name, md5))
        folder = dest.name.removesuffix(".zip").replace("_bicubic_X4", "_bicubic/X4")
        with zipfile.ZipFile(dest, "w") as zf:
            for p in sorted((src / folder).iterdir()):
                zf.write(p, f"{folder}/{p.name}")
        return dest

    monkeypatch.setattr("nascli.data.sr.archive.download", fake_download)
    root = tmp_path / "root"
    train = reader("div2k", 4, root=str(root), download=True).train()
    assert [f[1] for f in fetched] == ["DIV2K_train_HR.zip", "DIV2K_train_LR_bicubic_X4.zip"]
    assert fetched[0][0] == "http://data.vision.ee.ethz.ch/cvl/DIV2K/DIV2K_train_HR.zip"
    assert fetched[1][2] == "76c43ec4155851901ebbe8339846d93d"
    assert torch.equal(train.lr[1], read_rgb(src / "DIV2K_train_LR_bicubic" / "X4" / "0002x4.png"))
    assert (root / "DIV2K_train_LR_bicubic" / "X4" / "0001x4.png").is_file()


def test_div2k_failed_download_is_one_line(tmp_path, monkeypatch):
    from nascli.data.download import DownloadFailed

    def offline(urls, dest, md5):
        raise DownloadFailed(f"{urls[0]}: URLError: no network")

    monkeypatch.setattr("nascli.data.sr.archive.download", offline)
    monkeypatch.setenv("NASCLI_CACHE_DIR", str(tmp_path / "cache"))
    with pytest.raises(DataMissingError) as err:
        reader("div2k", root=str(tmp_path / "root"), download=True).test()
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith("div2k: no images in DIV2K_valid_HR/")
    assert "download into" in msg and "DIV2K_valid_HR.zip: URLError: no network" in msg
