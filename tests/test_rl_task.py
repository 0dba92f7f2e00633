"""task=reinforcement_learning (issue 19, RL-DARTS): nas search / derive / evaluate on MiniGrid with a tiny
PPO, the architecture optimizer attached to PPO's optimizer step, resume after an interruption, the MiniGrid
state capture, the IMPALA baseline and the one-line refusals."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("stable_baselines3")
pytest.importorskip("minigrid")

from helpers import compose_cfg, nas  # noqa: E402
from nascli.errors import NasError  # noqa: E402

# A tiny agent: 2 envs x 16 steps per rollout, one PPO epoch of minibatch 16, 1 rollout per period.
TINY_PPO = ["protocol.n_envs=2", "protocol.n_steps=16", "protocol.batch_size=16", "protocol.n_epochs=1",
            "protocol.rollouts_per_epoch=1", "protocol.eval_episodes=1", "protocol.final_eval_episodes=2",
            "task.features_dim=8", "dataset=minigrid_empty5", "num_threads=1"]
TINY_SEARCH = ["task=reinforcement_learning", "search.epochs=2", *TINY_PPO, "space.supernet.C=4",
               "space.supernet.N=1"]
TINY_EVAL = ["task=reinforcement_learning", "space.network.C=4", "space.network.N=1", "protocol.epochs=1",
             *TINY_PPO]


def _search(tmp_path: Path, extra=()) -> dict:
    from nascli.commands.search import search

    return search(compose_cfg("search", [*TINY_SEARCH, f"out_root={tmp_path}", *extra]))


def test_task_picks_its_axes():
    cfg = compose_cfg("search", ["task=reinforcement_learning"])
    assert (cfg.dataset.name, cfg.space.name, cfg.method.name, cfg.protocol.name) == \
        ("minigrid_empty_random5", "nb201", "darts", "rl_ppo_quick")
    assert (cfg.space.supernet.C, cfg.space.supernet.N) == (16, 5)  # the space keeps its sizes
    cpu = compose_cfg("search", ["experiment=rl_cpu"])  # the CPU-sized preset
    assert cpu.task.name == "reinforcement_learning" and cpu.dataset.name == "minigrid_empty_random5"
    assert dict(cpu.space.supernet) == {"C": 8, "N": 1, "impl": "fast"} and dict(cpu.space.network) == {"C": 8, "N": 1}
    darts = compose_cfg("search", ["task=reinforcement_learning", "space=darts", "space.supernet.layers=3"])
    assert "N" not in darts.space.supernet and darts.space.supernet.layers == 3
    from nascli.tasks import task_of
    task = task_of(cfg)
    assert task.metric == "mean_return" and task.higher_is_better
    assert {"minigrid_empty5", "minigrid_empty_random5", "minigrid_doorkey5", "procgen_coinrun"} <= \
        set(task.dataset_names())
    from omegaconf import OmegaConf

    from nascli.paths import CONF_DIR
    from nascli.rl.envs import ENV_FAMILIES
    for name in task.dataset_names():  # each environment config is named after its file, of a known family
        node = OmegaConf.load(CONF_DIR / "dataset" / f"{name}.yaml")
        assert node.name == name and node.family in ENV_FAMILIES.names() and node.env_id
    info = task.dataset_info(cfg.dataset)
    assert (info.image_size, info.channels, info.num_actions) == (20, 3, 3)
    assert task.head_kwargs(info) == {"num_classes": 64}


def test_search_derive_and_evaluate_end_to_end(tmp_path):
    from nascli.commands.derive import derive
    from nascli.commands.evaluate import evaluate

    res = _search(tmp_path)
    run = Path(res["run_dir"])
    assert res["status"] == "ok" and res["space"] == "nb201" and res["timesteps"] == 2 * 32
    assert res["timesteps_per_epoch"] == 32 and [r["epoch"] for r in res["returns"]] == [0, 1]
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [0, 1] and [r["timesteps"] for r in records] == [32, 64]
    for r in records:
        assert 0.0 <= r["eval_return_mean"] <= 1.0 and len(r["eval_returns"]) == 1
        assert 0 < r["alpha_entropy"]["cell"] <= np.log(5) + 1e-6 and np.asarray(r["alphas"]["cell"]).shape == (6, 5)
        assert r["arch"].count("~") == 6 and r["arch_steps"] == 2 * (r["epoch"] + 1)  # 2 minibatches a period
        assert "ppo_policy_gradient_loss" in r and "ppo_approx_kl" in r
        assert (r["train_episodes"] > 0) == (r["train_return_mean"] is not None)  # Monitor episodes ended
    assert records[-1]["arch"] == res["arch"]
    saved = json.loads((run / "arch.json").read_text())
    assert saved["space"] == "nb201" and saved["provenance"]["epoch"] == 2
    # nas derive on the saved supernet: magnitude reads the same alpha again
    again = derive(compose_cfg("derive", [f"run='{run}'", "selection=magnitude"]))
    assert again["arch"] == res["arch"] and (run / "arch_magnitude.json").is_file()
    with pytest.raises(NasError, match=r"selection=ostr cannot derive a task=reinforcement_learning search"):
        derive(compose_cfg("derive", [f"run='{run}'", "selection=ostr"]))
    # the derived encoder trained from scratch with the same agent
    ev = evaluate(compose_cfg("evaluate", [*TINY_EVAL, f"arch='{run / 'arch.json'}'", f"out_root={tmp_path}"]))
    assert ev["status"] == "ok" and ev["arch"] == res["arch"] and ev["encoder"] == "network"
    assert ev["episodes"] == 2 and 0.0 <= ev["mean_return"] <= 1.0 and ev["timesteps"] == 32
    assert ev["params"] > 0 and json.loads((Path(ev["run_dir"]) / "result.json").read_text()) == ev
    policy = torch.load(ev["policy_path"], weights_only=True)
    assert any(k.startswith("features_extractor.net.") for k in policy)
    # a finished run is not redone
    assert evaluate(compose_cfg("evaluate", [*TINY_EVAL, f"arch='{run / 'arch.json'}'",
                                             f"out_root={tmp_path}"])) == ev


def test_gdas_and_darts_space_search(tmp_path):
    """Any mixer on either cell space: GDAS's sampled paths and temperature schedule on the DARTS space."""
    from nascli.commands.search import search

    res = search(compose_cfg("search", [*TINY_SEARCH[:-2], "space=darts", "method=gdas", "space.supernet.C=4",
                                        "space.supernet.layers=2", "search.epochs=1", f"out_root={tmp_path}"]))
    assert res["status"] == "ok" and res["space"] == "darts" and "normal=" in res["arch"]
    record = json.loads((Path(res["run_dir"]) / "metrics.jsonl").read_text().splitlines()[0])
    assert record["tau"] == pytest.approx(10.0) and set(record["alphas"]) == {"normal", "reduce"}


def _agent(arch_lr: float):
    from nascli.rl.agent import attach_arch_optimizer, build_ppo
    from nascli.rl.envs import make_vec_env
    from nascli.search.builder import build_supernet
    from nascli.spaces import get_space

    cfg = compose_cfg("search", TINY_SEARCH)
    torch.manual_seed(0)
    net = build_supernet(cfg, get_space("nb201"), {"num_classes": 8}, 3)
    env = make_vec_env(cfg.dataset, 2, 0)
    model = build_ppo(env, net, 8, cfg.protocol, 0, torch.device("cpu"))
    step = attach_arch_optimizer(model.policy, net.mixer.arch_parameters(), lr=arch_lr, betas=(0.5, 0.999),
                                 weight_decay=0.0)
    return cfg, net, model, step


@pytest.mark.parametrize("arch_lr", [0.0, 0.05])
def test_alpha_has_its_own_adam_fed_by_the_ppo_loss(arch_lr):
    from nascli.rl.agent import learn_epoch

    cfg, net, model, step = _agent(arch_lr)
    alphas = [p for p in net.mixer.arch_parameters()]
    ids = {id(p) for p in alphas}
    in_policy_opt = {id(p) for g in model.policy.optimizer.param_groups for p in g["params"]}
    assert not ids & in_policy_opt  # the weights' optimizer never sees alpha
    assert len(in_policy_opt) == sum(1 for _ in model.policy.parameters()) - len(alphas)
    before = [a.detach().clone() for a in alphas]
    learn_epoch(model, cfg.protocol)
    assert model.policy.optimizer.param_groups[0]["lr"] == pytest.approx(5e-4)  # PPO's schedule, set by SB3
    assert step.optimizer.param_groups[0]["lr"] == arch_lr  # untouched by SB3's _update_learning_rate
    assert step.steps == 2 and all(a.grad is None for a in alphas)
    changed = [not torch.equal(b, a.detach()) for b, a in zip(before, alphas)]
    assert all(changed) if arch_lr > 0 else not any(changed)


def test_minigrid_state_capture_continues_an_episode_exactly():
    from nascli.rl.envs import capture_vec_env, make_vec_env, restore_vec_env

    cfg = compose_cfg("search", ["task=reinforcement_learning", "dataset=minigrid_doorkey5"])
    a = make_vec_env(cfg.dataset, 2, 3)
    a.reset()
    rng = np.random.default_rng(0)
    for _ in range(7):
        a.step(rng.integers(0, 7, size=2))
    state = capture_vec_env(a, cfg.dataset)
    b = make_vec_env(cfg.dataset, 2, 99)
    b.reset()
    restore_vec_env(b, cfg.dataset, state)
    for _ in range(300):  # past the 250-step limit: the automatic resets draw from the restored generators
        actions = rng.integers(0, 7, size=2)
        oa, ra, da, _ = a.step(actions)
        ob, rb, db, _ = b.step(actions)
        assert np.array_equal(oa, ob) and np.array_equal(ra, rb) and np.array_equal(da, db)
    torch.save(state, buf := __import__("io").BytesIO())
    buf.seek(0)
    assert torch.load(buf, weights_only=True) == state  # plain data (128-bit generator ints as strings)


class Interrupt(Exception):
    pass


def test_resume_after_an_interruption_matches_the_uninterrupted_run(tmp_path):
    """A search killed after its first period's checkpoint and resumed by a fresh process state ends with the
    same policy, alpha, optimizer and environment states as the same search run without a break."""
    from nascli.commands.search import search_run_dir
    from nascli.rl.driver import RLSearch
    from nascli.search.composition import check_search_config

    def session(root: Path) -> RLSearch:
        cfg = compose_cfg("search", [*TINY_SEARCH, "search.epochs=3", f"out_root={root}"])
        return RLSearch(cfg, search_run_dir(cfg), check_search_config(cfg))

    full = session(tmp_path / "full")
    full.execute()
    cut = session(tmp_path / "cut")

    def stop(epoch: int) -> None:
        if epoch == 0:
            raise Interrupt

    cut.loop.on_epoch_end.append(stop)
    with pytest.raises(Interrupt):
        cut.execute()
    at_cut = torch.load(cut.run.checkpoint_path, weights_only=True)
    assert at_cut["epoch"] == 1 and not (cut.run.path / "result.json").exists()
    torch.manual_seed(1234)  # a new process: the global generators hold anything
    np.random.seed(4321)
    resumed = session(tmp_path / "cut")
    resumed.loop.load_state_dict(at_cut)  # restored exactly what was saved
    alphas = {k: v for k, v in at_cut["supernet"].items() if "alphas" in k}
    assert alphas and all(torch.equal(resumed.supernet.state_dict()[k], v) for k, v in alphas.items())
    for k, v in at_cut["agent"]["parameters"]["policy"].items():
        assert torch.equal(resumed.model.policy.state_dict()[k], v), k
    resumed = session(tmp_path / "cut")
    res = resumed.execute()
    a = torch.load(full.run.checkpoint_path, weights_only=True)
    b = torch.load(resumed.run.checkpoint_path, weights_only=True)
    assert a["epoch"] == b["epoch"] == 3
    for k in a["agent"]["parameters"]["policy"]:
        assert torch.equal(a["agent"]["parameters"]["policy"][k], b["agent"]["parameters"]["policy"][k]), k
    assert a["envs"] == b["envs"] and a["agent"]["num_timesteps"] == b["agent"]["num_timesteps"] == 96
    full_metrics = [json.loads(x) for x in (full.run.path / "metrics.jsonl").read_text().splitlines()]
    cut_metrics = [json.loads(x) for x in (resumed.run.path / "metrics.jsonl").read_text().splitlines()]
    assert [m["eval_returns"] for m in full_metrics] == [m["eval_returns"] for m in cut_metrics]
    assert [m["alphas"] for m in full_metrics] == [m["alphas"] for m in cut_metrics]
    assert res["arch"] == json.loads((full.run.path / "result.json").read_text())["arch"]


def test_impala_baseline_encoder(tmp_path):
    from nascli.commands.evaluate import evaluate
    from nascli.rl.encoder import ImpalaEncoder, count_parameters

    # Espeholt et al. 2018's stacks (16, 32, 32) and 256 features on 64x64 Procgen frames, counted by hand:
    # convs 448 + 4*2320 + 4640 + 4*9248 + 9248 + 4*9248 = 97600; linear 8*8*32*256 + 256 = 524544
    net = ImpalaEncoder(3, 64, (16, 32, 32), 256)
    assert count_parameters(net) == 97600 + 524544
    assert net(torch.zeros(2, 3, 64, 64)).shape == (2, 256)
    assert ImpalaEncoder(3, 20, (4, 8, 8), 8)(torch.zeros(1, 3, 20, 20)).shape == (1, 8)  # 20 -> 10 -> 5 -> 3
    ev = evaluate(compose_cfg("evaluate", [*TINY_EVAL, "task.encoder=impala_baseline",
                                           "task.impala_channels=[4,8,8]", f"out_root={tmp_path}"]))
    assert ev["status"] == "ok" and ev["encoder"] == "impala_baseline" and ev["space"] is None
    assert ev["params"] == count_parameters(ImpalaEncoder(3, 20, (4, 8, 8), 8)) and "impala-minigrid_empty5" in \
        ev["run_dir"]


@pytest.mark.parametrize("overrides, message", [
    (["dataset=cifar10"], r"dataset=cifar10 is not a task=reinforcement_learning dataset; valid choices: "
                          r"minigrid_doorkey5, minigrid_empty5, minigrid_empty_random5, procgen_coinrun"),
    (["selection=ostr"], r"selection=ostr cannot derive a task=reinforcement_learning search .*valid choices: "
                         r"magnitude"),
    (["method=darts_minus"], r"component .* hooks into nascli's supervised search optimizer"),
    (["optimizer=bilevel_2nd"], r"optimizer bilevel_2nd is another scheme; valid choices: bilevel, single_level"),
    (["space=conformer"], r"space=conformer builds networks for task=speech_recognition, not "
                          r"task=reinforcement_learning; spaces for task=reinforcement_learning: .*nb201"),
    (["task.encoder=vit"], r"task.encoder=vit is not an encoder; valid choices: network, impala_baseline"),
    (["dataset.num_actions=9"], r"dataset.num_actions=9 is not between 1 and the environment's 7 actions"),
    (["dataset.tile_size=3"], r"space nb201 needs an image size divisible by 4 .* got 15x15: the frames of "
                              r"dataset=minigrid_empty5; set their size with dataset.tile_size"),
    (["dataset.env_id=MiniGrid-Nope-v0"], r"dataset.env_id=MiniGrid-Nope-v0 is not a registered MiniGrid env"),
    (["protocol.batch_size=64"], r"protocol.batch_size=64 is larger than a rollout \(n_steps 16 x n_envs 2\)"),
])
def test_search_refusals_are_one_line(tmp_path, overrides, message):
    from nascli.commands.search import search

    with pytest.raises(NasError, match=message):
        search(compose_cfg("search", [*TINY_SEARCH[:-2], f"out_root={tmp_path}", *overrides]))
    assert not any(tmp_path.rglob("config.yaml"))  # nothing written


def test_a_supervised_protocol_is_refused(tmp_path):
    from nascli.commands.search import search

    with pytest.raises(NasError, match=r"protocol=quick is not a PPO protocol \(missing n_envs, .*\); use "
                                       r"protocol=rl_ppo_quick"):
        search(compose_cfg("search", ["task=reinforcement_learning", "protocol=quick", f"out_root={tmp_path}"]))


def test_cli_refusal_and_evaluate_dry_run(tmp_path):
    bad = nas("evaluate", "task=reinforcement_learning", "task.encoder=impala_baseline", "dataset=cifar10",
              f"out_root={tmp_path}", check=False, cwd=tmp_path)
    assert bad.returncode == 2 and bad.stderr.strip().splitlines()[-1].startswith(
        "error: dataset=cifar10 is not a task=reinforcement_learning environment; valid choices: minigrid_doorkey5")
    assert "Traceback" not in bad.stderr
    from nascli.commands.evaluate import evaluate
    with pytest.raises(NasError, match="evaluate needs arch="):
        evaluate(compose_cfg("evaluate", [*TINY_EVAL, f"out_root={tmp_path}"]))
    with pytest.raises(NasError, match=r"export=onnx does not apply to task=reinforcement_learning \(the trained "
                                       r"agent is kept as policy.pt"):
        evaluate(compose_cfg("evaluate", [*TINY_EVAL, "export=onnx", "task.encoder=impala_baseline",
                                          f"out_root={tmp_path}"]))
    assert not any(tmp_path.rglob("config.yaml"))


def test_return_curves_over_seeds(tmp_path):
    pytest.importorskip("matplotlib")
    from nascli.rl.curves import main, mean_curve, read_curve

    dirs = []
    for seed, ys in enumerate([[0.0, 0.5, 1.0], [0.2, 0.7]]):  # the second seed stopped a period early
        d = tmp_path / f"seed={seed}"
        d.mkdir()
        (d / "metrics.jsonl").write_text("".join(json.dumps({"epoch": i, "timesteps": 100 * (i + 1),
                                                             "eval_return_mean": y}) + "\n" for i, y in enumerate(ys)))
        dirs.append(d)
    assert read_curve(dirs[0]) == ([100, 200, 300], [0.0, 0.5, 1.0])
    x, y = mean_curve([read_curve(d) for d in dirs])
    assert x == [100, 200] and y == pytest.approx([0.1, 0.6])
    out = tmp_path / "plots" / "returns.png"
    assert main([str(out), f"derived={dirs[0]},{dirs[1]}", f"impala={dirs[0]}"]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert main([str(out), f"x={tmp_path / 'nowhere'}"]) == 2


@pytest.mark.slow
def test_kill_9_and_rerun_ends_like_the_uninterrupted_run(tmp_path):
    """The real thing: `nas search` killed with SIGKILL after a checkpoint, then the same command again."""
    import signal
    import subprocess
    import sys
    import time

    args = [*TINY_SEARCH, "search.epochs=6", "protocol.n_steps=64"]
    full = nas("search", *args, f"out_root={tmp_path / 'full'}", cwd=tmp_path)
    full_dir = Path(json.loads(full.stdout.strip().splitlines()[-1])["run_dir"])
    cut_root = tmp_path / "cut"
    proc = subprocess.Popen([sys.executable, "-m", "nascli", "search", *args, f"out_root={cut_root}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tmp_path)
    deadline = time.monotonic() + 120
    while not list(cut_root.rglob("checkpoint.pt")) and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    cut_dir = full_dir.relative_to(tmp_path / "full")
    assert not (cut_root / cut_dir / "result.json").exists()  # killed before the end
    at_kill = torch.load(cut_root / cut_dir / "checkpoint.pt", weights_only=True)["epoch"]
    assert 1 <= at_kill < 6
    nas("search", *args, f"out_root={cut_root}", cwd=tmp_path)
    a = torch.load(full_dir / "checkpoint.pt", weights_only=True)
    b = torch.load(cut_root / cut_dir / "checkpoint.pt", weights_only=True)
    for k, v in a["agent"]["parameters"]["policy"].items():
        assert torch.equal(v, b["agent"]["parameters"]["policy"][k]), k
    assert a["envs"] == b["envs"]
    def read(d: Path) -> list:
        return [json.loads(x)["eval_returns"] for x in (d / "metrics.jsonl").read_text().splitlines()]

    assert read(full_dir) == read(cut_root / cut_dir)


# ------------------------------------------------------------------ the generic Gymnasium family (e.g. a Procgen port)
def _gym_cfg(**kw):
    from omegaconf import OmegaConf

    return OmegaConf.create({"name": "counting", "family": "gymnasium", "import": "rl_pixel_env",
                             "env_id": "nascli-test/CountingFrames-v0", "image_size": 8, "make_kwargs": {},
                             "num_actions": None, **kw})


def test_gymnasium_family_builds_a_resized_pixel_env_and_restores_its_rng():
    from nascli.rl.envs import family_of

    family = family_of(_gym_cfg())
    env = family.make(_gym_cfg())
    obs, _ = env.reset(seed=3)
    assert obs.shape == (8, 8, 3) and obs.dtype == np.uint8 and not family.exact_state
    state = family.capture(env)
    after = [env.step(0)[0][0, 0, 1] for _ in range(3)]     # the green channel draws from the env's RNG
    family.restore(env, state)
    assert [env.step(0)[0][0, 0, 1] for _ in range(3)] == after
    assert family.make(_gym_cfg(num_actions=2)).action_space.n == 2


@pytest.mark.parametrize("override,words", [
    ({"import": "no_such_procgen_port"}, "dataset.import=no_such_procgen_port: that package is not installed"),
    ({"env_id": "nascli-test/Nope-v0"}, "dataset.env_id=nascli-test/Nope-v0 is not a registered Gymnasium environment"),
    ({"env_id": "nascli-test/VectorObs-v0"}, "does not observe (H, W, 3) images"),
    ({"num_actions": 9}, "dataset.num_actions=9 is not between 1 and the environment's 3 actions"),
    ({"make_kwargs": {"levels": 3}}, "dataset.make_kwargs={'levels': 3} do not fit nascli-test/CountingFrames-v0"),
])
def test_gymnasium_family_refuses_in_one_line(override, words):
    from nascli.rl.envs import family_of

    with pytest.raises(NasError) as exc:
        family_of(_gym_cfg(**override)).make(_gym_cfg(**override))
    assert words in str(exc.value) and "\n" not in str(exc.value)


def test_search_on_a_generic_gymnasium_pixel_env(tmp_path):
    """The procgen_coinrun config's family with another installed env (the Procgen port is not installable beside
    numpy 2 / Gymnasium 1 here): a search runs end to end on its resized frames."""
    res = _search(tmp_path, ["dataset=procgen_coinrun", "dataset.import=rl_pixel_env",
                             "dataset.env_id=nascli-test/CountingFrames-v0", "dataset.image_size=8"])
    assert res["status"] == "ok" and res["timesteps"] == 2 * 32 and res["arch"].count("~") == 6


def test_search_logs_returns_and_ppo_figures_to_tensorboard(tmp_path):
    """logger=auto with TensorBoard installed: one event file in the run dir, a point per evaluation period."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from nascli.logger.tensorboard import event_files

    run = Path(_search(tmp_path)["run_dir"])
    assert len(event_files(run)) == 1
    acc = EventAccumulator(str(run), size_guidance={"scalars": 0, "images": 0})
    acc.Reload()
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    points = acc.Scalars("return/eval")
    assert [p.step for p in points] == [0, 1]
    assert [p.value for p in points] == pytest.approx([r["eval_return_mean"] for r in records], rel=1e-6)
    tags = set(acc.Tags()["scalars"])
    assert {"ppo/approx_kl", "ppo/policy_gradient_loss", "alpha/entropy/cell", "alpha/skip_share",
            "speed/env_steps_per_s"} <= tags
    assert acc.Tags()["images"] == ["alphas/cell"]       # the search's space labels its op-probability heatmap
    assert not any(t.startswith("schedule/") and ("return" in t or "ppo" in t) for t in tags)
