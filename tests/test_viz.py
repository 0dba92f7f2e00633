"""Cell drawings: files exist, are PNGs of non-trivial size, are written atomically."""
from __future__ import annotations

from pathlib import Path

import pytest

from nascli import viz
from nascli.errors import UnknownChoiceError
from nascli.spaces.darts.space import cell_graph
from nascli.spaces.darts import get_published

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _is_png(path: Path) -> bool:
    return path.read_bytes()[:8] == PNG_MAGIC and path.stat().st_size > 5_000


def test_draw_darts_arch(tmp_path):
    paths = viz.draw_arch(get_published("darts_v2"), tmp_path / "cells")
    assert [p.name for p in paths] == ["normal.png", "reduce.png"]
    assert all(_is_png(p) for p in paths)
    assert sorted(p.name for p in (tmp_path / "cells").iterdir()) == ["normal.png", "reduce.png"]  # no temp files


def test_darts_cell_graph_labels():
    nodes, edges = cell_graph(get_published("darts_v2"), "normal")
    assert nodes == ["c_{k-2}", "c_{k-1}", "0", "1", "2", "3", "c_{k}"]
    assert edges[0] == ("c_{k-2}", "0", "sep_conv_3x3")
    assert edges[7] == ("0", "3", "dil_conv_3x3")
    assert edges[8:] == [(n, "c_{k}", "") for n in ("0", "1", "2", "3")]


class _FakeNB201:
    """Duck-typed NB201 arch: ``space`` and ``edges() -> [(src, dst, op)]``."""

    space = "nb201"

    def edges(self):
        return [(0, 1, "nor_conv_3x3"), (0, 2, "none"), (1, 2, "skip_connect"),
                (0, 3, "avg_pool_3x3"), (1, 3, "none"), (2, 3, "nor_conv_1x1")]


def test_draw_nb201_arch_omits_none(tmp_path, monkeypatch):
    seen = {}
    real = viz.draw_cell

    def spy(path, **kw):
        seen.update(kw)
        real(path, **kw)

    monkeypatch.setattr(viz, "draw_cell", spy)
    paths = viz.draw_arch(_FakeNB201(), tmp_path)
    assert [p.name for p in paths] == ["cell.png"] and _is_png(paths[0])
    assert seen["nodes"] == ["0", "1", "2", "3"]
    assert all(op != "none" for _, _, op in seen["edges"]) and len(seen["edges"]) == 4


def test_draw_cell_direct_and_errors(tmp_path):
    out = tmp_path / "x.png"
    viz.draw_cell(out, title="t", nodes=["a", "b", "c"], edges=[("a", "b", "op1"), ("a", "c", "op2"),
                                                                 ("b", "c", "op3")])
    assert _is_png(out)
    viz.draw_cell(out, title="again", nodes=["a", "b"], edges=[("a", "b", "x"), ("a", "b", "y")])  # overwrite
    assert _is_png(out)
    with pytest.raises(ValueError, match="'z'"):
        viz.draw_cell(tmp_path / "y.png", title="t", nodes=["a"], edges=[("a", "z", "op")])
    with pytest.raises(ValueError, match="cycle"):
        viz.draw_cell(tmp_path / "y.png", title="t", nodes=["a", "b"], edges=[("a", "b", "o"), ("b", "a", "o")])
    assert not (tmp_path / "y.png").exists()
    from nascli.spaces import space_names

    with pytest.raises(UnknownChoiceError, match=f"valid choices: {', '.join(space_names())}$"):
        viz.draw_arch(object(), tmp_path)  # no space attribute: no space draws it
