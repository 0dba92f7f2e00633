"""GDAS: hard straight-through Gumbel-softmax, one sampled op per edge (Dong & Yang, CVPR'19; METHODS.md 5.1).

Per edge e and forward pass (D-X-Y/AutoDL-Projects@f46486e ``search_model_gdas.py``):

    g = -log(Exp(1))                              (Gumbel noise; redrawn when inf / NaN appear)
    h = softmax((log_softmax(alpha_e) + g) / tau)
    k_e = argmax h
    hardwts = onehot(k_e) + (h - h.detach())      (= onehot - h.detach() + h; forward value exactly one-hot)

Only op k_e is computed (``EdgeWeights.active = [[k_e]]``); its output is scaled by hardwts[k_e] (= 1),
so dL/dh flows back through softmax's Jacobian into every alpha of the edge. On NB201 the reference also
adds the other ops' hardwts (value 0) to the edge output so that they receive a gradient too
(``EdgeWeights.passthrough``); the NASNet/DARTS-space reference does not (METHODS.md 5.1, 11.5):
``passthrough: auto`` follows that per space. One sample serves all cells of a cell type and is redrawn
on every forward, so the weight step and the architecture step see different samples.

Temperature, set at the start of every epoch e of E (``on_epoch_start``):
    tau_e = tau_max - (tau_max - tau_min) * e / (E - 1),   tau_max = 10, tau_min = 0.1
It lives in the buffer ``tau`` so that it is checkpointed with the supernet.

Multi-path hooks (used by the ``multipath`` optimizer, ROME): ``begin_paths(K, phase)``,
``select_path(k)``, ``end_paths()``. With ``strict_fair: true`` the K weight-step paths use a fair
op schedule per edge (:func:`fair_schedule`) instead of the Gumbel argmax; the straight-through weights
are still built from the Gumbel softmax h, around the scheduled op.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from nascli.search.mixers.base import MIXERS, EdgeWeights, Mixer

EVAL_MODES = ("sample", "argmax")
MAX_RESAMPLES = 100


def temperature(epoch: int, epochs: int, tau_max: float = 10.0, tau_min: float = 0.1) -> float:
    """GDAS linear schedule tau_e = tau_max - (tau_max - tau_min) * e / (E - 1) (tau_max when E = 1)."""
    if epochs <= 1:
        return float(tau_max)
    return float(tau_max - (tau_max - tau_min) * epoch / (epochs - 1))


def gumbel_noise(shape: torch.Size, device: torch.device, generator: torch.Generator | None = None) -> torch.Tensor:
    """g = -log(E), E ~ Exp(1)."""
    e = torch.empty(shape, device=device).exponential_(generator=generator)
    return -e.log()


def hard_gumbel_softmax(logits: torch.Tensor, tau: float | torch.Tensor, *, mask: torch.Tensor | None = None,
                        force: torch.Tensor | None = None, generator: torch.Generator | None = None,
                        ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(hardwts, index, h) for logits (..., O), one sample per row (module docstring).

    ``mask`` (O,) bool: ops that may be sampled (others get probability 0). ``force`` (...,) long: use
    these indices instead of the argmax (strict fair sampling); hardwts is then onehot(force) + h - h.detach().
    Resamples the noise while any of g or h is inf / NaN (AutoDL does the same).
    """
    logp = logits
    if mask is not None:
        logp = logp.masked_fill(~mask.to(logits.device), float("-inf"))
    logp = torch.log_softmax(logp, dim=-1)
    for _ in range(MAX_RESAMPLES):
        g = gumbel_noise(logits.shape, logits.device, generator)
        h = torch.softmax((logp + g) / tau, dim=-1)
        if not (torch.isinf(g).any() or torch.isinf(h).any() or torch.isnan(h).any()):
            break
    else:  # pragma: no cover - needs 100 consecutive overflows
        raise FloatingPointError("Gumbel softmax produced inf/NaN 100 times in a row")
    index = h.argmax(dim=-1) if force is None else force.to(logits.device)
    one = F.one_hot(index, logits.shape[-1]).to(h.dtype)
    return one + (h - h.detach()), index, h


def fair_schedule(num_paths: int, allowed: list[int], num_edges: int,
                  generator: torch.Generator | None = None) -> torch.Tensor:
    """(E, K) op indices: for every edge, each allowed op appears floor(K/n) times, and r = K mod n
    further distinct ops (drawn uniformly without replacement) once more; the sequence is then shuffled.
    So with K = n every op is used exactly once (a random permutation per edge, FairNAS-style); with
    K < n the K paths use K distinct ops; otherwise counts differ by at most one."""
    n = len(allowed)
    ops = torch.tensor(allowed, dtype=torch.long)
    rows = []
    for _ in range(num_edges):
        extra = ops[torch.randperm(n, generator=generator)[: num_paths % n]]
        seq = torch.cat([ops.repeat(num_paths // n), extra])
        rows.append(seq[torch.randperm(num_paths, generator=generator)])
    return torch.stack(rows)


@MIXERS.register("gumbel")
class GumbelMixer(Mixer):
    """GDAS hard Gumbel-softmax single-path mixer (module docstring)."""

    samples_paths = True

    def __init__(self, space, *, tau_max: float = 10.0, tau_min: float = 0.1, passthrough: bool = False,
                 exclude_ops: list[str] | tuple[str, ...] = (), eval_mode: str = "sample",
                 strict_fair: bool = False, init_scale: float = 1e-3):
        super().__init__(space, init_scale=init_scale)
        if eval_mode not in EVAL_MODES:
            raise ValueError(f"unknown gumbel eval_mode {eval_mode!r}; valid choices: {', '.join(EVAL_MODES)}")
        self.tau_max, self.tau_min = float(tau_max), float(tau_min)
        self.register_buffer("tau", torch.tensor(float(tau_max)))
        self.passthrough = as_bool(passthrough, "passthrough")
        unknown = [o for o in exclude_ops if o not in self.ops]
        if unknown:
            raise ValueError(f"exclude_ops {unknown} are not ops of space {space.name}: {', '.join(self.ops)}")
        allowed = torch.tensor([o not in exclude_ops for o in self.ops])
        if not allowed.any():
            raise ValueError("exclude_ops removes every op")
        self.register_buffer("allowed", allowed, persistent=False)
        self.eval_mode = eval_mode
        self.strict_fair = bool(strict_fair)
        self._forced: dict[str, torch.Tensor] | None = None  # cell type -> (E,) op per edge for this path
        self._schedule: dict[str, torch.Tensor] | None = None

    # ----- sampling ----------------------------------------------------------------------------
    def sample_ops(self, cell_type: str) -> tuple[torch.Tensor, torch.Tensor]:
        """(hardwts (E, O), index (E,)) for one forward of ``cell_type``."""
        alpha = self.alphas[cell_type]
        if self.deterministic:
            logits = alpha.masked_fill(~self.allowed, float("-inf"))
            masked = self.masked_ops(cell_type)
            if masked is not None:  # a probe removed these ops: the next most likely op stands in
                logits = logits.masked_fill(masked, float("-inf"))
            index = logits.argmax(-1)
            return F.one_hot(index, alpha.shape[-1]).to(alpha.dtype), index
        force = None if self._forced is None else self._forced[cell_type]
        hard, index, _ = hard_gumbel_softmax(alpha, self.tau, mask=self.allowed, force=force)
        return hard, index

    @property
    def deterministic(self) -> bool:
        """Argmax path instead of a sample: while a probe holds the path, or in eval mode with
        ``eval_mode: argmax``."""
        return self.held or (not self.training and self.eval_mode == "argmax")

    def op_passthrough(self, hard: torch.Tensor, index: torch.Tensor) -> torch.Tensor | None:
        """sum of the non-sampled ops' hardwts per edge (value 0, gradient 1 into each), when enabled."""
        if not self.passthrough:
            return None
        others = 1.0 - F.one_hot(index, hard.shape[-1]).to(hard.dtype)
        return (hard * others).sum(-1)

    def mix(self, cell_type: str) -> EdgeWeights:
        hard, index = self.sample_ops(cell_type)
        active = [[k] for k in index.tolist()]
        return EdgeWeights(hard, active, self.op_passthrough(hard, index))

    # ----- selection and reporting -------------------------------------------------------------
    def probabilities(self) -> dict[str, torch.Tensor]:
        """softmax(alpha) over the allowed ops (excluded ops have probability 0)."""
        return {ct: torch.softmax(a.detach().masked_fill(~self.allowed, float("-inf")), dim=-1)
                for ct, a in self.alphas.items()}

    def selection_scores(self):
        return self.probabilities(), None

    # ----- schedules ---------------------------------------------------------------------------
    def on_epoch_start(self, epoch: int, num_epochs: int) -> None:
        self.tau.fill_(temperature(epoch, num_epochs, self.tau_max, self.tau_min))

    def schedule_values(self) -> dict[str, float]:
        return {"tau": float(self.tau)}

    # ----- multi-path hooks --------------------------------------------------------------------
    def begin_paths(self, num_paths: int, phase: str) -> None:
        """Start K paths of one update (``phase`` = ``weights`` or ``arch``). Strict fair sampling
        applies to the weight paths only; architecture paths stay unbiased Gumbel samples."""
        self._schedule = None
        if self.strict_fair and phase == "weights":
            allowed = [k for k, ok in enumerate(self.allowed.tolist()) if ok]
            self._schedule = {ct: fair_schedule(num_paths, allowed, a.shape[0]).to(a.device)
                              for ct, a in self.alphas.items()}

    def select_path(self, index: int) -> None:
        self._forced = None if self._schedule is None else {ct: s[:, index] for ct, s in self._schedule.items()}

    def end_paths(self) -> None:
        self._schedule = None
        self._forced = None


def as_bool(value: bool | str, key: str) -> bool:
    """A boolean option given as a bool or the strings 'true'/'false'."""
    if isinstance(value, str):
        if value.lower() in ("true", "false"):
            return value.lower() == "true"
        raise ValueError(f"{key} must be true or false, got {value!r}")
    return bool(value)
