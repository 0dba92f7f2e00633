"""DAAS-approx: policy representation and application, REINFORCE direction, the augment_policy component
in a GDAS search (augmentation, reward, baseline, resume) and the evaluation stream (METHODS.md 7)."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from helpers import (RESUME, TINY, TINY_DARTS, assert_same_state, compose_cfg, interrupted_and_full_states, nas,
                     result_line)
from nascli.data import BatchStream
from nascli.data.policy import (SUBPOLICIES, AugmentPolicy, PolicyActions, PolicyBatchStream, apply_actions,
                                load_policy, policy_stream_factory, policy_table)
from nascli.data.policy_ops import OP_NAMES, auto_contrast, invert, solarize
from nascli.errors import NasError
from nascli.search.optimizers.base import StepHooks
from nascli.search.regularizers.augment_policy import PolicyParameters, reinforce_update

IDX = {n: k for k, n in enumerate(OP_NAMES)}


def _policy_only(pair: tuple[str, str], p: float = 1.0, magnitude: float = 0.5) -> AugmentPolicy:
    probs = [0.0] * len(SUBPOLICIES)
    probs[SUBPOLICIES.index((IDX[pair[0]], IDX[pair[1]]))] = 1.0
    return AugmentPolicy(probs, [p] * 15, [magnitude] * 15)


def test_subpolicies_are_the_105_unordered_pairs():
    assert len(SUBPOLICIES) == 105 == math.comb(15, 2)
    assert all(i < j for i, j in SUBPOLICIES) and len(set(SUBPOLICIES)) == 105


def test_a_subpolicy_applies_its_two_ops_in_list_order():
    x = torch.rand(6, 3, 8, 8)
    out = _policy_only(("AutoContrast", "Invert")).apply(x, torch.Generator().manual_seed(0))
    assert torch.allclose(out, invert(auto_contrast(x)), atol=1e-6)
    m = 0.25  # Solarize at 0 + 0.25 * 256 = 64, then Invert
    out = _policy_only(("Invert", "Solarize"), magnitude=m).apply(x, torch.Generator().manual_seed(0))
    v = torch.full((6,), 64.0, dtype=torch.float64)
    assert torch.allclose(out, solarize(invert(x), v), atol=1e-6)
    unchanged = _policy_only(("AutoContrast", "Invert"), p=0.0).apply(x, torch.Generator().manual_seed(0))
    assert torch.equal(unchanged, x)
    u8 = (x * 255).round().to(torch.uint8)
    out8 = _policy_only(("Invert", "Equalize"), p=1.0).apply(u8)
    assert out8.dtype == torch.uint8


def test_apply_actions_per_image_subpolicies_and_fire_flags():
    x = torch.rand(3, 3, 8, 8)
    inv_ac = SUBPOLICIES.index((IDX["AutoContrast"], IDX["Invert"]))
    actions = PolicyActions(torch.tensor([inv_ac, inv_ac, inv_ac]),
                            torch.tensor([[True, True], [False, True], [False, False]]),
                            torch.full((15,), 0.5, dtype=torch.float64))
    out = apply_actions(x, actions)
    assert torch.allclose(out[0], invert(auto_contrast(x[:1]))[0], atol=1e-6)
    assert torch.allclose(out[1], invert(x[1]), atol=1e-7)
    assert torch.equal(out[2], x[2])


def test_policy_json_roundtrip_and_errors(tmp_path):
    torch.manual_seed(0)
    params = PolicyParameters()
    with torch.no_grad():
        params.subpolicy_logits.normal_()
        params.apply_logits.normal_()
        params.magnitudes.uniform_()
    pol = params.policy({"run": "x"})
    data = pol.to_json()
    assert data["schema"] == "nascli.policy/1" and len(data["subpolicies"]) == 105
    assert sum(s["prob"] for s in data["subpolicies"]) == pytest.approx(1.0)
    path = tmp_path / "policy.json"
    path.write_text(json.dumps(data))
    back = load_policy(path)
    assert back.subpolicy_probs == pol.subpolicy_probs and back.magnitudes == pol.magnitudes
    assert back.apply_probs == pol.apply_probs and back.provenance == {"run": "x"}
    with pytest.raises(NasError, match="not found"):
        load_policy(tmp_path / "missing.json")
    bad = dict(data, schema="other")
    path.write_text(json.dumps(bad))
    with pytest.raises(NasError, match="schema"):
        load_policy(path)
    with pytest.raises(NasError, match="magnitude"):
        AugmentPolicy(pol.subpolicy_probs, pol.apply_probs, [1.5] * 15)


def test_policy_table_lists_the_top_subpolicies():
    from rich.console import Console
    pol = _policy_only(("Rotate", "Cutout"), p=0.7, magnitude=1.0)
    console = Console(record=True, width=140)
    console.print(policy_table(pol, n=3))
    text = console.export_text()
    assert "Rotate" in text and "Cutout" in text and "0.70" in text and "30" in text  # Rotate m=1 -> 30 deg


# ------------------------------------------------------------------------------------ REINFORCE
def test_reinforce_increases_the_logit_of_a_rewarded_subpolicy():
    params = PolicyParameters()
    opt = torch.optim.SGD(params.parameters(), lr=0.5)
    good = 17
    actions = PolicyActions(torch.full((8,), good), torch.ones(8, 2, dtype=torch.bool),
                            torch.full((15,), 0.6))
    before = params.subpolicy_logits.detach().clone()
    reinforce_update(params, opt, actions, advantage=1.0, magnitude_std=0.1)
    delta = params.subpolicy_logits.detach() - before
    assert delta[good] > 0 and (delta[torch.arange(105) != good] < 0).all()
    # d/dlogit log softmax_s = onehot(s) - softmax: exactly lr * (1 - 1/105) for the chosen one
    assert delta[good].item() == pytest.approx(0.5 * (1 - 1 / 105), rel=1e-5)
    i, j = SUBPOLICIES[good]
    assert params.apply_probs()[i] > 0.5 and params.apply_probs()[j] > 0.5  # fired -> p up
    assert params.magnitudes[i] > 0.5  # sampled magnitude 0.6 rewarded -> mean moves towards it
    before = params.subpolicy_logits.detach().clone()
    reinforce_update(params, opt, actions, advantage=-1.0, magnitude_std=0.1)
    assert params.subpolicy_logits[good] < before[good]


def test_reinforce_with_baseline_learns_the_better_subpolicy():
    torch.manual_seed(0)
    params = PolicyParameters()
    opt = torch.optim.Adam(params.parameters(), lr=0.05)
    gen = torch.Generator().manual_seed(0)
    rewarded = {SUBPOLICIES.index((IDX["Invert"], IDX["Equalize"]))}
    baseline = None
    start = params.subpolicy_logits.detach().clone()
    for _ in range(300):
        actions = params.sample(4, 0.1, gen)
        reward = sum(1.0 if int(s) in rewarded else 0.0 for s in actions.subpolicy) / 4
        baseline = reward if baseline is None else baseline
        reinforce_update(params, opt, actions, reward - baseline, 0.1)
        baseline = 0.9 * baseline + 0.1 * reward
    target = next(iter(rewarded))
    gain = params.subpolicy_logits.detach() - start
    assert int(params.subpolicy_logits.argmax()) == target and gain[target] > 0
    assert params.subpolicy_probs()[target] > 10 / 105


# ------------------------------------------------------------------------------------ component in search
def test_method_config():
    cfg = compose_cfg("search", ["method=daas"])
    assert cfg.method.mixer.name == "gumbel" and cfg.optimizer.name == "bilevel"
    comp = cfg.method.components[0]
    assert comp.name == "augment_policy" and comp.dataset == "synthetic" and comp.baseline_momentum == 0.9
    assert compose_cfg("search", ["method=daas", "space=darts"]).method.derive_rule == "pairs"


def _session(tmp_path, extra=()):
    from nascli.commands.search import SearchSession
    return SearchSession(compose_cfg("search", ["method=daas", *TINY, "search.epochs=1", "search.max_steps_per_epoch=2",
                                                *extra, f"out_root={tmp_path}"]))


def test_component_augments_the_weight_batch_and_rewards_with_the_val_loss(tmp_path):
    s = _session(tmp_path)
    comp = s.components[0]
    seen, val_losses = [], []

    class Spy(StepHooks):  # attached after the component: sees the augmented batch and every loss
        def before_step(self, batch):
            seen.append(batch[0].clone())
            return batch

        def on_loss(self, prefix, loss):
            if prefix == "val":
                val_losses.append(loss.item())

    s.optimizer.attach(Spy())
    engine = s.engine
    state = engine.train_stream.state_dict()
    clean = engine.train_stream.next()[0]
    engine.train_stream.load_state_dict(state)
    engine.start_epoch(0)
    s.optimizer.step(engine.train_stream.next(), engine.arch_stream.next())
    # the weight step saw the policy-augmented version of the stream's batch
    assert len(seen) == 1 and seen[0].shape == clean.shape and not torch.allclose(seen[0], clean, atol=1e-3)
    assert len(val_losses) == 1 and comp._actions is None  # consumed by the update after the step
    before = comp.params.subpolicy_logits.detach().clone()
    assert comp.updates == 1 and comp.has_baseline  # the component's after_step hook updated the policy
    assert float(comp.last_reward) == pytest.approx(-val_losses[0], rel=1e-6)  # R = -L_val
    assert float(comp.baseline) == pytest.approx(-val_losses[0], rel=1e-6)  # b starts at the first reward
    assert torch.equal(comp.params.subpolicy_logits.detach(), before)  # so the first advantage is zero
    assert comp.values()["policy_entropy"] == pytest.approx(math.log(105), rel=1e-5)
    # second step: advantage R - b != 0 moves the policy, then b <- 0.9 b + 0.1 R
    b0 = float(comp.baseline)
    s.optimizer.step(engine.train_stream.next(), engine.arch_stream.next())
    r1 = -val_losses[1]
    assert float(comp.baseline) == pytest.approx(0.9 * b0 + 0.1 * r1, rel=1e-6)
    assert not torch.equal(comp.params.subpolicy_logits.detach(), before)


def test_no_policy_update_without_an_architecture_step(tmp_path):
    s = _session(tmp_path, ["optimizer.arch_start_epoch=1", "search.epochs=2"])  # warm-up: epoch 0
    comp = s.components[0]
    s.engine.start_epoch(0)
    s.optimizer.step(s.engine.train_stream.next(), s.engine.arch_stream.next())
    comp.on_step_end(0, 1)
    assert comp.updates == 0 and comp._actions is None


def test_cpu_search_step_nb201_updates_the_policy(tmp_path):
    res = result_line(nas("search", "method=daas", *TINY, "search.epochs=2", "search.max_steps_per_epoch=3",
                          f"out_root={tmp_path}"))
    metrics = [json.loads(line) for line in (Path(res["run_dir"]) / "metrics.jsonl").read_text().splitlines()]
    assert metrics[-1]["policy_updates"] == 6.0 and metrics[-1]["tau"] == pytest.approx(0.1)
    assert "policy_entropy" in metrics[0] and metrics[0]["peak_memory_mb"] > 0
    state = torch.load(Path(res["run_dir"]) / "checkpoint.pt", weights_only=False)
    comp = state["components"][0]
    assert set(comp) >= {"params", "policy_opt", "baseline", "generator", "updates"}
    assert not torch.equal(comp["params"]["subpolicy_logits"], torch.zeros(105))


def test_artifacts_give_a_loadable_policy(tmp_path):
    s = _session(tmp_path)
    arts = s.components[0].artifacts()
    assert list(arts) == ["policy.json"]
    (tmp_path / "policy.json").write_text(json.dumps(arts["policy.json"]))
    pol = load_policy(tmp_path / "policy.json")
    assert pol.subpolicy_probs == pytest.approx([1 / 105] * 105)


def test_cpu_search_step_darts_space(tmp_path):
    res = result_line(nas("search", "method=daas", *TINY_DARTS, "search.epochs=1", "search.max_steps_per_epoch=1",
                          f"out_root={tmp_path}"))
    assert res["space"] == "darts" and res["status"] == "ok"


def test_resume_restores_policy_baseline_and_rng_exactly(tmp_path):
    full, resumed, at = interrupted_and_full_states(tmp_path, ["method=daas", *TINY, *RESUME], crash_at_step=6)
    assert at == (1, 2)
    assert_same_state(full, resumed)
    a, b = full["components"][0], resumed["components"][0]
    for k in a["params"]:
        assert torch.equal(a["params"][k], b["params"][k]), k
    assert torch.equal(a["baseline"], b["baseline"]) and torch.equal(a["generator"], b["generator"])
    assert a["updates"] == b["updates"] == 9 and a["last_reward"] == b["last_reward"]
    assert not torch.equal(a["params"]["subpolicy_logits"], torch.zeros(105))  # the policy did move


# ------------------------------------------------------------------------------------ evaluation stream
def _split_and_info():
    from nascli.data import search_splits
    cfg = compose_cfg("search", ["dataset=synthetic", "dataset.num_train=64", "dataset.image_size=8"])
    weights, _, info = search_splits(cfg.dataset)
    return weights, info


def test_policy_stream_with_zero_probabilities_matches_the_plain_stream_first_batch():
    split, info = _split_and_info()
    pol = _policy_only(("Invert", "Equalize"), p=0.0)
    plain = BatchStream(split, info, 8, seed=3, train_aug=True)
    with_policy = policy_stream_factory(pol)(split, info, 8, seed=3, train_aug=True)
    a, ya = plain.next()
    b, yb = with_policy.next()
    assert torch.equal(ya, yb) and torch.allclose(a, b, atol=1e-5)
    inverted = PolicyBatchStream(split, info, 8, policy=_policy_only(("Invert", "Equalize"), p=1.0), seed=3,
                                 train_aug=True)
    c, _ = inverted.next()
    assert not torch.allclose(a, c, atol=1e-3)


def test_policy_stream_resumes_exactly():
    split, info = _split_and_info()
    pol = _policy_only(("Rotate", "Cutout"), p=0.5, magnitude=0.9)
    s = PolicyBatchStream(split, info, 8, policy=pol, seed=1, train_aug=True, cutout=4)
    s.next()
    state = s.state_dict()
    expected = [s.next()[0] for _ in range(3)]
    t = PolicyBatchStream(split, info, 8, policy=pol, seed=99, train_aug=True, cutout=4)
    t.load_state_dict(state)
    for e in expected:
        assert torch.equal(t.next()[0], e)


def test_search_writes_policy_json_and_evaluate_trains_with_it(tmp_path):
    res = result_line(nas("search", "method=daas", *TINY, "search.epochs=1", "search.max_steps_per_epoch=2",
                          f"out_root={tmp_path}"))
    policy_path = Path(res["run_dir"]) / "policy.json"
    assert res["artifacts"]["policy.json"] == str(policy_path)
    pol = load_policy(policy_path)
    assert len(pol.subpolicy_probs) == 105
    ev = nas("evaluate", f"arch={res['arch_path']}", f"policy={policy_path}", "space.network.C=4", "space.network.N=1",
             "dataset.num_train=128", "dataset.image_size=8", "protocol=quick", "protocol.batch_size=8",
             "protocol.max_steps_per_epoch=2", "num_threads=1", f"out_root={tmp_path}")
    out = result_line(ev)
    assert out["status"] == "ok" and out["policy"] == str(policy_path)
    assert load_policy(Path(out["run_dir"]) / "policy.json").subpolicy_probs == pol.subpolicy_probs
    assert "augmentation policy" in ev.stderr
