"""Every registered method x optimizer x selection x space runs or is refused in one line.

The matrix is generated from the registries and the config groups (a new method yaml, optimizer, selection
or space is covered without editing this file): each combination is composed with Hydra's compose API on
tiny shapes, runs one search step and derives an architecture with every selection, or is refused by
``check_search_config`` with one of the documented reasons (README "Which combinations run").
"""
from __future__ import annotations

import itertools

import pytest
import torch
from omegaconf import OmegaConf

from nascli.commands.run import seed_everything
from nascli.errors import IncompatibleError
from nascli.paths import CONF_DIR
from nascli.search.builder import build_search
from nascli.search.composition import check_search_config
from nascli.search.optimizers import SEARCH_OPTIMIZERS
from nascli.search.options import construct
from nascli.search.selection import SELECTIONS
from nascli.spaces import space_names
from helpers import compose_cfg

METHODS = sorted(p.stem for p in (CONF_DIR / "method").glob("*.yaml"))
OPTIMIZERS = SEARCH_OPTIMIZERS.names()
SELECTIONS_ALL = SELECTIONS.names()
# Pinned: the R-DARTS variants darts_s1..s4 have their own method matrix (tests/test_rdarts_spaces.py)
SPACES = ["darts", "nb201"]
OWN_MATRIX_SPACES = {"darts_s1", "darts_s2", "darts_s3", "darts_s4",
                     "sharp_darts", "sharp_darts_choke", "sharper_darts",  # sharpDARTS: tests/test_sharp_darts.py
                     "sisr_trilevel",  # a super-resolution space (task=super_resolution): tests/test_sisr_space.py, test_task_*
                     "conformer"}  # a speech space (task=speech_recognition): tests/test_conformer_space.py

TINY = {
    "nb201": ["space.supernet.C=4", "space.supernet.N=1"],
    "darts": ["space.supernet.C=12", "space.supernet.layers=3"],  # 12: every partial-channel K (PC-DARTS 4, DrNAS 6 -> 4) divides it
}
DATA = ["dataset=synthetic", "dataset.num_train=64", "dataset.num_test=32", "dataset.image_size=8",
        "search.batch_size=8", "search.epochs=2", "search.max_steps_per_epoch=1", "num_threads=1",
        "optimizer.arch_start_epoch=0",  # no warm-up: the one step updates the architecture too
        "++optimizer.warmup_epochs=0"]  # nor an lr warm-up (method=sharp_darts: 5 epochs, longer than this run)
PROBE_OPTIONS = {"ostr": {"num_batches": 1}, "perturbation": {"num_batches": 1}}

# The documented refusals (README "Which combinations run"): (method, optimizer) -> the reason's key words.
SAMPLING_METHODS = {"gdas", "rome", "daas"}
REFUSED = {(m, "multipath"): "accumulates K sampled paths" for m in METHODS if m not in SAMPLING_METHODS}
REFUSED[("daas", "single_level")] = "needs a validation loss"
# SDARTS / MS-DARTS train w at perturbed mixing weights in a weight step of its own (weight-step hooks)
PERTURBING_METHODS = {"sdarts_rs", "sdarts_adv", "ms_darts"}
REFUSED.update({(m, o): "no separate weight step" for m in PERTURBING_METHODS for o in OPTIMIZERS
                if not SEARCH_OPTIMIZERS.get(o).weight_step_hooks})
REFUSED[("daas", "rarts")] = "trains on the validation split"  # RARTS's L_v is y's, not held out
REFUSED[("drnas", "rarts")] = "widens the weights in place"  # RARTS's twin y would keep the narrow shapes


# Methods with a search flow of their own (GM-NAS's split tree, method.flow): the matrix runs their base search, with
# a split inside the two tiny epochs so that the flow's composition rule accepts the config.
FLOW_METHODS = {m for m in METHODS if OmegaConf.load(CONF_DIR / "method" / f"{m}.yaml").method.get("flow")}
# A split tree selects inside each leaf's op groups; the probing selections score a cell type's candidate ops on
# every edge, so they are refused for it: (method, selection) -> the reason's key words.
SELECTION_REFUSED: dict[tuple[str, str], str] = {}  # (method, selection) pairs refused whatever the optimizer


def _cfg(method: str, optimizer: str, space: str, selection: str = "magnitude"):
    flow = ["method.flow.split_epochs=[1]"] if method in FLOW_METHODS else []
    return compose_cfg("search", [f"method={method}", f"optimizer={optimizer}", f"space={space}",
                                  f"selection={selection}", *TINY.get(space, []), *DATA, *flow])


def test_matrix_is_generated_from_the_registries():
    assert {"darts", "darts_minus", "single_darts", "pc_darts", "gdas", "rome", "daas"} <= set(METHODS)
    assert OPTIMIZERS == sorted(p.stem for p in (CONF_DIR / "optimizer").glob("*.yaml"))
    assert SELECTIONS_ALL == sorted(p.stem for p in (CONF_DIR / "selection").glob("*.yaml"))
    assert sorted([*SPACES, *OWN_MATRIX_SPACES]) == space_names() == sorted(p.stem for p in (CONF_DIR / "space").glob("*.yaml"))
    assert set(TINY) == set(SPACES), "give a new space its tiny sizes here"


def _one_step(method: str, optimizer: str, space: str):
    """Build the search, check the config, run one step; assert that both
    the weights and the architecture parameters moved."""
    cfg = _cfg(method, optimizer, space)
    seed_everything(0)
    setup = build_search(cfg, torch.device("cpu"))
    before = [p.detach().clone() for p in setup.supernet.arch_parameters()]
    weights_before = [p.detach().clone() for p in setup.supernet.weight_parameters()]
    engine = setup.engine
    engine.start_epoch(0)
    engine.run_epoch()
    moved = [not torch.equal(a, b) for a, b in zip(before, setup.supernet.arch_parameters())]
    assert any(moved), f"{method} x {optimizer} on {space}: no architecture parameter changed in a step"
    assert any(not torch.equal(a, b) for a, b in zip(weights_before, setup.supernet.weight_parameters()))
    return setup


def _derive(setup, selection: str) -> None:
    """Derive with ``selection``: a valid arch of the space; the architecture parameters untouched."""
    arch_params = [p.detach().clone() for p in setup.supernet.arch_parameters()]
    result = construct(SELECTIONS.get(selection), dict(PROBE_OPTIONS.get(selection, {})), "selection",
                       setup.selection_context())
    text = result.arch.to_string()
    assert setup.space.parse_arch(text).to_string() == text
    assert all(torch.equal(a, b) for a, b in zip(arch_params, setup.supernet.arch_parameters()))


def _check_refusal(method: str, optimizer: str, space: str) -> None:
    with pytest.raises(IncompatibleError) as exc:
        check_search_config(_cfg(method, optimizer, space))
    msg = str(exc.value)
    assert "\n" not in msg and msg.startswith("cannot compose this search:") and REFUSED[(method, optimizer)] in msg
    assert method in msg or optimizer in msg


def _step_and_derive_or_refused(method: str, optimizer: str, space: str, selections: list[str]) -> None:
    """One search step and a derivation with each of ``selections``, or the documented refusal."""
    if (method, optimizer) in REFUSED:
        _check_refusal(method, optimizer, space)
        return
    setup = _one_step(method, optimizer, space)
    for selection in selections:
        _derive(setup, selection)


@pytest.mark.parametrize("space", SPACES)
@pytest.mark.parametrize("optimizer", OPTIMIZERS)
@pytest.mark.parametrize("method", METHODS)
def test_method_optimizer_space_steps_and_derives(method, optimizer, space):
    """Every method x optimizer x space: one search step and a magnitude derivation, or the refusal."""
    _step_and_derive_or_refused(method, optimizer, space, ["magnitude"])


def _default_optimizer(method: str) -> str:
    return str(compose_cfg("search", [f"method={method}"]).optimizer.name)


def _selection_params():
    """method x selection x space on the method's own optimizer. Probing selections on the DARTS space with a
    mixer that computes every op (hundreds of full supernet forwards) are ``slow``; sampling methods probe
    one held path per edge and stay in the default run."""
    out = []
    for method, selection, space in itertools.product(METHODS, SELECTIONS_ALL, SPACES):
        heavy = space == "darts" and selection != "magnitude" and method not in SAMPLING_METHODS
        out.append(pytest.param(method, selection, space, marks=[pytest.mark.slow] if heavy else []))
    return out


@pytest.mark.parametrize("method,selection,space", _selection_params())
def test_every_selection_derives_from_every_method(method, selection, space):
    _derive(_one_step(method, _default_optimizer(method), space), selection)


@pytest.mark.slow
@pytest.mark.parametrize("space", SPACES)
@pytest.mark.parametrize("optimizer", OPTIMIZERS)
@pytest.mark.parametrize("method", METHODS)
def test_full_matrix(method, optimizer, space):
    """The whole method x optimizer x selection x space matrix, every selection on every trained supernet."""
    _step_and_derive_or_refused(method, optimizer, space, SELECTIONS_ALL)


def test_warm_up_longer_than_the_run_is_refused():
    cfg = compose_cfg("search", ["method=pc_darts", "search.epochs=10"])
    with pytest.raises(IncompatibleError) as exc:
        check_search_config(cfg)
    assert str(exc.value) == (
        "cannot compose this search: optimizer.arch_start_epoch=15 is not below search.epochs=10: the architecture "
        "would never be updated (method pc_darts's warm-up is longer than the run); lower optimizer.arch_start_epoch "
        "or raise search.epochs")
    check_search_config(compose_cfg("search", ["method=pc_darts", "search.epochs=16"]))


def test_matrix_counts():
    """318 of the 420 combinations run; 102 are refused (documented in the README)."""
    total = len(METHODS) * len(OPTIMIZERS) * len(SELECTIONS_ALL) * len(SPACES)
    refused = len(SPACES) * sum((m, o) in REFUSED or (m, s) in SELECTION_REFUSED
                                for m, o, s in itertools.product(METHODS, OPTIMIZERS, SELECTIONS_ALL))
    assert (total, refused) == (420, 102)
    for (method, selection), words in SELECTION_REFUSED.items():
        for optimizer in [o for o in OPTIMIZERS if (method, o) not in REFUSED]:
            with pytest.raises(IncompatibleError) as exc:
                check_search_config(_cfg(method, optimizer, "nb201", selection))
            assert "\n" not in str(exc.value) and words in str(exc.value) and method in str(exc.value)
    for method, optimizer in itertools.product(METHODS, OPTIMIZERS):
        cfg = _cfg(method, optimizer, "nb201")
        if (method, optimizer) in REFUSED:
            with pytest.raises(IncompatibleError):
                check_search_config(cfg)
        else:
            check_search_config(cfg)
