"""SpecAugment (Park et al., Interspeech 2019): time warping, frequency and time masking, applied to a padded
batch on its device.

For each utterance b of valid length ``L_b`` frames over ``nu`` mel bins, first the time warp (when
``warp_width`` W > 0), then the masks:

* time warp: ``W_b = min(W, floor((L_b - 1) / 2))`` (no warp when ``W_b < 1``); a centre ``c ~ U{W_b..L_b - W_b - 1}``
  moves to ``m = clip(c + w, 1, L_b - 2)`` with ``w ~ U{-W_b..W_b}``: output frame ``j < L_b`` reads the input at
  ``s(j) = j * c / m`` for ``j < m`` and ``s(j) = c + (j - m) * (L_b - 1 - c) / (L_b - 1 - m)`` from ``m`` on,
  linearly interpolated between frames ``floor(s)`` and ``floor(s) + 1`` (the piecewise-linear warp of the time
  axis with the first and last valid frames fixed and frame c moved to m; padding frames are left as they are);

* ``freq_masks`` times: width ``f ~ U{0..freq_width}``, start ``f0 ~ U{0..nu - f}``; bins ``[f0, f0 + f)``
  are set to 0;
* ``time_masks`` times: width ``t ~ U{0..min(time_width, floor(time_ratio * L_b))}``, start
  ``t0 ~ U{0..L_b - t}``; frames ``[t0, t0 + t)`` are set to 0.

0 is the mean of a CMVN-normalised feature (the paper masks with the mean). The random numbers come from the
caller's ``torch.Generator`` on its device (the stream's, so a resumed stream redraws the same masks); the
masks are built and applied on the batch's device. Policies (:data:`POLICIES`):

* ``ld``: LibriSpeech double (Park et al. 2019, Table 1): W=80, F=27, m_F=2, T=100, p=1.0, m_T=2;
* ``conformer``: Conformer (Gulati et al., Interspeech 2020, sec. 3.1): F=27, two frequency masks, ten time
  masks of at most ``p_S = 0.05`` of the utterance (time_width unbounded); the paper names no time warp;
* ``none``: no masking.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from nascli.errors import NasError


@dataclass(frozen=True)
class SpecAugment:
    freq_masks: int
    freq_width: int
    time_masks: int
    time_width: int
    time_ratio: float
    warp_width: int = 0

    @property
    def active(self) -> bool:
        return self.freq_masks > 0 or self.time_masks > 0 or self.warp_width > 0

    def __call__(self, x: torch.Tensor, lengths: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """``x`` (B, T, F) with the masks of the module docstring set to 0 (a new tensor)."""
        if not self.active:
            return x
        b, t, nu = x.shape
        gen = generator.device
        lens = lengths.detach().to(gen, torch.float64)

        def uniform(k: int) -> torch.Tensor:
            return torch.rand(b, k, generator=generator, dtype=torch.float64, device=gen)

        if self.warp_width > 0:
            x = time_warp(x, lens, self.warp_width, uniform(2))
        fw = torch.floor(uniform(self.freq_masks) * (min(self.freq_width, nu) + 1))
        f0 = torch.floor(uniform(self.freq_masks) * (nu - fw + 1))
        tmax = torch.minimum(torch.full_like(lens, float(self.time_width)), torch.floor(self.time_ratio * lens))
        tw = torch.floor(uniform(self.time_masks) * (tmax[:, None] + 1))
        t0 = torch.floor(uniform(self.time_masks) * (lens[:, None] - tw + 1).clamp_min(1))
        dev = x.device
        mask_f = _spans(f0.to(dev), fw.to(dev), nu)  # (B, F)
        mask_t = _spans(t0.to(dev), tw.to(dev), t)   # (B, T)
        return x.masked_fill(mask_f[:, None, :] | mask_t[:, :, None], 0.0)


def time_warp(x: torch.Tensor, lengths: torch.Tensor, width: int, u: torch.Tensor) -> torch.Tensor:
    """``x`` (B, T, F) with each utterance's valid frames warped along time (module docstring); ``lengths`` (B,)
    and the uniform draws ``u`` (B, 2) in [0, 1) for the centre and the distance are float64 on any device."""
    b, t, _ = x.shape
    wb = torch.minimum(torch.full_like(lengths, float(width)), torch.floor((lengths - 1) / 2)).clamp_min(0)
    c = wb + torch.floor(u[:, 0] * (lengths - 2 * wb).clamp_min(1))
    w = torch.floor(u[:, 1] * (2 * wb + 1)) - wb
    dev = x.device
    c, w, lens, wb = (v.to(dev)[:, None] for v in (c, w, lengths, wb))
    j = torch.arange(t, device=dev, dtype=torch.float64)[None, :]
    moved = torch.minimum(torch.maximum(c + w, torch.ones_like(c)), (lens - 2).clamp_min(1))
    left = j * c / moved
    right = c + (j - moved) * (lens - 1 - c) / (lens - 1 - moved).clamp_min(1)
    src = torch.where(j < moved, left, right)
    src = torch.where((j < lens) & (wb >= 1), src, j).clamp(0, t - 1)  # padding and unwarped rows: identity
    lo = src.floor().long()
    hi = (lo + 1).clamp_max(t - 1)
    frac = (src - lo).to(x.dtype)[..., None]
    gather = lambda idx: torch.gather(x, 1, idx[..., None].expand(-1, -1, x.shape[2]))  # noqa: E731
    return gather(lo) * (1 - frac) + gather(hi) * frac


def _spans(start: torch.Tensor, width: torch.Tensor, size: int) -> torch.Tensor:
    """bool (B, size): True inside any of the spans ``[start[b, k], start[b, k] + width[b, k])``."""
    pos = torch.arange(size, device=start.device, dtype=start.dtype)[None, None, :]
    inside = (pos >= start[..., None]) & (pos < (start + width)[..., None])
    return inside.any(1)


#: policy name -> masking parameters (module docstring)
POLICIES: dict[str, SpecAugment] = {
    "ld": SpecAugment(freq_masks=2, freq_width=27, time_masks=2, time_width=100, time_ratio=1.0, warp_width=80),
    "conformer": SpecAugment(freq_masks=2, freq_width=27, time_masks=10, time_width=10 ** 9, time_ratio=0.05),
    "none": SpecAugment(freq_masks=0, freq_width=0, time_masks=0, time_width=0, time_ratio=0.0),
}


def policy(name: str) -> SpecAugment:
    """The SpecAugment policy ``name``."""
    if name not in POLICIES:
        raise NasError(f"task.specaugment={name!r} is not a SpecAugment policy; valid choices: {', '.join(POLICIES)}")
    return POLICIES[name]
