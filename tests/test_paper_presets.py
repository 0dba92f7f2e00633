"""Paper presets (`+experiment=paper/<name>`, docs/PAPERS.md): each composes to exactly the paper's search
configuration as METHODS.md gives it, records a published row that exists, and passes every check a search
runs. A changed default in a method, optimizer, space or search yaml that a preset inherits fails here."""
from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import pytest
import yaml
from omegaconf import DictConfig, OmegaConf

from helpers import nas
from nascli.bench import published as pub
from nascli.compose_api import fresh_compose
from nascli.config import preflight
from nascli.config.validate import ConfigError, validate_config
from nascli.paths import CONF_DIR
from nascli.search.composition import check_search_config

PRESET_DIR = CONF_DIR / "experiment" / "paper"
PRESETS = sorted(p.stem for p in PRESET_DIR.glob("*.yaml"))
DOCS = Path(__file__).resolve().parents[1] / "docs" / "PAPERS.md"

# ----------------------------------------------------------------------------- what METHODS.md gives
NB201_NET = {"space.name": "nb201", "space.supernet.C": 16, "space.supernet.N": 5}        # METHODS.md 0.4
DARTS_NET = {"space.name": "darts", "space.supernet.C": 16, "space.supernet.layers": 8}   # METHODS.md 0.1, 1.1
NB201_DATA = {"dataset.name": "cifar10", "dataset.split": "nb201"}                          # METHODS.md 0.4
DARTS_DATA = {"dataset.name": "cifar10", "dataset.split": "balanced",                       # METHODS.md 1.1, 11.2:
              "dataset.train_portion": 0.5}                                                # train_portion 0.5, fixed
# METHODS.md 1.2, 10 (DARTS-V1/V2 AutoDL row; GDAS row): SGD-nesterov 0.025 -> 0.001, 0.9, 5e-4, clip 5
AUTODL_W = {"optimizer.lr": 0.025, "optimizer.lr_min": 0.001, "optimizer.momentum": 0.9, "optimizer.nesterov": True,
            "optimizer.weight_decay": 5.0e-4, "optimizer.grad_clip": 5.0}
# METHODS.md 1.1, 10 (quark0 row): SGD 0.025 -> 0.001 cosine, 0.9, 3e-4, clip 5, no nesterov
QUARK0_W = {**AUTODL_W, "optimizer.nesterov": False, "optimizer.weight_decay": 3.0e-4}
# METHODS.md 6, 10 (PC-DARTS row): SGD 0.1 -> 0, 0.9, 3e-4, clip 5
PC_W = {**QUARK0_W, "optimizer.lr": 0.1, "optimizer.lr_min": 0.0}
# METHODS.md 1.1, 10: Adam 3e-4, (0.5, 0.999), 1e-3; alpha trained from epoch 0
DARTS_A = {"optimizer.arch_lr": 3.0e-4, "optimizer.arch_betas": [0.5, 0.999], "optimizer.arch_weight_decay": 1.0e-3,
           "optimizer.arch_start_epoch": 0}
# METHODS.md 6, 10: Adam 6e-4, alpha frozen during epochs 0-14
PC_A = {**DARTS_A, "optimizer.arch_lr": 6.0e-4, "optimizer.arch_start_epoch": 15}
GDAS_TAU = {"method.mixer.tau_max": 10.0, "method.mixer.tau_min": 0.1}                      # METHODS.md 5.1


def axes(method: str, optimizer: str, selection: str = "magnitude") -> dict[str, Any]:
    return {"method.name": method, "optimizer.name": optimizer, "selection.name": selection}


def run(epochs: int, batch: int, val_sampling: str | None = None) -> dict[str, Any]:
    out = {"search.epochs": epochs, "search.batch_size": batch}
    if val_sampling is not None:  # METHODS.md 11.1: next(iter()) = random, a cycling iterator = shuffle
        out["search.val_sampling"] = val_sampling
    return out


def seeds(seed: int, listed: list[int] | None) -> dict[str, Any]:
    return {"seed": seed, "paper.seeds": listed}


NB201_PROTOCOL = {"paper.protocol": "nb201_200e", "paper.evaluate": []}                     # METHODS.md 0.5
DARTS_PROTOCOL = {"paper.protocol": "darts_600e", "paper.evaluate": ["protocol=darts_600e"]}  # METHODS.md 0.2

EXPECTED: dict[str, dict[str, Any]] = {
    # METHODS.md 1.2: V1 = first order, weights then alpha; BN=1 in the README commands
    "nb201_darts_v1": {**axes("darts", "bilevel"), **NB201_NET, **NB201_DATA, **run(50, 64, "random"), **AUTODL_W,
                       **DARTS_A, "optimizer.order": "weights_first", "method.supernet.track_running_stats": True,
                       **seeds(0, None), **NB201_PROTOCOL},
    # METHODS.md 1.1, 1.2: V2 = unrolled alpha step first, eps = 0.01 / ||v||
    "nb201_darts_v2": {**axes("darts", "bilevel_2nd"), **NB201_NET, **NB201_DATA, **run(50, 64, "random"),
                       **AUTODL_W, **DARTS_A, "optimizer.order": "arch_first", "optimizer.fd_radius": 0.01,
                       "method.supernet.track_running_stats": True, **seeds(0, None), **NB201_PROTOCOL},
    # METHODS.md 5.1, 10: 250 epochs, batch 64 on NB201, tau 10 -> 0.1, weights first, zero hard weights added
    "nb201_gdas": {**axes("gdas", "bilevel"), **NB201_NET, **NB201_DATA, **run(250, 64, "random"), **AUTODL_W,
                   **DARTS_A, **GDAS_TAU, "optimizer.order": "weights_first", "method.mixer.passthrough": True,
                   **seeds(0, None), **NB201_PROTOCOL},
    # METHODS.md 6, 10: PC-DARTS's own search settings (the NB201 reproduction's are not given)
    "nb201_pc_darts": {**axes("pc_darts", "bilevel"), **NB201_NET, **NB201_DATA, **run(50, 256, "random"), **PC_W,
                       **PC_A, "optimizer.order": "arch_first", "method.edge_parts[0].k": 4, **seeds(0, None),
                       **NB201_PROTOCOL},
    # METHODS.md 2: the NB201 port uses the DARTS-V1 NB201 settings; beta 1.0 linear; seeds 0..3
    "nb201_darts_minus": {**axes("darts_minus", "bilevel"), **NB201_NET, **NB201_DATA, **run(50, 64, "random"),
                          **AUTODL_W, **DARTS_A, "optimizer.order": "weights_first",
                          "method.components[0].schedule": "linear", "method.components[0].beta0": 1.0,
                          **seeds(0, [0, 1, 2, 3]), **NB201_PROTOCOL},
    # METHODS.md 3, 10: every setting unknown -> the host (DARTS-V1 NB201) defaults
    "nb201_single_darts": {**axes("single_darts", "single_level"), **NB201_NET, **NB201_DATA, **run(50, 64),
                           **AUTODL_W, **DARTS_A, "optimizer.data": "train", **seeds(0, None), **NB201_PROTOCOL,
                           "paper.value": None},
    # METHODS.md 8, 10 (DrNAS NB201 row): 100 epochs, batch 64, SGD 0.025 -> 0.001 wd 3e-4, Adam 3e-4, from epoch 0,
    # 201-space/train_search.py: no partial channels
    "nb201_drnas": {**axes("drnas", "bilevel"), **NB201_NET, **NB201_DATA, **run(100, 64, "random"), **QUARK0_W,
                    **DARTS_A, "optimizer.order": "arch_first", "method.edge_parts[0].k": 1, **seeds(0, None),
                    **NB201_PROTOCOL},
    # METHODS.md 1.1, 10 (quark0): first order, alpha first, seed 2
    "darts_c10_darts_1st": {**axes("darts", "bilevel"), **DARTS_NET, **DARTS_DATA, **run(50, 64, "random"),
                            **QUARK0_W, **DARTS_A, "optimizer.order": "arch_first", **seeds(2, [2]), **DARTS_PROTOCOL},
    "darts_c10_darts_2nd": {**axes("darts", "bilevel_2nd"), **DARTS_NET, **DARTS_DATA, **run(50, 64, "random"),
                            **QUARK0_W, **DARTS_A, "optimizer.order": "arch_first", "optimizer.fd_radius": 0.01,
                            **seeds(2, [2]), **DARTS_PROTOCOL},
    # METHODS.md 6, 10: batch 256, K=4, alpha frozen 0-14; evaluation drop-path 0.3
    "darts_c10_pc_darts": {**axes("pc_darts", "bilevel"), **DARTS_NET, **DARTS_DATA, **run(50, 256, "random"), **PC_W,
                           **PC_A, "optimizer.order": "arch_first", "method.edge_parts[0].k": 4, **seeds(2, None),
                           "paper.protocol": "darts_600e",
                           "paper.evaluate": ["protocol=darts_600e", "protocol.drop_path_prob=0.3"]},
    # METHODS.md 2, 10: first order, cycling alpha iterator, beta 1.0 linear, seeds 0..3
    "darts_c10_darts_minus": {**axes("darts_minus", "bilevel"), **DARTS_NET, **DARTS_DATA, **run(50, 64, "shuffle"),
                              **QUARK0_W, **DARTS_A, "optimizer.order": "arch_first",
                              "method.components[0].schedule": "linear", "method.components[0].beta0": 1.0,
                              **seeds(0, [0, 1, 2, 3]), **DARTS_PROTOCOL},
    # METHODS.md 5.1, 10: C=16 N=2 -> 6 cells, 250 epochs, batch 256, pair derivation, no zero hard weights
    "darts_c10_gdas": {**axes("gdas", "bilevel"), **DARTS_NET, "space.supernet.layers": 6, **DARTS_DATA,
                       **run(250, 256, "random"), **AUTODL_W, **DARTS_A, **GDAS_TAU, "optimizer.order": "weights_first",
                       "method.derive_rule": "pairs", "method.mixer.passthrough": False, **seeds(0, None),
                       **DARTS_PROTOCOL},
    # METHODS.md 5.2: K = 7, Gumbel-top-2 edges, no none; the rest GDAS's (assumption)
    "darts_c10_rome": {**axes("rome", "multipath"), **DARTS_NET, **DARTS_DATA, **run(50, 64, "random"), **AUTODL_W,
                       **DARTS_A, **GDAS_TAU, "optimizer.num_paths": 7, "method.mixer.in_degree": 2,
                       "method.mixer.exclude_none": True, "optimizer.order": "weights_first", **seeds(0, None),
                       **DARTS_PROTOCOL},
    # METHODS.md 4: DARTS supernet training unchanged, selection by operation strength
    "darts_c10_ostr": {**axes("darts", "bilevel", "ostr"), **DARTS_NET, **DARTS_DATA, **run(50, 64, "random"),
                       **QUARK0_W, **DARTS_A, "optimizer.order": "arch_first", **seeds(2, None), **DARTS_PROTOCOL},
    # METHODS.md 7: GDAS on the DARTS space (host defaults: 6 cells, 250 epochs, batch 256) + augmentation policy
    "darts_c10_daas": {**axes("daas", "bilevel"), **DARTS_NET, "space.supernet.layers": 6, **DARTS_DATA,
                       **run(250, 256, "random"), **AUTODL_W, **DARTS_A, **GDAS_TAU,
                       "optimizer.order": "weights_first", "method.components[0].name": "augment_policy",
                       **seeds(0, None), **DARTS_PROTOCOL},
    # METHODS.md 8, 10 (SDARTS row): as DARTS, eps 0.03 -> 0.3; ADV = PGD-7
    "darts_c10_sdarts_rs": {**axes("sdarts_rs", "bilevel"), **DARTS_NET, **DARTS_DATA, **run(50, 64, "random"),
                            **QUARK0_W, **DARTS_A, "optimizer.order": "arch_first",
                            "method.components[0].epsilon": 0.3, "method.components[0].epsilon_start": 0.03,
                            **seeds(2, None), **DARTS_PROTOCOL},
    "darts_c10_sdarts_adv": {**axes("sdarts_adv", "bilevel"), **DARTS_NET, **DARTS_DATA, **run(50, 64, "random"),
                             **QUARK0_W, **DARTS_A, "optimizer.order": "arch_first",
                             "method.components[0].epsilon": 0.3, "method.components[0].epsilon_start": 0.03,
                             "method.components[0].steps": 7, **seeds(2, None), **DARTS_PROTOCOL},
    # METHODS.md 8, 10 (MS-DARTS row): 40 epochs, alpha from epoch 5, eps 0.25, h = 1, N = 3, T = 2
    "darts_c10_ms_darts": {**axes("ms_darts", "bilevel"), **DARTS_NET, **DARTS_DATA, **run(40, 64, "random"),
                           **QUARK0_W, **DARTS_A, "optimizer.arch_start_epoch": 5, "optimizer.order": "arch_first",
                           "method.components[0].epsilon": 0.25, "method.components[0].bandwidth": 1.0,
                           "method.components[0].samples": 3, "method.components[0].iterations": 2,
                           **seeds(2, None), **DARTS_PROTOCOL, "paper.value": None},
    # METHODS.md 8, 10 (DrNAS DARTS row): 36 x 20 search net, 25 + 25 epochs, SGD 0.1 -> 0, Adam 6e-4,
    # alpha from epoch 10, K 6
    "darts_c10_drnas": {**axes("drnas", "bilevel"), **DARTS_NET, "space.supernet.C": 36, "space.supernet.layers": 20,
                        **DARTS_DATA, **run(50, 64, "random"), **PC_W, **DARTS_A, "optimizer.arch_lr": 6.0e-4,
                        "optimizer.arch_start_epoch": 10, "optimizer.order": "arch_first", "method.edge_parts[0].k": 6,
                        **seeds(2, None), **DARTS_PROTOCOL},
    # METHODS.md 8: no code, settings unknown -> DARTS host defaults
    "darts_c10_rarts": {**axes("darts", "rarts"), **DARTS_NET, **DARTS_DATA, **run(50, 64, "random"), **QUARK0_W,
                        **DARTS_A, **seeds(2, None), **DARTS_PROTOCOL},
}


# ----------------------------------------------------------------------------- helpers
def preset_file(name: str) -> dict[str, Any]:
    return yaml.safe_load((PRESET_DIR / f"{name}.yaml").read_text())


def missing_yamls(name: str) -> list[str]:
    """Group files a preset selects that are not in conf/ yet (methods other engineers are adding)."""
    out = []
    for entry in preset_file(name).get("defaults", []):
        for key, value in (entry.items() if isinstance(entry, dict) else ()):
            group = key.removeprefix("override").strip().lstrip("/")
            if not (CONF_DIR / group / f"{value}.yaml").is_file():
                out.append(f"{group}/{value}.yaml")
    return out


@functools.cache
def composed(name: str, extra: tuple[str, ...] = ()) -> DictConfig:
    with fresh_compose() as compose:
        return compose("search", overrides=[f"experiment=paper/{name}", *extra])


def select(cfg: DictConfig, key: str) -> Any:
    value = OmegaConf.select(cfg, key, default="<absent>")
    return OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value


def mismatches(cfg: DictConfig, expected: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """key -> (composed, expected) for every pinned value the config does not hold exactly."""
    return {k: (select(cfg, k), v) for k, v in expected.items()
            if not (select(cfg, k) == v and type(select(cfg, k)) is type(v))}


def needs_yamls(name: str) -> None:
    missing = missing_yamls(name)
    assert not missing, f"{name} names {', '.join(missing)}, which is not in nascli/conf"


# ----------------------------------------------------------------------------- tests
def test_every_preset_has_a_pinned_table():
    assert PRESETS and sorted(EXPECTED) == PRESETS


@pytest.mark.parametrize("name", PRESETS)
def test_preset_composes_to_the_papers_values(name):
    needs_yamls(name)
    cfg = composed(name)
    assert mismatches(cfg, EXPECTED[name]) == {}
    check_search_config(cfg)                        # option keys and composition rules: it can run
    validate_config("search", cfg, outside=False)   # the schema, the closed `paper` section included


def test_the_paper_record_does_not_change_the_run_directory():
    from nascli.rundir import semantic_config

    cfg = composed("nb201_darts_v1")
    bare = OmegaConf.create(OmegaConf.to_container(cfg, resolve=True))
    del bare["paper"]
    assert "paper" in cfg and semantic_config(cfg) == semantic_config(bare)


@pytest.mark.parametrize("name", PRESETS)
def test_paper_record_is_a_published_row_of_its_own_method(name):
    record = preset_file(name)["paper"]
    pset = pub.published_set(record["table"])
    row = pset.row(record["row"])
    assert row is not None, f"{name}: {record['table']} has no row {record['row']!r}"
    assert pub.trust(record["source"]) == pub.trust(row.source)
    if record["metric"] == "test_error":
        assert isinstance(row, pub.ErrorRow) and row.dataset == record["dataset"]
        figure = row.error
        assert (record.get("params_m"), record.get("cost_gpu_days")) == (row.params_m, row.cost_gpu_days)
        assert record.get("stat", "mean") == row.stat
    else:
        figure = row.get(record["dataset"], "test")
    assert (record["value"], record["std"]) == (figure if figure is not None else (None, None))
    needs_yamls(name)
    cfg = composed(name)  # the preset's own axes are matched to exactly this row of the space
    rows = pub.published_for(cfg.method.name, cfg.optimizer.name, cfg.selection.name, str(cfg.space.name))
    assert (pset.key, row.name) in [(s.key, r.name) for s, r in rows]


def test_gdas_darts_space_network_is_c16_n2():
    # METHODS.md 5.1: C=16, N=2 -> 6 cells [C, C, 2C(red), 2C, 4C(red), 4C]
    from nascli.spaces.darts.supernet import reduction_layers

    for name in ("darts_c10_gdas", "darts_c10_daas"):
        cfg = composed(name)
        assert (cfg.space.supernet.C, cfg.space.supernet.layers) == (16, 6)
        assert reduction_layers(cfg.space.supernet.layers) == (2, 4)


def test_a_drifted_default_is_caught():
    # what a changed default in method/gdas.yaml (epochs) or space/nb201.yaml (weight decay) would compose to
    drifted = composed("nb201_gdas", ("search.epochs=200", "optimizer.weight_decay=3e-4"))
    assert mismatches(drifted, EXPECTED["nb201_gdas"]) == {"search.epochs": (200, 250),
                                                           "optimizer.weight_decay": (3e-4, 5e-4)}
    # a value that equals but has another type (1 vs True) is a mismatch too
    assert mismatches(composed("nb201_darts_v1"), {"method.supernet.track_running_stats": 1})


def test_paper_section_is_closed_and_other_unknown_keys_still_refused():
    with pytest.raises(ConfigError, match=r"unknown key 'paper.vlaue' for nas search; did you mean paper.value\?"):
        preflight("search", ["+experiment=paper/nb201_darts_v1", "+paper.vlaue=1"])
    with pytest.raises(ConfigError, match=r"unknown key 'papr'"):
        preflight("search", ["+experiment=paper/nb201_darts_v1", "+papr.row=x"])
    with pytest.raises(ConfigError, match=r"paper.metric='accuracy' is not allowed; expected one of test_accuracy"):
        preflight("search", ["+experiment=paper/nb201_darts_v1", "paper.metric=accuracy"])


def test_cli_prints_the_preset_config():
    proc = nas("search", "+experiment=paper/nb201_darts_v2", "dataset=cifar10", "--cfg", "job")
    cfg = OmegaConf.create(proc.stdout)
    assert mismatches(cfg, EXPECTED["nb201_darts_v2"]) == {}
    assert cfg.paper.row == "DARTS-V2" and cfg.paper.table == "nb201_iclr20"


def test_docs_list_every_preset_with_its_command():
    text = DOCS.read_text()
    for name in PRESETS:
        assert f"+experiment=paper/{name}" in text, f"docs/PAPERS.md does not show {name}"


# Tiny shapes that every preset's method accepts (partial channels K up to 6 need C divisible by 6 and 4).
TINY_RUN = {"nb201": ["space.supernet.C=12", "space.supernet.N=1", "dataset.split=balanced"],
            "darts": ["space.supernet.C=12", "space.supernet.layers=3"]}


@pytest.mark.slow
@pytest.mark.parametrize("name", PRESETS)
def test_preset_runs_one_tiny_search(name, tmp_path, capsys):
    """`nas search +experiment=paper/<name>` on tiny shapes and synthetic data: the preset's own method,
    optimizer, schedule and selection run a step, derive an arch and write result.json."""
    import json

    from nascli.cli import main

    needs_yamls(name)
    space = EXPECTED[name]["space.name"]
    main(["search", f"+experiment=paper/{name}", "dataset=synthetic", *TINY_RUN[space], "dataset.num_train=96",
          "dataset.num_test=16", "dataset.image_size=8", "search.batch_size=8", "search.epochs=2",
          "search.max_steps_per_epoch=1", "optimizer.arch_start_epoch=0", "num_threads=1", f"out_root={tmp_path}"])
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["status"] == "ok" and result["method"] == EXPECTED[name]["method.name"]
    assert result["optimizer"] == EXPECTED[name]["optimizer.name"] and result["seed"] == EXPECTED[name]["seed"]
