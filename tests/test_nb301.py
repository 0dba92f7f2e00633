"""NAS-Bench-301 surrogate (YAHPO v2): the encoding (no extra needed), predictions through onnxruntime (the
nb301 extra, part of the test extras) and the note shown when it is not installed."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

import nascli
from nascli.errors import BadArchError
from nascli.spaces.darts import DartsArch, get_published
from nascli.spaces.darts import nb301


def _uniform(op: str) -> DartsArch:
    cell = [(op, 0), (op, 1)] * 4  # every node fed by c_{k-2} and c_{k-1}
    return DartsArch(cell, (2, 3, 4, 5), cell, (2, 3, 4, 5))


def test_files_ship_with_the_package(tmp_path, monkeypatch):
    pkg = Path(nascli.__file__).resolve().parent
    data = pkg / "spaces" / "darts" / "data" / "nb301"
    for name in ("model_v2.onnx", "encoding_v2.json", "config_space_v2.json", "LICENSE-2.0.txt",
                 "PROVENANCE.md"):
        assert (data / name).is_file(), name
    # the surrogate's files are read from the package, whatever the working directory
    for name in (nb301.MODEL_FILE, nb301.ENCODING_FILE):
        assert Path(str(nb301._data_file(name))).resolve() == data / name
    monkeypatch.chdir(tmp_path)
    nb301._encoding.cache_clear()
    assert nb301.nb301_encode(_uniform("skip_connect"))[:2] == [7, 7]


def test_encoding_of_darts_v2():
    # Codes of encoding_v2.json: avg 1, dil3 2, dil5 3, max 4, sep3 5, sep5 6, skip 7, #na# 0.
    # Normal: node2 sep3<-0, sep3<-1; node3 sep3<-0, sep3<-1 (edges 2, 3); node4 sep3<-1, skip<-0
    # (edges 6, 5); node5 skip<-0, dil3<-2 (edges 9, 11). inputs_node codes: 0_1 -> 1, 0_2 -> 2.
    assert nb301.nb301_encode(get_published("darts_v2")) == [
        5, 5, 5, 5, 0, 7, 5, 0, 0, 7, 0, 2, 0, 0,
        4, 4, 0, 4, 7, 4, 0, 7, 0, 0, 4, 7, 0, 0,
        1, 1, 2,
        3, 2, 5,
    ]
    config = nb301.nb301_config(get_published("darts_v2"))
    assert config["inputs_node_reduce_3"] == "1_2" and config["edge_reduce_4"] == "skip_connect"
    assert len(nb301.COLUMNS) == 34


def test_unencodable_archs():
    same_input = [("sep_conv_3x3", 0), ("sep_conv_5x5", 0)] + [("sep_conv_3x3", 0), ("sep_conv_3x3", 1)] * 3
    arch = DartsArch(same_input, (2, 3, 4, 5), same_input, (2, 3, 4, 5))
    with pytest.raises(BadArchError, match="both inputs"):
        nb301.nb301_encode(arch)
    with pytest.raises(BadArchError, match="'none'"):
        nb301.nb301_encode(_uniform("none"))
    narrow = DartsArch(_uniform("skip_connect").normal, (4, 5), _uniform("skip_connect").reduce, (2, 3, 4, 5))
    with pytest.raises(BadArchError, match="concat"):
        nb301.nb301_encode(narrow)
    with pytest.raises(ValueError, match="epoch"):
        nb301.predict_nb301(get_published("darts_v2"), epoch=99)


def test_unavailable_path(monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # makes `import onnxruntime` fail
    assert nb301.nb301_available() is False
    assert nb301.predict_nb301(get_published("darts_v2")) is None
    note = nb301.nb301_unavailable_note()
    assert "pip install 'nascli[nb301]'" in note and note.count(".") >= 1 and "\n" not in note


def test_predictions_with_onnxruntime():
    import onnxruntime  # noqa: F401  (the nb301 extra, part of the test extras: a missing one must fail)
    v2 = nb301.predict_nb301(get_published("darts_v2"))
    assert v2 is not None and v2["epoch"] == 98 and v2["surrogate"] == "yahpo_v2/nb301"
    # the sanity values that came with the surrogate files (PROVENANCE.md), epoch 98
    assert v2["val_accuracy"] == pytest.approx(92.91, abs=0.01)
    skip = nb301.predict_nb301(_uniform("skip_connect"))["val_accuracy"]
    pool = nb301.predict_nb301(_uniform("max_pool_3x3"))["val_accuracy"]
    assert skip == pytest.approx(89.92, abs=0.01) and pool == pytest.approx(88.07, abs=0.01)
    assert skip < v2["val_accuracy"] and pool < v2["val_accuracy"]
    early = nb301.predict_nb301(get_published("darts_v2"), epoch=5)
    assert early["val_accuracy"] < v2["val_accuracy"] and early["runtime_s"] < v2["runtime_s"]
