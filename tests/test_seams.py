"""The seams between the axes (issue: every method x optimizer x selection x space works or is refused):
step hooks every optimizer calls, declared option keys, fixed-path probes, the fp32 unrolled gradient, the
PC-DARTS fixed-edge share, the arch's space on `nas evaluate`, and the import layers."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

import nascli
from helpers import compose_cfg, nas, result_line
from nascli.errors import IncompatibleError, OptionError
from nascli.paths import CONF_DIR
from nascli.profile import count_parameters
from nascli.search.composition import check_search_config
from nascli.search.mixers import MIXERS
from nascli.search.mixers.partial import node_softmax
from nascli.search.optimizers import SEARCH_OPTIMIZERS
from nascli.search.optimizers import base as optimizer_base
from nascli.search.optimizers.base import StepHooks
from nascli.search.options import accepted_options
from nascli.search.selection.probe import SupernetProbe
from nascli.spaces import get_space
from nascli.spaces.darts.genotypes_published import get_published

PACKAGE = Path(nascli.__file__).resolve().parent


def _nb201(mixer: str, **mixer_kw):
    torch.manual_seed(0)
    space = get_space("nb201")
    return space.build_supernet(MIXERS.get(mixer)(space, **mixer_kw), 10, 3, (), C=4, N=1)


def _batch(seed: int = 0, n: int = 8):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, 8, 8, generator=g), torch.randint(0, 10, (n,), generator=g)


# ------------------------------------------------------------------------------------------ step hooks
class _Recorder(StepHooks):
    def __init__(self):
        self.calls: list[str] = []

    def before_step(self, batch):
        self.calls.append("before")
        return batch

    def on_loss(self, prefix, loss):
        self.calls.append(prefix)

    def after_step(self):
        self.calls.append("after")


@pytest.mark.parametrize("name", SEARCH_OPTIMIZERS.names())
def test_every_optimizer_calls_the_step_hooks(name):
    """before_step once, every reported loss (train always; val when it has an architecture step), after_step
    once: a component attached through the hooks works with every registered optimizer."""
    mixer = "gumbel" if SEARCH_OPTIMIZERS.get(name).multi_path else "softmax"
    net = _nb201(mixer)
    opt = SEARCH_OPTIMIZERS.get(name)(net, device=torch.device("cpu"))
    rec = _Recorder()
    opt.attach(rec)
    opt.on_epoch_start(0, 2)
    opt.step(_batch(0), _batch(1) if opt.uses_arch_batches else None)
    assert rec.calls[0] == "before" and rec.calls[-1] == "after"
    assert rec.calls.count("before") == 1 and rec.calls.count("after") == 1
    assert "train" in rec.calls
    assert ("val" in rec.calls) == opt.uses_arch_batches


def test_before_step_hook_replaces_the_training_batch():
    net = _nb201("softmax")
    opt = SEARCH_OPTIMIZERS.get("single_level")(net, device=torch.device("cpu"))
    seen = []

    class Swap(StepHooks):
        def before_step(self, batch):
            return batch[0] * 0, batch[1]

    class Look(StepHooks):
        def on_loss(self, prefix, loss):
            seen.append(float(loss))

    opt.attach(Swap())
    opt.attach(Look())
    x, y = _batch(0)
    with torch.no_grad():
        expected = float(torch.nn.functional.cross_entropy(net(x * 0), y))
    opt.on_epoch_start(0, 1)
    opt.step((x, y), None)
    assert seen == pytest.approx([expected], rel=1e-5)


# ----------------------------------------------------------------------------------- declared option keys
@pytest.mark.parametrize("name", SEARCH_OPTIMIZERS.names())
def test_optimizer_yaml_keys_are_declared_by_the_optimizer(name):
    keys = set(OmegaConf.load(CONF_DIR / "optimizer" / f"{name}.yaml")) - {"name"}
    assert keys <= set(accepted_options(SEARCH_OPTIMIZERS.get(name)))


def test_method_bundles_leave_no_foreign_optimizer_keys():
    rome_bilevel = compose_cfg("search", ["method=rome", "optimizer=bilevel"])
    assert "num_paths" not in rome_bilevel.optimizer
    check_search_config(rome_bilevel)
    assert compose_cfg("search", ["method=rome"]).optimizer.num_paths == 7
    # the method's update order reaches only the optimizers that have one
    assert compose_cfg("search", ["method=gdas", "optimizer=multipath"]).optimizer.order == "weights_first"
    assert "order" not in compose_cfg("search", ["method=gdas", "optimizer=single_level"]).optimizer
    assert compose_cfg("search", ["method=darts", "space=darts"]).optimizer.order == "arch_first"


@pytest.mark.parametrize("override,message", [
    ("+optimizer.num_paths=3", "unknown key optimizer.num_paths; optimizer accepts: "),
    ("+method.mixer.tau_maxx=1", "unknown key method.mixer.tau_maxx (did you mean method.mixer.tau_max?)"),
    ("+selection.num_batchez=2", "unknown key selection.num_batchez"),
    ("+method.supernet.partial_channels=4", "unknown key nb201 supernet (space.supernet / method.supernet)"
                                            ".partial_channels"),
])
def test_unknown_option_keys_are_one_line_errors(override, message):
    method = "gdas" if "tau" in override else "darts"
    cfg = compose_cfg("search", [f"method={method}", "optimizer=bilevel", override])
    with pytest.raises(OptionError) as exc:
        check_search_config(cfg)
    assert message in str(exc.value) and "\n" not in str(exc.value)


def test_refused_combination_writes_nothing(tmp_path):
    proc = nas("search", "method=daas", "optimizer=single_level", f"out_root={tmp_path}", check=False)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and "Traceback" not in proc.stderr
    assert "component augment_policy" in lines[0] and "single_level computes none" in lines[0]
    assert not any(tmp_path.iterdir())


def test_strict_fair_without_paths_is_refused():
    cfg = compose_cfg("search", ["method=rome", "optimizer=bilevel", "method.mixer.strict_fair=true"])
    with pytest.raises(IncompatibleError, match="strict_fair=true schedules ops over the K paths"):
        check_search_config(cfg)


# ----------------------------------------------------------------------------------------- fixed path
@pytest.mark.parametrize("mixer", ["gumbel", "rome"])
def test_probe_evaluates_one_fixed_path(mixer):
    """A sampling supernet scores every intervention on the same (argmax) path: repeated evaluations are equal,
    whatever the RNG does in between, and masking the argmax op moves the edge to the next best op."""
    net = _nb201(mixer, eval_mode="sample", passthrough=True, **({"exclude_none": False} if mixer == "rome" else {}))
    with torch.no_grad():
        net.mixer.alphas["cell"].copy_(torch.arange(30.0).view(6, 5) % 7)
    batches = [_batch(3)]
    with SupernetProbe(net, batches) as probe:
        first = probe.evaluate()
        torch.manual_seed(123)
        assert probe.evaluate() == first
        masked = probe.evaluate(mask=[("cell", 3, int(net.mixer.alphas["cell"][3].argmax()))])  # edge 0 -> 3
        assert probe.evaluate() == first
    assert masked != first


def test_held_path_picks_the_next_best_op_when_the_best_is_masked():
    net = _nb201("gumbel")
    with torch.no_grad():
        net.mixer.alphas["cell"].copy_(torch.tensor([[0.0, 1, 5, 3, 2]] * 6))
    with net.mixer.held_path():
        assert [a for a in net.mixer.edge_weights("cell").active] == [[2]] * 6
        net.mixer.mask_op("cell", 1, 2)
        assert net.mixer.edge_weights("cell").active[1] == [3]
    net.mixer.clear_interventions()


# ------------------------------------------------------------------------------------ fp32 unrolled step
def test_unrolled_arch_gradient_ignores_autocast(monkeypatch):
    """DARTS-V2's finite difference runs in fp32 even where the optimizer's forward runs under bf16 autocast."""
    def grads(force_bf16: bool):
        net = _nb201("softmax")
        if force_bf16:
            monkeypatch.setattr(optimizer_base, "autocast",
                                lambda device: torch.autocast("cpu", dtype=torch.bfloat16))
        opt = SEARCH_OPTIMIZERS.get("bilevel_2nd")(net, device=torch.device("cpu"))
        opt.on_epoch_start(0, 1)
        g = opt.unrolled_arch_grad(_batch(0), _batch(1))
        monkeypatch.undo()
        return g

    fp32, forced = grads(False), grads(True)
    for a, b in zip(fp32, forced):
        assert torch.equal(a, b)
    with torch.autocast("cpu", dtype=torch.bfloat16):  # the forced autocast is real: it changes a forward
        net = _nb201("softmax")
        assert net(_batch(0)[0]).dtype == torch.bfloat16


def test_unrolled_step_on_a_single_path_supernet_gives_zero_for_unused_alphas():
    net = _nb201("gumbel")
    opt = SEARCH_OPTIMIZERS.get("bilevel_2nd")(net, device=torch.device("cpu"))
    opt.on_epoch_start(0, 1)
    (g,) = opt.unrolled_arch_grad(_batch(0), _batch(1))
    assert g.shape == (6, 5) and torch.isfinite(g).all()


# -------------------------------------------------------------------------------- PC-DARTS fixed edge
def test_fixed_edge_keeps_its_normalised_share_on_pc_darts():
    space = get_space("darts")
    mixer = MIXERS.get("pc_softmax")(space)
    with torch.no_grad():
        mixer.betas["normal"].copy_(torch.linspace(-1, 1, 14))
    share = node_softmax(mixer.betas["normal"].detach(), getattr(mixer, "_incoming_normal"))
    mixer.fix_edge("normal", 3, 2)
    w = mixer.edge_weights("normal")
    assert w.active[3] == [2] and float(w.weights[3, 2].detach()) == 1.0
    assert float(w.edge_scale[3].detach()) == pytest.approx(float(share[3])) and float(share[3]) < 0.5


def test_fixed_edge_switches_a_rome_gate_on():
    mixer = MIXERS.get("rome")(get_space("darts"))
    for _ in range(20):
        mixer.fix_edge("normal", 9, 3)
        assert float(mixer.edge_weights("normal").edge_scale[9].detach()) == 1.0


# --------------------------------------------------------------------------------- evaluate's space
def test_evaluate_applies_space_overrides_to_the_arch_space(tmp_path):
    res = result_line(nas("evaluate", "arch=darts_v2", "space.network.C=16", "dry_run=true", f"out_root={tmp_path}"))
    expected = count_parameters(get_space("darts").build_network(get_published("darts_v2"), 10, 3, C=16, layers=20,
                                                                 auxiliary=False))
    assert res["space"] == "darts" and res["params"] == expected and expected < 1_000_000


def test_evaluate_refuses_a_contradicting_space(tmp_path):
    proc = nas("evaluate", "arch=darts_v2", "space=nb201", "dry_run=true", f"out_root={tmp_path}", check=False)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and "is an architecture of space darts" in lines[0]


# ----------------------------------------------------------------------------------------- layers
def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


@pytest.mark.parametrize("layer,forbidden", [
    ("spaces", ("nascli.search", "nascli.commands", "nascli.cli")),
    ("search", ("nascli.commands", "nascli.cli")),
    ("data", ("nascli.search", "nascli.commands", "nascli.spaces")),
])
def test_imports_point_down(layer, forbidden):
    offenders = {str(p.relative_to(PACKAGE)): sorted(m for m in _imports(p) if m.startswith(forbidden))
                 for p in (PACKAGE / layer).rglob("*.py")}
    assert {k: v for k, v in offenders.items() if v} == {}


def test_search_and_derive_commands_do_not_import_each_other():
    assert "nascli.commands.search" not in _imports(PACKAGE / "commands" / "derive.py")
    assert "nascli.commands.derive" not in _imports(PACKAGE / "commands" / "search.py")

