"""The 15 DAAS-approx augmentation ops on hand-made images (nascli/data/policy_ops.py)."""
import pytest
import torch

from nascli.data.policy_ops import (CUTOUT_FILL, OP_NAMES, OPS_BY_NAME, POLICY_OPS, apply_op, auto_contrast,
                                    brightness, color, contrast, cutout, equalize, invert, posterize, rotate,
                                    sharpness, shear_x, shear_y, solarize, translate_x, translate_y)


def _img(b=2, c=3, h=8, w=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (b, c, h, w), generator=g).float() / 255.0


def _v(x, value):
    return torch.full((x.shape[0],), float(value), dtype=torch.float64)


def test_op_list_and_ranges_are_the_documented_ones():
    # archai augment_list ranges (METHODS.md 7)
    expected = {"ShearX": (-0.3, 0.3), "ShearY": (-0.3, 0.3), "TranslateX": (-0.45, 0.45),
                "TranslateY": (-0.45, 0.45), "Rotate": (-30.0, 30.0), "AutoContrast": (0.0, 0.0),
                "Invert": (0.0, 0.0), "Equalize": (0.0, 0.0), "Solarize": (0.0, 256.0), "Posterize": (4.0, 8.0),
                "Contrast": (0.1, 1.9), "Color": (0.1, 1.9), "Brightness": (0.1, 1.9), "Sharpness": (0.1, 1.9),
                "Cutout": (0.0, 0.2)}
    assert list(OP_NAMES) == list(expected) and len(POLICY_OPS) == 15
    for name, (low, high) in expected.items():
        op = OPS_BY_NAME[name]
        m = torch.tensor([0.0, 0.25, 0.5, 1.0], dtype=torch.float64)
        vals = op.value(m)
        assert vals[0].item() == pytest.approx(low) and vals[-1].item() == pytest.approx(high)
        assert vals[1].item() == pytest.approx(low + 0.25 * (high - low))
        assert bool(((vals >= min(low, high) - 1e-12) & (vals <= max(low, high) + 1e-12)).all())


def test_invert_twice_is_identity_and_uint8_roundtrip():
    x = _img()
    assert torch.allclose(invert(invert(x)), x, rtol=0, atol=1e-7)  # float: 1 - (1 - x) up to rounding
    u = (x * 255).round().to(torch.uint8)
    once = apply_op("Invert", u, 0.0)
    assert once.dtype == torch.uint8 and torch.equal(once, 255 - u)
    assert torch.equal(apply_op("Invert", once, 0.0), u)


@pytest.mark.parametrize("fn", [rotate, shear_x, shear_y, translate_x, translate_y])
def test_geometric_ops_at_zero_are_identity(fn):
    x = _img(h=7, w=9)
    assert torch.equal(fn(x, _v(x, 0.0)), x)


def test_middle_magnitude_of_signed_ops_is_identity():
    x = _img()
    for name in ("ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate"):
        assert torch.equal(apply_op(name, x, 0.5), x), name


def test_rotate_90_is_counter_clockwise_like_pil():
    x = torch.arange(16.0).view(1, 1, 4, 4) / 15
    assert torch.equal(rotate(x, _v(x, 90.0)), torch.rot90(x, 1, dims=(2, 3)))
    assert torch.equal(rotate(x, _v(x, -90.0)), torch.rot90(x, -1, dims=(2, 3)))


def test_shear_and_translate_follow_the_pil_affine_map():
    x = torch.arange(1.0, 17.0).view(1, 1, 4, 4) / 16
    # ShearX v: output (x, y) reads input x-index floor(x + 0.5 + v (y + 0.5)); v = 1 -> x + y + 1
    out = shear_x(x, _v(x, 1.0))[0, 0]
    for y in range(4):
        for xx in range(4):
            src = xx + y + 1
            assert out[y, xx] == (x[0, 0, y, src] if src < 4 else 0.0)
    # TranslateX 0.25 of width 4 = 1 pixel: content moves left by one, zero fill on the right
    t = translate_x(x, _v(x, 0.25))[0, 0]
    assert torch.equal(t[:, :3], x[0, 0, :, 1:]) and torch.equal(t[:, 3], torch.zeros(4))
    t = translate_y(x, _v(x, -0.25))[0, 0]
    assert torch.equal(t[1:], x[0, 0, :3]) and torch.equal(t[0], torch.zeros(4))


def test_solarize_threshold_256_is_identity_and_0_inverts():
    x = _img()
    assert torch.equal(solarize(x, _v(x, 256.0)), x)
    assert torch.allclose(solarize(x, _v(x, 0.0)), 1.0 - x, atol=1e-7)
    levels = torch.tensor([0.0, 127.0, 128.0, 255.0]).view(1, 1, 1, 4) / 255
    out = solarize(levels, _v(levels, 128.0)) * 255
    assert torch.allclose(out.flatten(), torch.tensor([0.0, 127.0, 127.0, 0.0]), atol=1e-4)


def test_posterize_8_bits_is_identity_and_4_bits_masks_low_bits():
    x = _img()
    assert torch.equal(posterize(x, _v(x, 8.0)), (x * 255).round() / 255)
    v = torch.tensor([[[[187.0]]]]) / 255  # 0b10111011 -> 0b10110000 = 176
    assert posterize(v, _v(v, 4.0)).item() * 255 == pytest.approx(176.0)
    assert apply_op("Posterize", v, 1.0).item() * 255 == pytest.approx(187.0)  # m = 1 -> 8 bits
    assert apply_op("Posterize", v, 0.0).item() * 255 == pytest.approx(176.0)  # m = 0 -> 4 bits


def test_equalize_on_a_known_histogram():
    # 1024 pixels: 600 at level 10, 224 at 100, 200 at 200. PIL: step = (1024 - 200) // 255 = 3,
    # lut[i] = (step // 2 + #pixels below i) // step: 10 -> 0, 100 -> 601 // 3 = 200, 200 -> 825 // 3 = 275 -> 255
    levels = torch.cat([torch.full((600,), 10.0), torch.full((224,), 100.0), torch.full((200,), 200.0)])
    x = levels[torch.randperm(1024)].view(1, 1, 32, 32) / 255
    out = (equalize(x) * 255).round()
    expected = {10.0: 0.0, 100.0: 200.0, 200.0: 255.0}
    for src, dst in expected.items():
        assert bool((out[(x * 255).round() == src] == dst).all()), (src, dst)
    const = torch.full((1, 3, 8, 8), 0.4)
    assert torch.equal(equalize(const), (const * 255).round() / 255)


def test_autocontrast_stretches_each_channel():
    x = torch.stack([torch.linspace(50, 150, 64), torch.linspace(0, 255, 64), torch.full((64,), 77.0)]).view(1, 3, 8, 8) / 255
    out = auto_contrast(x) * 255
    assert out[0, 0].min().item() == 0 and out[0, 0].max().item() == 255
    assert torch.allclose(out[0, 1], (x[0, 1] * 255).round())  # already full range
    assert torch.allclose(out[0, 2], torch.full((8, 8), 77.0))  # constant channel unchanged


def test_enhance_ops_at_factor_one_are_identity_and_follow_pil_blends():
    x = _img()
    for fn in (contrast, color, brightness, sharpness):
        assert torch.allclose(fn(x, _v(x, 1.0)), x, atol=1e-6), fn.__name__
    assert torch.allclose(brightness(x, _v(x, 0.5)), 0.5 * x, atol=1e-7)
    gray = (x * torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(1, keepdim=True)
    assert torch.allclose(color(x, _v(x, 0.0)), gray.expand_as(x), atol=1e-6)
    g1 = _img(c=1)
    assert torch.allclose(color(g1, _v(g1, 0.1)), g1)  # grayscale: colour is a no-op
    mean = torch.floor((gray * 255).round().mean(dim=(1, 2, 3), keepdim=True) + 0.5) / 255
    assert torch.allclose(contrast(x, _v(x, 0.0)), mean.expand_as(x), atol=1e-6)
    # sharpness 0 = PIL SMOOTH on the interior, border unchanged
    s = sharpness(x, _v(x, 0.0))
    assert torch.equal(s[:, :, 0], x[:, :, 0]) and torch.equal(s[:, :, :, -1], x[:, :, :, -1])
    k = torch.ones(3, 3)
    k[1, 1] = 5
    manual = (x[0, 0, 2:5, 3:6] * k).sum() / 13
    assert s[0, 0, 3, 4].item() == pytest.approx(manual.item(), abs=1e-6)


def test_cutout_zero_area_is_identity_and_positive_area_fills_a_box():
    x = _img(b=4, h=10, w=10)
    g = torch.Generator().manual_seed(0)
    assert torch.equal(cutout(x, _v(x, 0.0), g), x)
    out = cutout(x, _v(x, 0.2), g)  # side 0.2 * 10 = 2 pixels, clipped at the border
    changed = (out != x).any(1)
    fill = torch.tensor(CUTOUT_FILL).view(3, 1)
    for i in range(4):
        n = int(changed[i].sum())
        assert 0 < n <= 4
        assert torch.allclose(out[i][:, changed[i]], fill.expand(3, n))


def test_ops_accept_per_image_values_and_keep_the_range():
    x = _img(b=3)
    for op in POLICY_OPS:
        m = torch.tensor([0.0, 0.5, 1.0], dtype=torch.float64)
        out = op.fn(x, op.value(m), torch.Generator().manual_seed(1))
        assert out.shape == x.shape and out.dtype == x.dtype, op.name
        assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0, op.name
    # per-image values: image 0 unchanged (factor 1), image 1 darkened
    v = torch.tensor([1.0, 0.5, 1.0], dtype=torch.float64)
    out = brightness(x, v)
    assert torch.allclose(out[0], x[0]) and torch.allclose(out[1], 0.5 * x[1])
