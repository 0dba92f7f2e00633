"""The 15 image operations of the DAAS-approx augmentation space, batched on the device in plain torch.

Convention: every op takes a **float batch in [0, 1]** of shape (B, C, H, W) (C = 1 or 3) and a value
tensor ``v`` of shape (B,) in the op's own units (one value per image), and returns a float batch in
[0, 1] on the same device. uint8 batches are handled by :func:`apply_op` (``x / 255`` in, rounded back
to uint8 out). Ops that PIL defines on 8-bit levels (AutoContrast, Equalize, Solarize, Posterize)
work on the levels ``round(255 * x)``.

Op set and value ranges (METHODS.md 7; microsoft/archai ``augmentation.py`` ``augment_list``, the
DADA/Fast-AutoAugment space): a magnitude m in [0, 1] maps linearly to ``low + m * (high - low)``.

    ShearX, ShearY        [-0.3, 0.3]     PIL affine (1, v, 0, 0, 1, 0) / (1, 0, 0, v, 1, 0)
    TranslateX, -Y        [-0.45, 0.45]   fraction of the width / height
    Rotate                [-30, 30]       degrees, counter-clockwise about the centre (PIL rotate)
    AutoContrast, Invert, Equalize        no magnitude
    Solarize              [0, 256]        levels >= v are inverted (v = 256: identity)
    Posterize             [4, 8]          keep int(v) high bits (8: identity)
    Contrast, Color, Brightness, Sharpness [0.1, 1.9]  PIL ImageEnhance factors (1: identity)
    Cutout                [0, 0.2]        square side v * H at a uniform random centre, fill (125, 123, 114)

Geometry follows PIL's NEAREST affine transform on pixel centres: output pixel (x, y) reads the input
pixel containing A (x + 0.5, y + 0.5); points outside the image read 0 (black fill).
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

OpFn = Callable[[torch.Tensor, torch.Tensor, torch.Generator | None], torch.Tensor]

# archai CutoutAbs fill colour (125, 123, 114); a grayscale image uses the first entry.
CUTOUT_FILL = (125 / 255, 123 / 255, 114 / 255)
# ITU-R 601-2 luma, PIL's RGB -> L conversion.
LUMA = (0.299, 0.587, 0.114)


@dataclass(frozen=True)
class PolicyOp:
    """One augmentation op: its function and the value range its magnitude in [0, 1] maps into."""

    name: str
    fn: OpFn
    low: float = 0.0
    high: float = 0.0

    def value(self, magnitude: torch.Tensor) -> torch.Tensor:
        """``low + m * (high - low)`` (archai ``augment_list`` convention)."""
        return self.low + magnitude * (self.high - self.low)


# ----------------------------------------------------------------------------------------------- helpers
def _levels(x: torch.Tensor) -> torch.Tensor:
    """[0, 1] floats -> integer 8-bit levels (as float) 0..255."""
    return torch.round(x.clamp(0, 1) * 255)


def _per_image(v: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return v.to(x.dtype).view(-1, 1, 1, 1)


def _blend(degenerate: torch.Tensor, x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """PIL ``ImageEnhance``: ``degenerate + f * (x - degenerate)``, clipped to [0, 1]."""
    return (degenerate + _per_image(factor, x) * (x - degenerate)).clamp(0, 1)


def _gray(x: torch.Tensor) -> torch.Tensor:
    """(B, 1, H, W) luma of an RGB batch (the batch itself when grayscale)."""
    if x.shape[1] == 1:
        return x
    w = torch.tensor(LUMA, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return (x * w).sum(1, keepdim=True)


def warp_nearest(x: torch.Tensor, matrix: torch.Tensor) -> torch.Tensor:
    """PIL ``Image.transform(AFFINE, (a, b, c, d, e, f), NEAREST)`` per image, fill 0.

    ``matrix`` (B, 6): output pixel (x, y) reads input pixel floor(a X + b Y + c), floor(d X + e Y + f)
    with (X, Y) = (x + 0.5, y + 0.5); reads outside the image give 0.
    """
    b, c, h, w = x.shape
    dev, dt = x.device, torch.float64
    ys, xs = torch.meshgrid(torch.arange(h, device=dev, dtype=dt) + 0.5,
                            torch.arange(w, device=dev, dtype=dt) + 0.5, indexing="ij")
    m = matrix.to(dt).view(b, 6, 1, 1)
    src_x = torch.floor(m[:, 0] * xs + m[:, 1] * ys + m[:, 2]).long()
    src_y = torch.floor(m[:, 3] * xs + m[:, 4] * ys + m[:, 5]).long()
    inside = (src_x >= 0) & (src_x < w) & (src_y >= 0) & (src_y < h)
    flat = (src_y.clamp(0, h - 1) * w + src_x.clamp(0, w - 1)).view(b, 1, h * w).expand(b, c, h * w)
    out = x.reshape(b, c, h * w).gather(2, flat).view(b, c, h, w)
    return out * inside.unsqueeze(1).to(x.dtype)


def _affine(x: torch.Tensor, a, b_, c, d, e, f) -> torch.Tensor:
    cols = [t if torch.is_tensor(t) else torch.full((x.shape[0],), float(t), device=x.device)
            for t in (a, b_, c, d, e, f)]
    return warp_nearest(x, torch.stack([t.to(x.device, torch.float64) for t in cols], dim=1))


# ----------------------------------------------------------------------------------------------- ops
def shear_x(x: torch.Tensor, v: torch.Tensor, _g=None) -> torch.Tensor:
    """PIL affine (1, v, 0, 0, 1, 0): input x-coordinate X + v * Y."""
    return _affine(x, 1.0, v, 0.0, 0.0, 1.0, 0.0)


def shear_y(x: torch.Tensor, v: torch.Tensor, _g=None) -> torch.Tensor:
    """PIL affine (1, 0, 0, v, 1, 0): input y-coordinate v * X + Y."""
    return _affine(x, 1.0, 0.0, 0.0, v, 1.0, 0.0)


def translate_x(x: torch.Tensor, v: torch.Tensor, _g=None) -> torch.Tensor:
    """PIL affine (1, 0, v * W, 0, 1, 0) (archai ``TranslateX``: v is a fraction of the width)."""
    return _affine(x, 1.0, 0.0, v.double() * x.shape[3], 0.0, 1.0, 0.0)


def translate_y(x: torch.Tensor, v: torch.Tensor, _g=None) -> torch.Tensor:
    """PIL affine (1, 0, 0, 0, 1, v * H)."""
    return _affine(x, 1.0, 0.0, 0.0, 0.0, 1.0, v.double() * x.shape[2])


def rotate(x: torch.Tensor, v: torch.Tensor, _g=None) -> torch.Tensor:
    """PIL ``rotate(v)``: counter-clockwise by v degrees about (W/2, H/2); the inverse map is
    input = R(phi) (p - c) + c with phi = -radians(v), R = [[cos, sin], [-sin, cos]]."""
    h, w = x.shape[2], x.shape[3]
    phi = -torch.deg2rad(v.double())
    # PIL rounds the matrix to 15 decimals, so that e.g. 90 degrees maps pixel centres exactly
    cos, sin = torch.round(torch.cos(phi), decimals=15), torch.round(torch.sin(phi), decimals=15)
    cx, cy = w / 2.0, h / 2.0
    return _affine(x, cos, sin, cx - cos * cx - sin * cy, -sin, cos, cy + sin * cx - cos * cy)


def auto_contrast(x: torch.Tensor, _v=None, _g=None) -> torch.Tensor:
    """PIL ``ImageOps.autocontrast`` (cutoff 0) per channel: levels lo..hi stretched to 0..255
    (lut = (i - lo) * 255 / (hi - lo), truncated); a constant channel is left as it is."""
    q = _levels(x)
    lo = q.amin(dim=(2, 3), keepdim=True)
    hi = q.amax(dim=(2, 3), keepdim=True)
    scale = 255.0 / (hi - lo).clamp_min(1)
    out = torch.floor((q - lo) * scale).clamp(0, 255)
    return torch.where(hi > lo, out, q) / 255.0


def invert(x: torch.Tensor, _v=None, _g=None) -> torch.Tensor:
    """1 - x (PIL ``ImageOps.invert``: 255 - level)."""
    return 1.0 - x


def equalize(x: torch.Tensor, _v=None, _g=None) -> torch.Tensor:
    """PIL ``ImageOps.equalize`` per channel: with histogram h, the last non-zero bin's count h_last and
    step = (N - h_last) // 255, level i maps to (step // 2 + sum_{j<i} h_j) // step (clipped to 255);
    step 0 (a channel with one level, or nearly) leaves the channel unchanged."""
    b, c, hgt, wid = x.shape
    q = _levels(x).long().view(b * c, hgt * wid)
    hist = torch.zeros(b * c, 256, dtype=torch.long, device=x.device).scatter_add_(1, q, torch.ones_like(q))
    idx = torch.arange(256, device=x.device).expand(b * c, 256)
    last = torch.where(hist > 0, idx, torch.full_like(idx, -1)).amax(1, keepdim=True)
    step = (hgt * wid - hist.gather(1, last)) // 255
    cum = torch.cumsum(hist, 1) - hist  # counts of the levels below i
    lut = ((step // 2 + cum) // step.clamp_min(1)).clamp(max=255)
    lut = torch.where(step > 0, lut, idx)
    return lut.gather(1, q).view(b, c, hgt, wid).to(x.dtype) / 255.0


def solarize(x: torch.Tensor, v: torch.Tensor, _g=None) -> torch.Tensor:
    """PIL ``ImageOps.solarize(threshold=v)``: levels >= v become 255 - level."""
    q = _levels(x)
    return torch.where(q >= _per_image(v, x), 255.0 - q, q) / 255.0


def posterize(x: torch.Tensor, v: torch.Tensor, _g=None) -> torch.Tensor:
    """PIL ``ImageOps.posterize(bits=int(v))``: level & ~(2^(8 - bits) - 1)."""
    bits = v.to(torch.int64).clamp(0, 8).view(-1, 1, 1, 1)
    mask = (255 - (2 ** (8 - bits) - 1)).to(torch.int64)
    return (_levels(x).long() & mask).to(x.dtype) / 255.0


def contrast(x: torch.Tensor, v: torch.Tensor, _g=None) -> torch.Tensor:
    """``ImageEnhance.Contrast``: degenerate = the mean luma level (rounded, PIL ``int(mean + 0.5)``)."""
    mean = torch.floor(_levels(_gray(x)).mean(dim=(1, 2, 3), keepdim=True) + 0.5) / 255.0
    return _blend(mean.expand_as(x), x, v)


def color(x: torch.Tensor, v: torch.Tensor, _g=None) -> torch.Tensor:
    """``ImageEnhance.Color``: degenerate = the luma image (identity on grayscale batches)."""
    return _blend(_gray(x).expand_as(x), x, v)


def brightness(x: torch.Tensor, v: torch.Tensor, _g=None) -> torch.Tensor:
    """``ImageEnhance.Brightness``: degenerate = black, i.e. f * x clipped."""
    return _blend(torch.zeros_like(x), x, v)


def sharpness(x: torch.Tensor, v: torch.Tensor, _g=None) -> torch.Tensor:
    """``ImageEnhance.Sharpness``: degenerate = PIL's SMOOTH filter [[1,1,1],[1,5,1],[1,1,1]] / 13 on the
    interior, border pixels kept as they are."""
    c = x.shape[1]
    k = torch.ones(3, 3, dtype=x.dtype, device=x.device)
    k[1, 1] = 5.0
    k = (k / 13.0).expand(c, 1, 3, 3)
    smooth = F.conv2d(x, k, groups=c)
    degenerate = x.clone()
    degenerate[:, :, 1:-1, 1:-1] = smooth
    return _blend(degenerate, x, v)


def cutout(x: torch.Tensor, v: torch.Tensor, g: torch.Generator | None = None) -> torch.Tensor:
    """archai ``Cutout(v)`` = ``CutoutAbs(v * H)``: centre (x0, y0) uniform over the image, box
    [x0 - s/2, x0 + s/2) x [y0 - s/2, y0 + s/2) clipped at the border (int truncation of the corners,
    as archai), filled with (125, 123, 114). v = 0: no pixel changes."""
    b, c, h, w = x.shape
    size = v.double() * h
    x0 = torch.rand(b, generator=g, device=x.device).double() * w
    y0 = torch.rand(b, generator=g, device=x.device).double() * h
    left = (x0 - size / 2).clamp_min(0).long().view(b, 1, 1)
    top = (y0 - size / 2).clamp_min(0).long().view(b, 1, 1)
    right = (x0 - size / 2 + size).clamp(max=w).long().view(b, 1, 1)  # archai: x1 = min(w, x0 + size)
    bottom = (y0 - size / 2 + size).clamp(max=h).long().view(b, 1, 1)
    rows = torch.arange(h, device=x.device).view(1, h, 1)
    cols = torch.arange(w, device=x.device).view(1, 1, w)
    hole = ((rows >= top) & (rows < bottom) & (cols >= left) & (cols < right)).unsqueeze(1)
    fill = torch.tensor(CUTOUT_FILL[:c] if c == 3 else CUTOUT_FILL[:1] * c, dtype=x.dtype, device=x.device)
    return torch.where(hole, fill.view(1, c, 1, 1), x)


# The listed order fixes the sub-policy numbering and the order in which a sub-policy's ops apply.
POLICY_OPS: tuple[PolicyOp, ...] = (
    PolicyOp("ShearX", shear_x, -0.3, 0.3),
    PolicyOp("ShearY", shear_y, -0.3, 0.3),
    PolicyOp("TranslateX", translate_x, -0.45, 0.45),
    PolicyOp("TranslateY", translate_y, -0.45, 0.45),
    PolicyOp("Rotate", rotate, -30.0, 30.0),
    PolicyOp("AutoContrast", auto_contrast),
    PolicyOp("Invert", invert),
    PolicyOp("Equalize", equalize),
    PolicyOp("Solarize", solarize, 0.0, 256.0),
    PolicyOp("Posterize", posterize, 4.0, 8.0),
    PolicyOp("Contrast", contrast, 0.1, 1.9),
    PolicyOp("Color", color, 0.1, 1.9),
    PolicyOp("Brightness", brightness, 0.1, 1.9),
    PolicyOp("Sharpness", sharpness, 0.1, 1.9),
    PolicyOp("Cutout", cutout, 0.0, 0.2),
)
OP_NAMES: tuple[str, ...] = tuple(op.name for op in POLICY_OPS)
OPS_BY_NAME: dict[str, PolicyOp] = {op.name: op for op in POLICY_OPS}


def apply_op(name: str, images: torch.Tensor, magnitude: torch.Tensor | float,
             generator: torch.Generator | None = None) -> torch.Tensor:
    """Apply op ``name`` at ``magnitude`` in [0, 1] (scalar or (B,)) to a uint8 or [0, 1] float batch;
    returns the input's dtype (uint8 results are rounded)."""
    op = OPS_BY_NAME[name]
    is_uint8 = images.dtype == torch.uint8
    x = images.float() / 255.0 if is_uint8 else images
    m = torch.as_tensor(magnitude, dtype=torch.float64, device=x.device)
    m = m.expand(x.shape[0]) if m.dim() == 0 else m
    out = op.fn(x, op.value(m), generator)
    return torch.round(out * 255).to(torch.uint8) if is_uint8 else out


def magnitude_value(name: str, magnitude: float) -> float:
    """The op's value for a magnitude in [0, 1] (for display)."""
    op = OPS_BY_NAME[name]
    return float(op.low + magnitude * (op.high - op.low))


def has_magnitude(name: str) -> bool:
    op = OPS_BY_NAME[name]
    return not math.isclose(op.low, op.high)
