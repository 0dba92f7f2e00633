"""DARTS-ES and DARTS-ADA (R-DARTS, METHODS.md 8; nascli/search/regularizers/early_stopping.py).

The rule is pinned on hand-made eigenvalue sequences at R-DARTS's defaults (every 2 epochs, window 5,
ratio 1.3, k = 4 points, not before epoch 10) against an independent epoch-arithmetic reading of
automl/RobustDARTS ``EVLocalAvg``; ADA's weight-decay schedule (factor, cap, roll-back epoch) on a driven
loop; and real searches (tiny NB201, eigenvalues injected through ``SearchEngine.dominant_eigenvalue``) stop
early with the rise epoch's architecture, roll back, and resume to the same final state and decision.
"""
from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import torch

from helpers import assert_same_state, compose_cfg, interrupted_and_full_states
from nascli.errors import IncompatibleError, NasError
from nascli.paths import CONF_DIR
from nascli.search.components import EpochEnd
from nascli.search.composition import check_search_config
from nascli.search.engine import SearchEngine
from nascli.search.regularizers.early_stopping import DartsADA, EigenvalueTrend


# ----------------------------------------------------------------------------------------------- the rule
def drive_trend(values: dict[int, float], epochs: int = 50, every: int = 2, **rule):
    """Feed lambda_max at R-DARTS's evaluation epochs; (epoch of the first firing, rise epoch, all checks)."""
    trend = EigenvalueTrend(**rule)
    checks = {}
    for e in range(epochs):
        if e % every == 0 or e == epochs - 1:
            check = trend.add(e, values[e], last=e == epochs - 1)
            if check is not None:
                checks[e] = check
                if check.fired:
                    return e, check.rise_epoch, checks
    return None, None, checks


def reference_stop(values: dict[int, float], epochs: int = 50, every: int = 2, window: int = 5, ratio: float = 1.3,
                   k: int = 4, start_epoch: int = 10):
    """An independent reading of R-DARTS's epoch arithmetic: the average computed at evaluation epoch e is
    centred on epoch e - every * (window // 2) and averages the evaluations within that many epochs of its
    centre (those that exist); at e it is compared with the average centred k evaluations earlier, when that
    centre is >= start_epoch; the stop returns that earlier centre."""
    half = window // 2
    evals = [e for e in range(epochs) if e % every == 0 or e == epochs - 1]
    averages = {}
    for e in evals[:-1]:  # neither averages nor checks at the last epoch
        centre = e - every * half
        if len([x for x in evals if x <= e]) < half + 1:
            continue
        near = [values[x] for x in evals if x <= e and abs(x - centre) <= every * half]
        averages[centre] = sum(near) / len(near)
        before = centre - every * k
        if before >= start_epoch and averages[centre] / averages[before] > ratio:
            return e, before
    return None, None


def test_first_check_at_epoch_22_and_the_rise_epoch_pinned():
    # flat 1.0 through epoch 20, 2.0 from epoch 22: at 22 the averages centred on 18 (14..22) and 10 (6..14)
    # give 1.2 / 1.0 (no firing); at 24, centred on 20 (16..24) and 12 (8..16): 1.4 / 1.0 > 1.3
    values = {e: 1.0 if e <= 20 else 2.0 for e in range(50)}
    fired, rise, checks = drive_trend(values)
    assert min(checks) == 22  # la_epoch(22) - 2 * 4 = 18 - 8 = 10 >= es_start_epoch, not at 20
    assert checks[22].ratio == pytest.approx(1.2) and checks[22].rise_epoch == 10 and not checks[22].fired
    assert (fired, rise) == (24, 12)
    assert checks[24].ratio == pytest.approx(1.4)
    assert reference_stop(values) == (24, 12)


def test_local_average_is_centred_and_truncated_at_the_start():
    values = {e: float(e) for e in range(50)}  # lambda_max = epoch
    trend = EigenvalueTrend()
    for e in range(0, 12, 2):
        trend.add(e, values[e], last=False)
    # first average at the third point (epoch 4), centred on epoch 0: mean(0, 2, 4); then (0..6) centred on 2,
    # then full windows: (0..8) on 4, (2..10) on 6
    assert trend.averages == pytest.approx([2.0, 3.0, 4.0, 6.0])
    assert trend.latest_average() == (6, 6.0)


def test_an_early_rise_is_never_checked_before_epoch_22():
    # lambda_max jumps 10x at epoch 4: the rule looks at nothing before epoch 22, and by then both averages
    # are past the jump
    values = {e: 1.0 if e < 4 else 10.0 for e in range(50)}
    fired, rise, checks = drive_trend(values)
    assert fired is None and min(checks) == 22 and checks[22].ratio == pytest.approx(1.0)
    assert reference_stop(values) == (None, None)


def test_ratio_is_strict_and_the_last_epoch_is_never_checked():
    # at 24 the average centred on 20 (16..24: 1, 1, 1.5, 1.5, 1.5) is exactly 1.3 x that centred on 12: no
    # firing (">" 1.3); at 26 (18..26) it is 1.4 x: fires, the rise began at 14
    values = {e: 1.0 if e <= 18 else 1.5 for e in range(50)}
    fired, rise, checks = drive_trend(values)
    assert checks[24].ratio == 1.3 and not checks[24].fired
    assert (fired, rise) == (26, 14) == reference_stop(values)
    # a jump on the last epoch (49) only: no average and no check there
    late = {e: 1.0 for e in range(50)}
    late[49] = 100.0
    fired, _, checks = drive_trend(late)
    assert fired is None and max(checks) == 48


@pytest.mark.parametrize("seed", range(30))
def test_rule_matches_the_epoch_arithmetic_reading(seed):
    rng = random.Random(seed)
    epochs = rng.choice([30, 41, 50])
    level, values = 1.0, {}
    for e in range(epochs):  # a noisy random walk with occasional jumps
        level *= rng.choice([1.0, 1.0, 1.02, 0.98, 1.25])
        values[e] = level * (1 + 0.05 * rng.random())
    fired, rise, _ = drive_trend(values, epochs)
    assert (fired, rise) == reference_stop(values, epochs)


def test_rule_options_other_than_the_defaults():
    # every = 1, window 3, k = 2, start 2: first check at epoch 5 (centre 4, compared with centre 2)
    values = {e: 1.0 if e < 6 else 3.0 for e in range(20)}
    fired, rise, checks = drive_trend(values, epochs=20, every=1, window=3, k=2, start_epoch=2)
    assert min(checks) == 5 and (fired, rise) == (6, 3)
    assert reference_stop(values, 20, every=1, window=3, k=2, start_epoch=2) == (6, 3)


@pytest.mark.parametrize("bad, words", [({"window": 4}, "odd integer"), ({"k": 0}, "k=0"),
                                        ({"ratio": 0}, "ratio=0")])
def test_bad_rule_options_are_one_line_errors(bad, words):
    with pytest.raises(NasError, match=words):
        EigenvalueTrend(**bad)


# ------------------------------------------------------------------------------------ DARTS-ADA schedule
class _Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(3))
        self.alpha = torch.nn.Parameter(torch.zeros(2))

    def arch_parameters(self):
        return [self.alpha]


class _Opt:
    """The part of a SearchOptimizer DARTS-ADA touches: weight_decay, w_opt's groups, state_dict."""

    def __init__(self, net, weight_decay=3e-4):
        self.weight_decay = weight_decay
        self.w_opt = torch.optim.SGD([net.w], lr=0.1, momentum=0.9, weight_decay=weight_decay)

    def state_dict(self):
        return {"w_opt": self.w_opt.state_dict()}

    def load_state_dict(self, state):
        self.w_opt.load_state_dict(state["w_opt"])


def drive_ada(lam, epochs: int = 50, **options):
    """Run DARTS-ADA through a loop like the engine's: each epoch moves w by +1 (so a roll-back is visible)."""
    net = _Net()
    opt = _Opt(net)
    ada = DartsADA(net, opt, **options)
    epoch, trace = 0, []
    while epoch < epochs:
        with torch.no_grad():
            net.w += 1
        back = ada.on_epoch_end(EpochEnd(epoch, epochs, lambda e=epoch: lam(e, ada.weight_decay)))
        assert all(e >= ada.trend.start_epoch for e in ada.snapshots)  # no rise can be earlier
        trace.append((epoch, float(net.w.detach()[0])))
        if back is not None:
            assert float(net.w.detach()[0]) == back  # restored to the end of epoch back - 1: w = back
        epoch = back if back is not None else epoch + 1
    return ada, opt, net, trace


def test_ada_rolls_back_to_the_rise_epoch_and_multiplies_the_weight_decay_up_to_the_cap():
    # lambda_max jumps from 1 to 3 at epoch 16 whatever the weight decay: every pass fires at 22 (rise 10),
    # until the weight decay reaches its cap; R-DARTS arg defaults: x3, max 243e-4 (4 adaptations)
    ada, opt, net, trace = drive_ada(lambda e, wd: 1.0 if e < 16 else 3.0)
    assert [(a["epoch"], a["rollback_epoch"]) for a in ada.adaptations] == [(22, 10)] * 4
    assert [a["weight_decay"] for a in ada.adaptations] == pytest.approx([9e-4, 2.7e-3, 8.1e-3, 2.43e-2])
    assert ada.weight_decay == pytest.approx(243e-4) and opt.weight_decay == pytest.approx(243e-4)
    assert all(g["weight_decay"] == pytest.approx(243e-4) for g in opt.w_opt.param_groups)
    # then the firing is ignored and the search runs to its last epoch: 50 epochs + 4 x 12 repeated ones (11..22)
    assert len(trace) == 50 + 4 * 12 and float(net.w.detach()[0]) == 50
    assert ada.adaptations_left() == 0 and not ada.snapshots


def test_ada_script_schedule_and_a_rise_that_the_stronger_decay_removes():
    # the published script: x10 up to 0.03 (3e-4 -> 3e-3 -> 3e-2); here lambda_max only rises while wd < 1e-3,
    # so one adaptation suffices and the search then runs to the end
    ada, opt, _, _ = drive_ada(lambda e, wd: (1.0 if e < 16 else 3.0) if wd < 1e-3 else 1.0, factor=10,
                               max_weight_decay=0.03)
    assert [(a["epoch"], a["rollback_epoch"]) for a in ada.adaptations] == [(22, 10)]
    assert ada.adaptations[0]["weight_decay"] == pytest.approx(3e-3)
    assert ada.adaptations_left() == 1
    # the cap: min(wd * factor, max) (3e-3 * 10 = 0.03, a second factor would give 0.3)
    assert ada.schedule(3e-3) == pytest.approx(0.03) and ada.schedule(0.01) == pytest.approx(0.03)


def test_ada_rollback_restores_the_history_and_the_next_rise_can_be_earlier():
    # every = 1, window 3, k 2, start 2 (checks from epoch 5). The first firing (6) rolls back to 3 together with
    # the eigenvalue history; with the raised weight decay lambda_max now jumps at 4, so the check at 5 fires
    # with the rise at 2, before the first roll-back point: its snapshot must still be there
    ada, _, net, trace = drive_ada(lambda e, wd: 3.0 if e >= 6 or (wd > 5e-4 and e >= 4) else 1.0, epochs=14,
                                   every=1, window=3, k=2, start_epoch=2, factor=3, max_weight_decay=2.7e-3)
    assert [(a["epoch"], a["rollback_epoch"]) for a in ada.adaptations] == [(6, 3), (5, 2)]
    assert [a["weight_decay"] for a in ada.adaptations] == pytest.approx([9e-4, 2.7e-3])
    assert [t[0] for t in trace] == [0, 1, 2, 3, 4, 5, 6, 4, 5, *range(3, 14)]
    assert ada.trend.epochs == list(range(14))  # the history of the final trajectory only


# ------------------------------------------------------------------------------------- real searches
TINY = ["space.supernet.C=4", "space.supernet.N=1", "dataset.num_train=32", "dataset.num_test=16",
        "dataset.image_size=8", "search.batch_size=8", "search.max_steps_per_epoch=1", "num_threads=1",
        "device=cpu"]
# a quick rule: every epoch, window 3, k = 2, from epoch 2 (first check at epoch 5)
QUICK = "every:1,window:3,k:2,start_epoch:2"


def _step_eigenvalues(monkeypatch, jump_at: int = 6, below_wd: float = 1.0):
    """lambda_max = 1 before ``jump_at``, 3 from it on (while the weight decay is below ``below_wd``)."""
    def fake(self, epoch):
        return 3.0 if epoch >= jump_at and self.opt.weight_decay < below_wd else 1.0
    monkeypatch.setattr(SearchEngine, "dominant_eigenvalue", fake)


def _metrics(run_dir) -> list[dict]:
    return [json.loads(line) for line in (Path(run_dir) / "metrics.jsonl").read_text().splitlines()]


def test_search_stops_early_with_the_rise_epoch_arch_and_resumes_to_the_same_decision(tmp_path, monkeypatch):
    _step_eigenvalues(monkeypatch)
    overrides = [*TINY, "search.epochs=10", f"+components=[{{name:darts_es,{QUICK}}}]"]
    full, resumed, at = interrupted_and_full_states(tmp_path, overrides, crash_at_step=5)
    assert at == (4, 0)
    assert_same_state(full, resumed)
    assert full["components"][-1]["stop"] == resumed["components"][-1]["stop"] == {"epoch": 6, "arch_epoch": 3}
    for name in ("full", "cut"):
        run_dir = next((tmp_path / name).rglob("result.json")).parent
        result = json.loads((run_dir / "result.json").read_text())
        assert result["status"] == "ok" and result["stopped_early"] == {"epoch": 6, "arch_epoch": 3}
        metrics = _metrics(run_dir)
        assert [m["epoch"] for m in metrics] == list(range(7))  # nothing after the stop
        assert metrics[-1]["stopped_early"] is True and metrics[-1]["es_arch_epoch"] == 3
        assert [m.get("es_ratio") for m in metrics][5:] == pytest.approx([1.0, 5 / 3])
        # the final supernet holds alpha of the end of epoch 3 (not of epoch 6), and arch.json is derived from it
        alpha = torch.load(run_dir / "checkpoint.pt", weights_only=True)["supernet"]["mixer.alphas.cell"]
        probs = alpha.softmax(-1).double()
        torch.testing.assert_close(probs, torch.tensor(metrics[3]["alphas"]["cell"], dtype=torch.float64))
        assert not torch.allclose(probs, torch.tensor(metrics[6]["alphas"]["cell"], dtype=torch.float64))
        arch = json.loads((run_dir / "arch.json").read_text())
        assert arch["provenance"]["epoch"] == 4 and result["arch"] == metrics[3]["arch"]
        assert json.loads((run_dir / "darts_es.json").read_text())["stopped_early"] == {"epoch": 6, "arch_epoch": 3}


def test_search_with_ada_rolls_back_and_resumes_bit_for_bit(tmp_path, monkeypatch):
    # the jump disappears once the weight decay is raised: one roll-back (6 -> 3), then the run goes to epoch 7
    _step_eigenvalues(monkeypatch, below_wd=1e-3)
    overrides = [*TINY, "search.epochs=8", "optimizer.weight_decay=3e-4",  # R-DARTS's (NB201's is 5e-4)
                 f"+components=[{{name:darts_ada,{QUICK},factor:10,max_weight_decay:0.03}}]"]
    full, resumed, at = interrupted_and_full_states(tmp_path, overrides, crash_at_step=9)  # after the roll-back
    assert at == (5, 0)
    assert_same_state(full, resumed)
    for state in (full, resumed):
        ada = state["components"][-1]
        assert [(a["epoch"], a["rollback_epoch"]) for a in ada["adaptations"]] == [(6, 3)]
        assert ada["weight_decay"] == pytest.approx(3e-3)
        assert all(g["weight_decay"] == pytest.approx(3e-3) for g in state["optimizer"]["w_opt"]["param_groups"])
    for name in ("full", "cut"):
        run_dir = next((tmp_path / name).rglob("result.json")).parent
        metrics = _metrics(run_dir)
        assert [m["epoch"] for m in metrics] == list(range(8))  # the abandoned epochs 4..6 are not logged
        assert [m["ada_adaptations"] for m in metrics] == [0, 0, 0, 0, 1, 1, 1, 1]
        assert [m["ada_weight_decay"] for m in metrics] == pytest.approx([3e-4] * 4 + [3e-3] * 4)
        assert "stopped_early" not in json.loads((run_dir / "result.json").read_text())
        log = json.loads((run_dir / "darts_ada.json").read_text())
        assert log["adaptations"][0]["weight_decay_before"] == pytest.approx(3e-4)


def test_the_watch_does_not_change_the_search(tmp_path):
    """A DARTS-ES run that never fires (real eigenvalues, exact) ends in the same state as the same run
    without it: the diagnostic restores the BatchNorm statistics and the RNGs."""
    from nascli.commands.search import SearchSession

    def final(extra, name):
        s = SearchSession(compose_cfg("search", [*TINY, "search.epochs=2", "method=gdas", *extra,
                                                 f"out_root={tmp_path / name}"]))
        s.execute()
        return torch.load(s.run.checkpoint_path, weights_only=True), s.run.path

    plain_state, _ = final([], "plain")
    watched, run_dir = final([f"+components=[{{name:darts_es,{QUICK}}}]"], "watched")
    assert_same_state(plain_state, watched)
    values = [m.get("es_eigenvalue") for m in _metrics(run_dir)]
    assert all(isinstance(v, float) for v in values)


# ------------------------------------------------------------------------------------- configuration
METHODS = sorted(p.stem for p in (CONF_DIR / "method").glob("*.yaml"))
# (method, component) -> reason words: ADA loads earlier supernet snapshots, which DrNAS's widening prevents
REFUSED = {("drnas", "darts_ada"): "reshapes the supernet"}
# GM-NAS runs its own epoch loop per node of its split tree (nascli/search/few_shot)
REFUSED.update({("gm_nas", c): "decides when the search ends" for c in ("darts_es", "darts_ada")})


@pytest.mark.parametrize("component", ["darts_es", "darts_ada"])
@pytest.mark.parametrize("method", METHODS)
def test_every_method_takes_the_components(method, component):
    cfg = compose_cfg("search", [f"method={method}", f"+components=[{component}]"])
    if (method, component) in REFUSED:
        with pytest.raises(IncompatibleError, match=REFUSED[(method, component)]):
            check_search_config(cfg)
        return
    comp = check_search_config(cfg)
    assert comp.components[-1][0] == component


def test_component_seam_errors_are_one_line():
    with pytest.raises(NasError, match=r"unknown component 'darts_eS'.*darts_es"):
        check_search_config(compose_cfg("search", ["+components=[darts_eS]"]))
    with pytest.raises(NasError, match="not a list"):
        check_search_config(compose_cfg("search", ["+components=darts_es"]))
    with pytest.raises(NasError, match="ratioo"):
        check_search_config(compose_cfg("search", ["+components=[{name:darts_es,ratioo:1.5}]"]))
    with pytest.raises(IncompatibleError, match="darts_es and darts_ada both decide"):
        check_search_config(compose_cfg("search", ["+components=[darts_es,darts_ada]"]))
    with pytest.raises(IncompatibleError, match="optimizer=bilevel"):
        check_search_config(compose_cfg("search", ["optimizer=rarts", "+components=[darts_ada]"]))


def test_hessian_method_is_validated():
    from nascli.config.validate import validate_config

    validate_config("search", compose_cfg("search", ["diagnostics.hessian_method=lanczos"]), outside=False)
    with pytest.raises(NasError, match=r"diagnostics.hessian_method='qr' is not allowed; expected one of auto"):
        validate_config("search", compose_cfg("search", ["diagnostics.hessian_method=qr"]), outside=False)
    validate_config("search", compose_cfg("search", ["+components=[darts_es]"]), outside=False)


# ------------------------------------------------------------------------------------- benchmark report
def test_the_benchmark_report_shows_the_early_stop_and_the_adaptations(tmp_path):
    from nascli.bench.report import build_report, render_markdown
    from nascli.bench.study import search_figures

    es_dir, ada_dir, plain_dir = tmp_path / "es", tmp_path / "ada", tmp_path / "plain"
    records = {es_dir: [{"epoch": 0}, {"epoch": 1, "stopped_early": True}],
               ada_dir: [{"epoch": 0, "ada_adaptations": 0}, {"epoch": 1, "ada_adaptations": 2,
                                                                "ada_weight_decay": 0.03}],
               plain_dir: [{"epoch": 0}]}
    for d, recs in records.items():
        d.mkdir()
        (d / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    es = search_figures(es_dir, {"stopped_early": {"epoch": 22, "arch_epoch": 10}})
    ada = search_figures(ada_dir, {})
    plain = search_figures(plain_dir, {})
    assert es["stopped_early"] == {"epoch": 22, "arch_epoch": 10} and es["ada_adaptations"] is None
    assert (ada["ada_adaptations"], ada["ada_weight_decay"], ada["stopped_early"]) == (2, 0.03, None)
    base = {"selection": "magnitude", "status": "ok", "search_status": "ok", "acc": 90.0, "valid_acc": None,
            "arch": "a", "skip_count": 0, "search_time_s": 1.0, "peak_memory_mb": 1.0, "alpha_entropy": 1.0,
            "hessian_eigenvalue": None, "stage": None, "error": None, "log": None}
    rows = [{**base, "method": label, "method_name": "darts", "seed": 0, **figures}
            for label, figures in (("es", es), ("ada", ada), ("plain", plain))]
    study = {"id": "x", "mode": "study", "space": "nb201", "dataset": "cifar10", "methods": ["es", "ada", "plain"],
             "seeds": [0], "selections": ["magnitude"], "baseline": {"samples": 0, "seed": 0}}
    report = build_report(study, rows, [], None, labels=["es", "ada", "plain"], selections=["magnitude"],
                          methods={"es": "darts", "ada": "darts", "plain": "darts"}, with_published=False,
                          accuracy_source="table")
    text = render_markdown(report)
    lines = {line.split("|")[1].strip(): line for line in text.splitlines()
             if line.startswith("| ") and "`a`" in line}
    assert lines["es"].rstrip().endswith("| stopped at 22, arch of 10 |")
    assert lines["ada"].rstrip().endswith("| ADA: 2 rollbacks, wd 0.03 |")
    assert lines["plain"].rstrip().endswith("| – |")
    assert "`early stop`: DARTS-ES stopped at epoch e" in text
