"""SpecAugment's frequency and time masking (Park et al., Interspeech 2019), applied to a padded batch on its
device; time warping is not applied.

For each utterance b of valid length ``L_b`` frames over ``nu`` mel bins:

* ``freq_masks`` times: width ``f ~ U{0..freq_width}``, start ``f0 ~ U{0..nu - f}``; bins ``[f0, f0 + f)``
  are set to 0;
* ``time_masks`` times: width ``t ~ U{0..min(time_width, floor(time_ratio * L_b))}``, start
  ``t0 ~ U{0..L_b - t}``; frames ``[t0, t0 + t)`` are set to 0.

0 is the mean of a CMVN-normalised feature (the paper masks with the mean). The random numbers come from the
caller's ``torch.Generator`` on its device (the stream's, so a resumed stream redraws the same masks); the
masks are built and applied on the batch's device. Policies (:data:`POLICIES`):

* ``ld``: LibriSpeech double (Park et al. 2019, Table 1): F=27, m_F=2, T=100, p=1.0, m_T=2;
* ``conformer``: Conformer (Gulati et al., Interspeech 2020, sec. 3.1): F=27, two frequency masks, ten time
  masks of at most ``p_S = 0.05`` of the utterance (time_width unbounded);
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

    @property
    def active(self) -> bool:
        return self.freq_masks > 0 or self.time_masks > 0

    def __call__(self, x: torch.Tensor, lengths: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """``x`` (B, T, F) with the masks of the module docstring set to 0 (a new tensor)."""
        if not self.active:
            return x
        b, t, nu = x.shape
        gen = generator.device
        lens = lengths.detach().to(gen, torch.float64)

        def uniform(k: int) -> torch.Tensor:
            return torch.rand(b, k, generator=generator, dtype=torch.float64, device=gen)

        fw = torch.floor(uniform(self.freq_masks) * (min(self.freq_width, nu) + 1))
        f0 = torch.floor(uniform(self.freq_masks) * (nu - fw + 1))
        tmax = torch.minimum(torch.full_like(lens, float(self.time_width)), torch.floor(self.time_ratio * lens))
        tw = torch.floor(uniform(self.time_masks) * (tmax[:, None] + 1))
        t0 = torch.floor(uniform(self.time_masks) * (lens[:, None] - tw + 1).clamp_min(1))
        dev = x.device
        mask_f = _spans(f0.to(dev), fw.to(dev), nu)  # (B, F)
        mask_t = _spans(t0.to(dev), tw.to(dev), t)   # (B, T)
        return x.masked_fill(mask_f[:, None, :] | mask_t[:, :, None], 0.0)


def _spans(start: torch.Tensor, width: torch.Tensor, size: int) -> torch.Tensor:
    """bool (B, size): True inside any of the spans ``[start[b, k], start[b, k] + width[b, k])``."""
    pos = torch.arange(size, device=start.device, dtype=start.dtype)[None, None, :]
    inside = (pos >= start[..., None]) & (pos < (start + width)[..., None])
    return inside.any(1)


#: policy name -> masking parameters (module docstring)
POLICIES: dict[str, SpecAugment] = {
    "ld": SpecAugment(freq_masks=2, freq_width=27, time_masks=2, time_width=100, time_ratio=1.0),
    "conformer": SpecAugment(freq_masks=2, freq_width=27, time_masks=10, time_width=10 ** 9, time_ratio=0.05),
    "none": SpecAugment(freq_masks=0, freq_width=0, time_masks=0, time_width=0, time_ratio=0.0),
}


def policy(name: str) -> SpecAugment:
    """The SpecAugment policy ``name``."""
    if name not in POLICIES:
        raise NasError(f"task.specaugment={name!r} is not a SpecAugment policy; valid choices: {', '.join(POLICIES)}")
    return POLICIES[name]
