"""Optional NAS-Bench-301 estimate of a DARTS genotype's CIFAR-10 accuracy (YAHPO-Gym v2 surrogate).

The surrogate is YAHPO-Gym's multi-fidelity ``nb301`` model (an ONNX network trained on the
NAS-Bench-301 data), shipped in ``data/nb301/`` with its licence and provenance (``PROVENANCE.md``). It
is not the official NB301 ensemble. It runs with ``onnxruntime`` (the optional extra ``nascli[nb301]``);
without it :func:`predict_nb301` returns ``None`` and :func:`nb301_unavailable_note` says what to install.

Encoding (``data/nb301/PROVENANCE.md``; NB301's ``convert_genotype_to_config`` rule): inputs are ``x_cat``
int32 ``[B, 34]`` and ``x_cont`` float32 ``[B, 1]`` (the epoch, 1..98). The ``x_cat`` columns are
``edge_normal_0..13``, ``edge_reduce_0..13``, ``inputs_node_normal_3..5``, ``inputs_node_reduce_3..5``.
For the intermediate node k = 0..3 (DARTS node k+2) with pairs ``(op, j)``, column ``edge_<cell>_{off[k]+j}``
(``off = [0, 2, 5, 9]``, i.e. the DARTS edge index of ``j -> k+2``) holds the op; for k >= 1,
``inputs_node_<cell>_{k+2}`` holds ``"a_b"`` (the two inputs, sorted). Values are the integer codes of
``encoding_v2.json``; inactive columns get the code of ``#na#`` (0). The output row is ``val_accuracy``
(a fraction), ``val_cross_entropy``, ``runtime`` (cumulative training seconds up to ``epoch``) and
``runtime_increase``.

Genotypes the surrogate cannot represent raise BadArchError: a node with both inputs from the same
node (possible under the GDAS ``pairs`` rule), a ``none`` op, or a concat other than ``[2, 3, 4, 5]``.
"""
from __future__ import annotations

import functools
import json
from importlib import resources
from typing import Any

from nascli.errors import BadArchError
from nascli.spaces.darts.genotype import CELL_TYPES, DartsArch

_DATA = ("data", "nb301")
MODEL_FILE = "model_v2.onnx"
ENCODING_FILE = "encoding_v2.json"
SURROGATE = "yahpo_v2/nb301"
MAX_EPOCH = 98  # config_space_v2.json: epoch uniform_int 1..98
_PREFIX = "NetworkSelectorDatasetInfo_COLON_darts_COLON_"
_NODE_OFFSET = (0, 2, 5, 9)  # DARTS edge index of (0 -> k+2)
_NA = "#na#"

# x_cat column order (YAHPO v2_final benchmark definition, see PROVENANCE.md).
COLUMNS: tuple[str, ...] = (
    *(f"edge_normal_{i}" for i in range(14)),
    *(f"edge_reduce_{i}" for i in range(14)),
    *(f"inputs_node_normal_{n}" for n in (3, 4, 5)),
    *(f"inputs_node_reduce_{n}" for n in (3, 4, 5)),
)


def _data_file(name: str) -> Any:
    return resources.files(__package__).joinpath(*_DATA, name)


@functools.lru_cache(maxsize=1)
def _encoding() -> dict[str, dict[str, int]]:
    raw = json.loads(_data_file(ENCODING_FILE).read_text(encoding="utf-8"))
    return {key[len(_PREFIX):]: codes for key, codes in raw.items() if key.startswith(_PREFIX)}


def nb301_config(arch: DartsArch) -> dict[str, str]:
    """The NB301 configuration (hyperparameter name without prefix -> value) of ``arch``; inactive
    hyperparameters are absent."""
    if not isinstance(arch, DartsArch):
        raise BadArchError(f"NB301 needs a DARTS genotype, got {type(arch).__name__}")
    config: dict[str, str] = {}
    for ct in CELL_TYPES:
        pairs = arch.cell(ct)
        if len(pairs) != 8:
            raise BadArchError(f"NB301 needs 4 nodes per cell; the {ct} cell has {len(pairs) // 2}")
        if tuple(arch.concat(ct)) != (2, 3, 4, 5):
            raise BadArchError(f"NB301 needs {ct}_concat [2, 3, 4, 5], got {list(arch.concat(ct))}")
        for k in range(4):
            (op_a, a), (op_b, b) = pairs[2 * k], pairs[2 * k + 1]
            if a == b:
                raise BadArchError(f"NB301 cannot encode {ct} node {k + 2} with both inputs from node {a}")
            for op, src in ((op_a, a), (op_b, b)):
                if op == "none":
                    raise BadArchError(f"NB301 cannot encode op 'none' ({ct} node {k + 2})")
                config[f"edge_{ct}_{_NODE_OFFSET[k] + src}"] = op
            if k >= 1:
                lo, hi = sorted((a, b))
                config[f"inputs_node_{ct}_{k + 2}"] = f"{lo}_{hi}"
    return config


def nb301_encode(arch: DartsArch) -> list[int]:
    """The 34 integer codes of the surrogate's ``x_cat`` row for ``arch`` (column order :data:`COLUMNS`)."""
    config = nb301_config(arch)
    enc = _encoding()
    row: list[int] = []
    for col in COLUMNS:
        value = config.get(col, _NA)
        codes = enc[col]
        if value not in codes:
            raise BadArchError(f"NB301 has no code for {col}={value!r}; valid: {', '.join(codes)}")
        row.append(codes[value])
    return row


@functools.lru_cache(maxsize=1)
def _session() -> Any:
    import onnxruntime as ort  # optional dependency (nascli[nb301])

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    model = _data_file(MODEL_FILE).read_bytes()
    return ort.InferenceSession(model, sess_options=opts, providers=["CPUExecutionProvider"])


def nb301_available() -> bool:
    """Whether onnxruntime can be imported (the surrogate itself ships with nascli)."""
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def nb301_unavailable_note() -> str:
    """One sentence for reports when the surrogate cannot run."""
    return ("NAS-Bench-301 estimates need onnxruntime: install it with pip install 'nascli[nb301]'.")


def predict_nb301(arch: DartsArch, epoch: int = MAX_EPOCH) -> dict[str, Any] | None:
    """Surrogate CIFAR-10 validation accuracy (percent) of ``arch`` after ``epoch`` epochs (1..98), or
    ``None`` when onnxruntime is not installed. Also returns the cross-entropy and cumulative runtime."""
    if not 1 <= int(epoch) <= MAX_EPOCH:
        raise ValueError(f"NB301 epoch must be in 1..{MAX_EPOCH}, got {epoch}")
    row = nb301_encode(arch)
    if not nb301_available():
        return None
    import numpy as np

    sess = _session()
    out = sess.run(None, {"x_cat": np.asarray([row], dtype=np.int32),
                          "x_cont": np.asarray([[float(epoch)]], dtype=np.float32)})[0][0]
    return {
        "val_accuracy": float(out[0]) * 100.0,
        "val_cross_entropy": float(out[1]),
        "runtime_s": float(out[2]),
        "epoch": int(epoch),
        "surrogate": SURROGATE,
    }
