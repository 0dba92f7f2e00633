"""DAAS-approx augmentation policies: representation, JSON io, batched application, display.

A policy (METHODS.md 7, the DADA-style space) is

* a categorical distribution over the C(15, 2) = 105 **sub-policies**, each an unordered pair of distinct
  ops (i < j in :data:`~nascli.data.policy_ops.OP_NAMES` order) applied in listed order (op i, then op j);
* per op an **application probability** p in [0, 1] and a **magnitude** m in [0, 1] (mapped linearly into
  the op's range, see :mod:`nascli.data.policy_ops`).

Applying a policy to a batch: every image draws its own sub-policy from the distribution, and each of the
sub-policy's two ops is applied to it with probability p_op at magnitude m_op. The draw happens on the
images' device from one explicit ``torch.Generator``. Images are float [0, 1] (B, C, H, W) batches, or uint8
batches (converted and rounded back).

``policy.json`` (schema ``nascli.policy/1``)::

    {"schema": "nascli.policy/1", "kind": "daas-approx", "ops": [15 names],
     "subpolicies": [{"ops": [a, b], "prob": p}, ... 105 entries],
     "apply_prob": {op: p}, "magnitude": {op: m}, "provenance": {...}}
"""
from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from nascli.data.augment import augment_batch, cutout_mask
from nascli.data.policy_ops import OP_NAMES, POLICY_OPS, has_magnitude, magnitude_value
from nascli.data.stream import BatchStream
from nascli.errors import NasError

SCHEMA = "nascli.policy/1"
# (i, j) op indices of every sub-policy, i < j, in lexicographic order: 105 for 15 ops.
SUBPOLICIES: tuple[tuple[int, int], ...] = tuple(itertools.combinations(range(len(OP_NAMES)), 2))


@dataclass
class PolicyActions:
    """One batch's sampled actions: sub-policy per image (B,), whether each of its two ops fires (B, 2),
    and the magnitude in [0, 1] used for every op (num_ops,)."""

    subpolicy: torch.Tensor
    fire: torch.Tensor
    magnitudes: torch.Tensor


def subpolicy_table(device: torch.device | str = "cpu") -> torch.Tensor:
    """(105, 2) long tensor of the sub-policies' op indices."""
    return torch.tensor(SUBPOLICIES, dtype=torch.long, device=device)


def apply_actions(x: torch.Tensor, actions: PolicyActions, generator: torch.Generator | None = None) -> torch.Tensor:
    """Apply sampled actions to a float [0, 1] batch. Op k runs (once, batched) on the images whose
    sub-policy contains k in a slot that fires; ops run in list order, so each image gets its first op
    before its second (i < j)."""
    pairs = subpolicy_table(x.device)[actions.subpolicy]  # (B, 2)
    out = x
    for k, op in enumerate(POLICY_OPS):
        sel = ((pairs == k) & actions.fire).any(1)
        idx = sel.nonzero().flatten()
        if idx.numel() == 0:
            continue
        m = actions.magnitudes[k].to(torch.float64).expand(idx.numel())
        y = op.fn(out.index_select(0, idx), op.value(m), generator)
        out = out.index_copy(0, idx, y.to(out.dtype))
    return out


@dataclass
class AugmentPolicy:
    """A searched policy (module docstring); probabilities are plain floats."""

    subpolicy_probs: list[float]
    apply_probs: list[float]
    magnitudes: list[float]
    provenance: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if len(self.subpolicy_probs) != len(SUBPOLICIES):
            raise NasError(f"a policy needs {len(SUBPOLICIES)} sub-policy probabilities, got {len(self.subpolicy_probs)}")
        for name, vals in (("apply_prob", self.apply_probs), ("magnitude", self.magnitudes)):
            if len(vals) != len(OP_NAMES) or any(not 0.0 <= v <= 1.0 for v in vals):
                raise NasError(f"policy {name} needs {len(OP_NAMES)} values in [0, 1], got {vals}")

    # ------------------------------------------------------------------ sampling and application
    def sample(self, batch_size: int, device: torch.device | str, generator: torch.Generator | None) -> PolicyActions:
        """Per image a sub-policy ~ Categorical(probs) and Bernoulli(p) fire flags for its two ops."""
        probs = torch.tensor(self.subpolicy_probs, dtype=torch.float64, device=device)
        sub = torch.multinomial(probs, batch_size, replacement=True, generator=generator)
        p = torch.tensor(self.apply_probs, dtype=torch.float64, device=device)
        pairs = subpolicy_table(device)[sub]
        fire = torch.rand(batch_size, 2, generator=generator, device=device, dtype=torch.float64) < p[pairs]
        return PolicyActions(sub, fire, torch.tensor(self.magnitudes, dtype=torch.float64, device=device))

    def apply(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Augment a uint8 or float [0, 1] batch (returned in the same dtype)."""
        is_uint8 = images.dtype == torch.uint8
        x = images.float() / 255.0 if is_uint8 else images
        out = apply_actions(x, self.sample(x.shape[0], x.device, generator), generator)
        return torch.round(out * 255).to(torch.uint8) if is_uint8 else out

    # ------------------------------------------------------------------ json
    def to_json(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA, "kind": "daas-approx", "ops": list(OP_NAMES),
            "subpolicies": [{"ops": [OP_NAMES[i], OP_NAMES[j]], "prob": float(p)}
                            for (i, j), p in zip(SUBPOLICIES, self.subpolicy_probs)],
            "apply_prob": {n: float(p) for n, p in zip(OP_NAMES, self.apply_probs)},
            "magnitude": {n: float(m) for n, m in zip(OP_NAMES, self.magnitudes)},
            "provenance": dict(self.provenance),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "AugmentPolicy":
        if data.get("schema") != SCHEMA:
            raise NasError(f"not a policy file (schema {data.get('schema')!r}, expected {SCHEMA!r})")
        if list(data.get("ops", [])) != list(OP_NAMES):
            raise NasError(f"policy ops {data.get('ops')} differ from this version's {list(OP_NAMES)}")
        by_pair = {tuple(s["ops"]): float(s["prob"]) for s in data["subpolicies"]}
        try:
            probs = [by_pair[(OP_NAMES[i], OP_NAMES[j])] for i, j in SUBPOLICIES]
            apply_probs = [float(data["apply_prob"][n]) for n in OP_NAMES]
            mags = [float(data["magnitude"][n]) for n in OP_NAMES]
        except KeyError as exc:
            raise NasError(f"policy file lacks entry {exc}") from None
        return cls(probs, apply_probs, mags, dict(data.get("provenance", {})))

    def top(self, n: int = 10) -> list[tuple[int, float]]:
        """The n most probable sub-policies as (index, prob), most probable first."""
        order = sorted(range(len(SUBPOLICIES)), key=lambda k: -self.subpolicy_probs[k])
        return [(k, self.subpolicy_probs[k]) for k in order[:n]]


def load_policy(path: str | Path) -> AugmentPolicy:
    """Read a ``policy.json``; errors name the file."""
    p = Path(path)
    if not p.is_file():
        raise NasError(f"policy file {p} not found")
    try:
        data = json.loads(p.read_text())
    except json.JSONDecodeError as exc:
        raise NasError(f"policy file {p} is not valid JSON ({exc.msg})") from None
    return AugmentPolicy.from_json(data)


def policy_table(policy: AugmentPolicy, n: int = 10):
    """A rich Table of the n most probable sub-policies with each op's probability and value."""
    from rich.table import Table

    table = Table(title=f"augmentation policy (top {n} of {len(SUBPOLICIES)} sub-policies)")
    for col in ("#", "prob", "op 1", "p1", "value 1", "op 2", "p2", "value 2"):
        table.add_column(col, justify="right" if col not in ("op 1", "op 2") else "left")

    def describe(k: int) -> tuple[str, str, str]:
        name = OP_NAMES[k]
        value = f"{magnitude_value(name, policy.magnitudes[k]):.3g}" if has_magnitude(name) else "-"
        return name, f"{policy.apply_probs[k]:.2f}", value

    for rank, (idx, prob) in enumerate(policy.top(n), 1):
        i, j = SUBPOLICIES[idx]
        table.add_row(str(rank), f"{prob:.3f}", *describe(i), *describe(j))
    return table


class PolicyBatchStream(BatchStream):
    """A :class:`BatchStream` whose training batches are augmented by a fixed policy: random crop and
    flip, then the policy on [0, 1] images, then normalisation and cutout (the same order the search
    component uses). All randomness comes from the stream's generator, so resume stays exact."""

    def __init__(self, split, info, batch_size: int, *, policy: AugmentPolicy, seed: int, train_aug: bool,
                 cutout: int = 0, mode: str = "shuffle"):
        super().__init__(split, info, batch_size, seed=seed, train_aug=train_aug, cutout=cutout, mode=mode)
        self.policy = policy

    def next(self) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.train_aug:
            return super().next()
        idx = self._indices()
        images = self.split.images.index_select(0, idx)
        labels = self.split.labels.index_select(0, idx)
        self.batches_drawn += 1
        x = augment_batch(images, self.info, train=True, cutout=0, generator=self.generator)
        x01 = denormalize(x, self.info)
        x = normalize_float(self.policy.apply(x01, self.generator), self.info)
        if self.cutout > 0:
            b, _, h, w = x.shape
            cy = torch.randint(0, h, (b,), generator=self.generator, device=x.device)
            cx = torch.randint(0, w, (b,), generator=self.generator, device=x.device)
            x = x.masked_fill(cutout_mask((cy, cx), self.cutout, h, w).unsqueeze(1), 0.0)
        return x, labels

    __next__ = next


def policy_stream_factory(policy: AugmentPolicy):
    """A ``make_stream`` for :func:`nascli.train.train_network` that augments with ``policy``."""

    def make_stream(split, info, batch_size, *, seed, train_aug, cutout=0, mode="shuffle"):
        return PolicyBatchStream(split, info, batch_size, policy=policy, seed=seed, train_aug=train_aug,
                                 cutout=cutout, mode=mode)

    return make_stream


def _stats(info, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    mean = torch.tensor(info.mean, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    std = torch.tensor(info.std, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    return mean, std


def denormalize(x: torch.Tensor, info) -> torch.Tensor:
    """Inverse of :func:`nascli.data.augment.normalize`: ``x * std + mean`` -> [0, 1] (clipped)."""
    mean, std = _stats(info, x)
    return (x * std + mean).clamp(0, 1)


def normalize_float(x01: torch.Tensor, info) -> torch.Tensor:
    """``(x - mean) / std`` for a float [0, 1] batch."""
    mean, std = _stats(info, x01)
    return (x01 - mean) / std


__all__ = ["AugmentPolicy", "PolicyActions", "PolicyBatchStream", "SUBPOLICIES", "apply_actions", "denormalize",
           "load_policy", "normalize_float", "policy_stream_factory", "policy_table"]
