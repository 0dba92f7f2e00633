"""Published rows (nascli/bench/published.py): each method matched only to its own rows, the DARTS-space
CIFAR-10 numbers and the NB201 paper rows as METHODS.md gives them, and the benchmark report printing the
published figure beside the measured one (NB201 and DARTS space)."""
from __future__ import annotations

import pytest

from helpers import compose_cfg
from nascli.bench import published as pub
from nascli.bench.identity import SearchIdentity, default_optimizer, identity_of
from nascli.bench.plan import make_plan
from nascli.bench.report import build_report, main_rows, render_csv, render_markdown
from nascli.errors import NasError


def rows_of(method, optimizer, selection="magnitude", space=None):
    return [(s.key, r.name) for s, r in pub.published_for(method, optimizer, selection, space)]


# ------------------------------------------------------------------------------------- matching
def test_first_order_darts_is_darts_v1_and_never_v2():
    # METHODS.md 1.2: DARTS-V1 = the first-order NB201 port, DARTS-V2 = the second-order one
    assert rows_of("darts", "bilevel", space="nb201") == [("nb201_iclr20", "DARTS-V1")]
    assert rows_of("darts", "bilevel_2nd", space="nb201") == [("nb201_iclr20", "DARTS-V2")]
    assert rows_of("darts", "bilevel", space="darts") == [("darts_c10", "DARTS (1st order)")]
    assert rows_of("darts", "bilevel_2nd", space="darts") == [("darts_c10", "DARTS (2nd order)")]
    # DARTS with operation-strength selection is OStr-DARTS, not DARTS; DARTS with RARTS's optimizer is RARTS
    assert rows_of("darts", "bilevel", "ostr") == [("darts_c10", "OStr-DARTS")]
    assert rows_of("darts", "rarts") == [("darts_c10", "RARTS")]
    # not the paper's optimizer or selection: no row at all
    assert rows_of("pc_darts", "bilevel_2nd") == [] and rows_of("darts_minus", "single_level") == []
    assert rows_of("gdas", "bilevel", "ostr") == [] and rows_of("darts", "single_level") == []
    assert rows_of("gdas", "bilevel", space="nb201") == [("nb201_iclr20", "GDAS"), ("nb201_later", "GDAS")]


def test_every_matched_row_exists_and_belongs_to_one_search_only():
    owner: dict[tuple[str, str], tuple[str, str, str]] = {}
    for m in pub.MATCHES:
        for key, name in m.rows:
            assert pub.published_set(key).row(name) is not None, (key, name)
            assert (key, name) not in owner, f"{key}/{name} matched by {owner.get((key, name))} and {m}"
            owner[(key, name)] = (m.method, m.optimizer, m.selection)
    triples = [(m.method, m.optimizer, m.selection) for m in pub.MATCHES]
    assert len(set(triples)) == len(triples)
    # the row whose order is not stated is nobody's
    assert ("nb201_later", "DARTS") not in owner


# ------------------------------------------------------------------------------------- the numbers
def test_nb201_rows_of_darts_minus_and_single_darts():
    # METHODS.md 2: C10 test 93.80 (+-0.40 MEM), C100 test 71.53, IN16 test 45.12
    darts_minus = pub.NB201_PAPERS.row("DARTS-")
    assert darts_minus.get("cifar10", "test") == (93.80, 0.40)
    assert darts_minus.get("cifar100", "test") == (71.53, 1.51)
    assert darts_minus.get("imagenet16_120", "valid") == (44.87, 1.46)
    assert "MEM" in darts_minus.source and pub.trust(darts_minus.source) == "2nd"
    # METHODS.md 3: Single-DARTS numbers not verified -> a row without numbers, never an invented one
    single = pub.NB201_PAPERS.row("Single-DARTS")
    assert all(v is None for v in single.values) and "not recovered" in single.source
    assert rows_of("single_darts", "single_level", space="nb201") == [("nb201_papers", "Single-DARTS")]


def test_darts_space_cifar10_rows():
    c10 = pub.DARTS_C10
    # (error mean, std, params M, GPU-days) as METHODS.md 1.3, 2, 5, 6, 8 give them
    assert (c10.row("DARTS (2nd order)").error, c10.row("DARTS (2nd order)").params_m) == ((2.76, 0.09), 3.3)
    assert c10.row("DARTS (1st order)").error == (3.00, 0.14) and c10.row("DARTS (1st order)").cost_gpu_days == 0.4
    assert (c10.row("PC-DARTS").error, c10.row("PC-DARTS").cost_gpu_days) == ((2.57, 0.07), 0.1)
    assert c10.row("DARTS-").error == (2.59, 0.08) and c10.row("GDAS").error == (2.93, None)
    assert c10.row("ROME").stat == "best" and c10.row("ROME").error == (2.48, None)
    assert c10.row("DrNAS").error == (2.46, 0.03) and c10.row("SDARTS-ADV").error == (2.61, 0.02)
    assert c10.row("R-DARTS (L2)").error == (2.95, 0.21)
    assert c10.row("MS-DARTS").error is None                      # not recovered: absent, not invented
    assert pub.trust(c10.row("RARTS").source) == "MEM" and "low confidence" in c10.row("RARTS").source
    # beside a measured accuracy: 100 - error, same std; other datasets have no number
    assert c10.row("PC-DARTS").accuracy("cifar10") == (97.43, 0.07)
    assert c10.row("PC-DARTS").accuracy("cifar100") is None
    assert pub.covers("cifar10", "darts") and not pub.covers("cifar100", "darts")
    assert pub.trust("[README quark0/darts] x") == "README" and pub.trust("no tag") == "?"


# ------------------------------------------------------------------------------------- identities
def test_identity_reads_the_optimizer_or_the_methods_default():
    assert default_optimizer("rome") == "multipath" and default_optimizer("single_darts") == "single_level"
    assert default_optimizer("daas") == "bilevel" and default_optimizer("no_such_method") == "bilevel"
    cfg = {"method": {"name": "darts"}, "optimizer": {"name": "bilevel_2nd"}, "selection": {"name": "ostr"},
           "paper": {"table": "nb201_iclr20", "row": "DARTS-V2"}}
    assert identity_of("darts", cfg) == SearchIdentity("darts", "bilevel_2nd", "ostr", ("nb201_iclr20", "DARTS-V2"))
    assert identity_of("single_darts", {}) == SearchIdentity("single_darts", "single_level")


# ------------------------------------------------------------------------------------- the report
def _row(method, seed, acc):
    return {"method": method, "method_name": method, "seed": seed, "selection": "magnitude", "status": "ok",
            "search_status": "ok", "acc": acc, "valid_acc": None, "arch": f"a{seed}", "skip_count": 0,
            "search_time_s": 1.0, "peak_memory_mb": 1.0, "alpha_entropy": 1.0, "hessian_eigenvalue": None,
            "stage": None, "error": None, "log": None}


def _report(space, dataset, methods, accs):
    labels = list(methods)
    study = {"id": "x", "mode": "study", "space": space, "dataset": dataset, "methods": labels, "seeds": [0, 1],
             "selections": ["magnitude"], "baseline": {"samples": 0, "seed": 0}}
    rows = [_row(label, seed, accs[label][seed]) for label in labels for seed in (0, 1)]
    return build_report(study, rows, [], None, labels=labels, selections=["magnitude"], methods=methods,
                        with_published=True, accuracy_source="test accuracy after training")


def test_nb201_report_matches_each_order_to_its_own_row():
    report = _report("nb201", "cifar10",
                     {"first": SearchIdentity("darts", "bilevel"), "second": SearchIdentity("darts", "bilevel_2nd"),
                      "gdas_2nd": SearchIdentity("gdas", "bilevel_2nd")},
                     {"first": [54.30, 54.30], "second": [54.30, 60.0], "gdas_2nd": [93.0, 93.2]})
    table = {r[0]: r for r in main_rows(report)}
    assert table["first"][3:5] == ("54.30 ± 0.00", "54.30 ± 0.00 (nb201_iclr20 DARTS-V1, 2nd)")
    assert table["second"][3:5] == ("57.15 ± 2.85", "54.30 ± 0.00 (nb201_iclr20 DARTS-V2, 2nd)")
    assert table["gdas_2nd"][4] == "–"   # GDAS with a second-order step is not the paper's GDAS
    md = render_markdown(report)
    assert "| first | magnitude | 2/2 | 54.30 ± 0.00 | 54.30 ± 0.00 (nb201_iclr20 DARTS-V1, 2nd) |" in md
    assert "DARTS-V2" not in next(line for line in md.splitlines() if line.startswith("| first |"))
    assert "| – | – | – | 94.37 | nb201_iclr20 | Optimal |" in md   # the space's framing rows


def test_darts_space_report_prints_published_beside_measured():
    report = _report("darts", "cifar10",
                     {"pc_darts": "pc_darts", "ms": SearchIdentity("ms_darts", "bilevel"),
                      "rdarts": SearchIdentity("darts", "single_level", paper=("darts_c10", "R-DARTS (L2)")),
                      "v1_as_2nd": SearchIdentity("darts", "bilevel_2nd", paper=("darts_c10", "DARTS (1st order)"))},
                     {"pc_darts": [97.2, 97.4], "ms": [97.0, 97.0], "rdarts": [96.0, 96.2], "v1_as_2nd": [97.0, 97.1]})
    table = {r[0]: r for r in main_rows(report)}
    assert table["pc_darts"][3:5] == ("97.30 ± 0.10", "97.43 ± 0.07 (darts_c10 PC-DARTS, README)")
    assert table["ms"][4] == "not recovered (darts_c10 MS-DARTS, ?)"
    # no rule covers darts + single_level: the preset's own row is shown, marked as such
    assert table["rdarts"][4] == "97.05 ± 0.21 (darts_c10 R-DARTS (L2), 2nd)"
    # a DARTS-V1 preset run with the second-order optimizer is compared with the 2nd-order row only
    assert table["v1_as_2nd"][4] == "97.24 ± 0.09 (darts_c10 DARTS (2nd order), README)"
    md = render_markdown(report)
    assert "## Published numbers: darts on cifar10" in md
    assert ("| pc_darts | magnitude | 97.30 ± 0.10 | 97.43 ± 0.07 | darts_c10 | PC-DARTS | "
            "error 2.57 ± 0.07 %, 3.6M params, 0.1 GPU-days |") in md
    assert "R-DARTS (L2) (matched by preset)" in md and "Random search (DARTS paper)" in md
    lines = render_csv(report).splitlines()
    assert lines[1].endswith(",97.43,0.07,darts_c10,PC-DARTS")
    assert lines[2].endswith(",,,darts_c10,MS-DARTS")


def test_no_published_section_where_no_set_covers_the_dataset():
    report = _report("nb201", "fashion_mnist", {"darts": "darts"}, {"darts": [80.0, 81.0]})
    assert report["published"] is None and "## Published" not in render_markdown(report)
    assert {r[0]: r for r in main_rows(report)}["darts"][4] == "–"


# ------------------------------------------------------------------------------------- study entries
def test_a_study_entry_can_be_a_paper_preset(tmp_path):
    cfg = compose_cfg("benchmark", ["methods=[paper/nb201_darts_v1,paper/nb201_darts_v2]", "space=nb201",
                                    "dataset=cifar10", "seeds=[0,1]", f"out_root={tmp_path}"])
    plan = make_plan(cfg)  # composes every search; nothing runs
    assert plan.methods == {"paper/nb201_darts_v1": "darts", "paper/nb201_darts_v2": "darts"}
    first = {r.label: r for r in plan.runs if r.seed == 0}
    ids = {label: identity_of(r.method, r.config) for label, r in first.items()}
    assert ids["paper/nb201_darts_v1"] == SearchIdentity("darts", "bilevel", "magnitude", ("nb201_iclr20", "DARTS-V1"))
    assert ids["paper/nb201_darts_v2"].optimizer == "bilevel_2nd"
    assert first["paper/nb201_darts_v1"].config["search"]["val_sampling"] == "random"   # the preset's own value
    assert first["paper/nb201_darts_v1"].run_dir != first["paper/nb201_darts_v2"].run_dir
    assert "experiment=paper/nb201_darts_v1" in plan.search_argv[("paper/nb201_darts_v1", 1)]


@pytest.mark.parametrize("entry, message", [
    ("paper/darts_c10_pc_darts", "paper/darts_c10_pc_darts is a darts-space preset; run it with space=darts "
                                 "(the study has space=nb201)"),
    ("paper/nope", "unknown paper preset 'paper/nope'; valid: paper/darts_c10_daas,"),
])
def test_a_preset_entry_of_another_space_or_unknown_is_one_line(tmp_path, entry, message):
    cfg = compose_cfg("benchmark", [f"methods=[{entry}]", "space=nb201", "dataset=cifar10", f"out_root={tmp_path}"])
    with pytest.raises(NasError) as err:
        make_plan(cfg)
    assert str(err.value).startswith(message) and "\n" not in str(err.value)
