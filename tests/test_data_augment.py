"""augment_batch: exact crop/flip/normalise/cutout semantics on hand-made images, determinism."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from nascli.data import DatasetInfo, augment_batch, normalize
from nascli.data.augment import cutout_mask, random_crop

INFO = DatasetInfo("t", 10, 3, 8, (0.4, 0.5, 0.6), (0.2, 0.25, 0.3), 2)
NO_CROP = DatasetInfo("t", 10, 3, 8, (0.4, 0.5, 0.6), (0.2, 0.25, 0.3), 0)


def images(b: int = 6, size: int = 8) -> torch.Tensor:
    return torch.randint(0, 256, (b, 3, size, size), dtype=torch.uint8, generator=torch.Generator().manual_seed(7))


def reference_norm(x: torch.Tensor, info: DatasetInfo) -> torch.Tensor:
    mean = torch.tensor(info.mean).view(1, -1, 1, 1)
    std = torch.tensor(info.std).view(1, -1, 1, 1)
    return (x.double() / 255 - mean) / std


def test_eval_is_normalisation_only():
    x = images()
    out = augment_batch(x, INFO, train=False)
    assert out.dtype == torch.float32 and out.shape == x.shape
    torch.testing.assert_close(out.double(), reference_norm(x, INFO), atol=1e-5, rtol=0)
    torch.testing.assert_close(normalize(x, INFO), out)


def test_train_shapes_and_generator_determinism():
    x = images(16)
    a = augment_batch(x, INFO, train=True, cutout=3, generator=torch.Generator().manual_seed(1))
    b = augment_batch(x, INFO, train=True, cutout=3, generator=torch.Generator().manual_seed(1))
    c = augment_batch(x, INFO, train=True, cutout=3, generator=torch.Generator().manual_seed(2))
    assert a.shape == x.shape and a.dtype == torch.float32
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_crop_offsets_select_windows_of_the_zero_padded_image():
    x = images(3)
    padded = F.pad(x, (2, 2, 2, 2))
    top, left = torch.tensor([0, 2, 4]), torch.tensor([4, 2, 1])
    out = random_crop(x, 2, (top, left))
    for i in range(3):
        t, l = int(top[i]), int(left[i])
        assert torch.equal(out[i], padded[i, :, t : t + 8, l : l + 8])
    assert torch.equal(out[1], x[1])  # offset == padding is the identity
    assert (out[0, :, :2, :] == 0).all() and (out[0, :, :, -2:] == 0).all()  # zero fill enters at top / right


def test_train_pipeline_matches_per_image_reference():
    """Replay the documented draw order (crop offsets, flips) and rebuild each image by hand."""
    x = images(32)
    out = augment_batch(x, INFO, train=True, generator=torch.Generator().manual_seed(5))
    g = torch.Generator().manual_seed(5)
    top = torch.randint(0, 5, (32,), generator=g)
    left = torch.randint(0, 5, (32,), generator=g)
    flip = torch.rand(32, generator=g) < 0.5
    assert 0 < flip.sum() < 32
    padded = F.pad(x, (2, 2, 2, 2))
    for i in range(32):
        crop = padded[i : i + 1, :, top[i] : top[i] + 8, left[i] : left[i] + 8]
        if flip[i]:
            crop = crop.flip(-1)
        torch.testing.assert_close(out[i : i + 1].double(), reference_norm(crop, INFO), atol=1e-5, rtol=0)


def test_flip_without_crop_is_mirror_or_identity():
    x = images(64)
    out = augment_batch(x, NO_CROP, train=True, generator=torch.Generator().manual_seed(0))
    plain, mirrored = normalize(x, NO_CROP), normalize(x.flip(-1), NO_CROP)
    is_plain = (out == plain).flatten(1).all(1)
    is_mirror = (out == mirrored).flatten(1).all(1)
    assert (is_plain | is_mirror).all() and not (is_plain & is_mirror).any()
    # without crop padding the flips are the generator's first draws: rand < 0.5 per image
    expected = torch.rand(64, generator=torch.Generator().manual_seed(0)) < 0.5
    assert torch.equal(is_mirror, expected) and 16 <= int(expected.sum()) <= 48


def test_flip_rate_is_one_half():
    x = torch.zeros(4000, 1, 1, 2, dtype=torch.uint8)
    x[..., 1] = 255  # asymmetric: a flip moves the bright pixel to the left
    info = DatasetInfo("t", 2, 1, 2, (0.0,), (1.0,), 0)
    out = augment_batch(x, info, train=True, generator=torch.Generator().manual_seed(3))
    rate = (out[..., 0] > 0.5).float().mean().item()
    assert 0.46 < rate < 0.54


@pytest.mark.parametrize(
    "cy,cx,length,expected_rows,expected_cols",
    [(4, 4, 4, (2, 6), (2, 6)), (0, 0, 4, (0, 2), (0, 2)), (7, 6, 4, (5, 8), (4, 8)), (3, 3, 5, (1, 5), (1, 5))],
)
def test_cutout_mask_is_the_clipped_square(cy, cx, length, expected_rows, expected_cols):
    mask = cutout_mask((torch.tensor([cy]), torch.tensor([cx])), length, 8, 8)[0]
    want = torch.zeros(8, 8, dtype=torch.bool)
    want[expected_rows[0] : expected_rows[1], expected_cols[0] : expected_cols[1]] = True
    assert torch.equal(mask, want)


def test_cutout_zeroes_exactly_the_hole_after_normalisation():
    x = torch.full((20, 3, 8, 8), 200, dtype=torch.uint8)  # normalised value is far from 0 everywhere
    out = augment_batch(x, NO_CROP, train=True, cutout=4, generator=torch.Generator().manual_seed(9))
    g = torch.Generator().manual_seed(9)
    torch.rand(20, generator=g)  # flips come before cutout centres
    cy = torch.randint(0, 8, (20,), generator=g)
    cx = torch.randint(0, 8, (20,), generator=g)
    # the hole, rebuilt by hand: rows [cy - 2, cy + 2) and columns [cx - 2, cx + 2), clipped to the image
    r = torch.arange(8)
    rows = (r >= (cy - 2)[:, None]) & (r < (cy + 2)[:, None])
    cols = (r >= (cx - 2)[:, None]) & (r < (cx + 2)[:, None])
    want = rows[:, :, None] & cols[:, None, :]
    zero = out == 0
    assert torch.equal(zero, want.unsqueeze(1).expand_as(out))  # every channel, nothing outside the hole
    sizes = ((cy + 2).clamp(max=8) - (cy - 2).clamp(min=0)) * ((cx + 2).clamp(max=8) - (cx - 2).clamp(min=0))
    assert torch.equal(zero[:, 0].flatten(1).sum(1), sizes)
    assert sizes.max() == 16 and sizes.min() < 16  # both whole and clipped holes occur with this seed


def test_rejects_float_input():
    with pytest.raises(ValueError, match="uint8"):
        augment_batch(torch.zeros(1, 3, 8, 8), INFO, train=False)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_augment_runs_on_cuda_with_cuda_generator():
    x = images(8).cuda()
    g = torch.Generator(device="cuda").manual_seed(0)
    out = augment_batch(x, INFO, train=True, cutout=3, generator=g)
    assert out.device.type == "cuda" and out.dtype == torch.float32
    again = augment_batch(x, INFO, train=True, cutout=3, generator=torch.Generator(device="cuda").manual_seed(0))
    assert torch.equal(out, again)
    torch.testing.assert_close(augment_batch(x, INFO, train=False).cpu(), augment_batch(x.cpu(), INFO, train=False))
