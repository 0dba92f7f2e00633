"""The config schema accepts every shipped config and good command lines, and its rules say what they allow;
presets work with and without ``+``."""
from __future__ import annotations

import math

import pytest
from omegaconf import OmegaConf

from helpers import compose_cfg
from nascli.cli import main
from nascli.config import preflight, validate_config
from nascli.config.checks import writable_folder_problem
from nascli.config.validate import command_groups
from nascli.config.rules import Choice, Flag, Int, ListOf, Number, Text
from nascli.config.schema import SCHEMAS
from nascli.config.validate import ConfigError, unknown_key_message
from nascli.paths import CONF_DIR


def choices(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))


SHIPPED = [(command, group, choice) for command in SCHEMAS for group in command_groups(command)
           for choice in choices(group)]


@pytest.mark.parametrize("command, group, choice", SHIPPED, ids=[f"{c}-{g}={v}" for c, g, v in SHIPPED])
def test_every_shipped_choice_passes_the_schema(command, group, choice):
    validate_config(command, compose_cfg(command, [f"{group}={choice}"]))


@pytest.mark.parametrize("method", choices("method"))
@pytest.mark.parametrize("space", choices("space"))
def test_every_method_on_every_space_passes_the_schema(method, space):
    """Every pair passes, except a method with per-space recipes on a space it has none for: one line naming
    the spaces it runs on."""
    cfg = compose_cfg("search", [f"method={method}", f"space={space}"])
    recipes = OmegaConf.to_container(cfg.method, resolve=False).get("space_defaults")
    if recipes is not None and space not in recipes:
        with pytest.raises(ConfigError, match=rf"^method={method} has no recipe for space={space}; "
                                              rf"spaces it runs on: .*\bnb201\b"):
            validate_config("search", cfg)
        return
    validate_config("search", cfg)


def test_schema_names_only_keys_the_shipped_configs_have():
    """A rule for a key that no config file of its command defines would never run (a typo in the schema)."""
    from nascli.config.validate import shipped_keys

    unused = sorted(f"{command}:{key}" for command, schema in SCHEMAS.items() for key in schema.rules
                    if key not in shipped_keys(command))
    assert unused == []


@pytest.mark.parametrize("args", [
    ["seed=3", "search.max_steps_per_epoch=null", "num_threads=null", "device=cpu"],
    ["-m", "seed=0,1,2", "method=darts,gdas", "search.epochs=1,2"],
    ["-m", "seed=range(0,3)"],
    ["space=darts", "space.supernet.layers=5", "dataset.train_portion=0.8"],
    ["+experiment=demo"],
    ["experiment=fmnist_cpu", "--cfg", "job"],
    ["++search.epochs=2", "hydra.job.chdir=false"],
])
def test_good_command_lines_pass_preflight(args, tmp_path):
    assert preflight("search", [*args, f"out_root={tmp_path / 'out'}"])[:len(args)] == [
        a.removeprefix("+") if a.startswith("+experiment") else a for a in args]
    assert not (tmp_path / "out").exists()  # checking writes nothing


def test_benchmark_lists_and_evaluate_protocol_pass(tmp_path):
    preflight("benchmark", ["methods=[darts,gdas]", "seeds=[0,1]", "selections=[magnitude]", f"out_root={tmp_path}"])
    preflight("evaluate", ["arch='|none~0|+|none~0|none~1|+|none~0|none~1|none~2|'", "protocol=darts_600e",
                           "protocol.lr=0.1", f"out_root={tmp_path}"])


@pytest.mark.parametrize("rule, good, bad", [
    (Int(low=1), [1, 10**9], [0, -1, True, 1.0, "1", None]),
    (Int(low=1, nullable=True), [None, 2], [0, False]),
    (Number(low=0, low_open=True), [1e-9, 3, 0.5], [0, -1, math.nan, math.inf, "0.1", False]),
    (Number(low=0, high=1, high_open=True), [0, 0.99], [1, 1.5, -0.1]),
    (Flag(), [True, False], ["true", 1, None]),
    (Choice(choices=("a", "b")), ["a"], ["c", "A", 1]),
    (Text(), ["x"], ["", "  ", 3, None]),
    (ListOf(item=Int(low=0), nonempty=True), [[0], [1, 2]], [[], 0, [-1], ["a"], "0,1"]),
])
def test_rules_accept_and_refuse(rule, good, bad):
    assert all(rule.accepts(v) for v in good)
    assert not any(rule.accepts(v) for v in bad)


def test_rule_words():
    assert Int(low=1, nullable=True).allowed() == "an integer >= 1 or null"
    assert Number(low=0, high=1, low_open=True, high_open=True).allowed() == "a number > 0 and < 1"
    assert (ListOf(item=Int(low=0), example="seeds=[0,1]").allowed()
            == "a list, each item an integer >= 0, e.g. seeds=[0,1]")
    assert (ListOf(item=Text()).hint("methods", "darts")
            == "is a single value where a list belongs; write methods=[darts]")
    assert ListOf(item=Text()).hint("methods", ["darts"]) == ""


def test_unknown_key_without_a_near_one_lists_the_valid_keys():
    msg = unknown_key_message("search.zzz", ["search.epochs", "search.batch_size", "seed"], "search")
    assert msg == "unknown key 'search.zzz' for nas search; valid keys under search: batch_size, epochs"


def test_closed_section_refuses_an_added_key():
    cfg = compose_cfg("search", ["+search.epochz=3"])
    with pytest.raises(ConfigError,
                       match=r"^unknown key 'search.epochz' for nas search; did you mean search.epochs\?$"):
        validate_config("search", cfg, outside=False)


def test_open_sections_are_left_to_their_owners():
    """method/optimizer/selection options are checked against the registered classes, not here."""
    validate_config("search", compose_cfg("search", ["++optimizer.some_option=1", "++method.mixer.x=2"]),
                    outside=False)


def test_creatable_out_root_is_fine_and_not_created(tmp_path):
    assert writable_folder_problem(tmp_path / "a" / "b") is None
    assert list(tmp_path.iterdir()) == []


def _shown(capsys, *args: str) -> str:
    main(["search", *args, "--cfg", "job"])
    return capsys.readouterr().out


def test_preset_with_and_without_plus_is_the_same(capsys):
    plain, plus = _shown(capsys, "experiment=demo"), _shown(capsys, "+experiment=demo")
    assert plain == plus
    cfg = OmegaConf.create(plain)
    assert cfg.search.epochs == 8 and cfg.space.supernet.C == 8 and cfg.space.supernet.N == 2


def test_fmnist_preset_selects_its_dataset_and_the_command_line_still_wins(capsys):
    assert OmegaConf.create(_shown(capsys, "experiment=fmnist_cpu")).dataset.name == "fashion_mnist"
    assert OmegaConf.create(_shown(capsys, "+experiment=fmnist_cpu")).dataset.name == "fashion_mnist"
    assert OmegaConf.create(_shown(capsys, "experiment=fmnist_cpu", "dataset=cifar10")).dataset.name == "cifar10"


def test_a_key_added_to_a_shipped_yaml_is_not_refused_for_lack_of_a_rule():
    """Closed sections refuse only keys that no shipped config file of the command has."""
    from nascli.config.validate import shipped_keys

    assert {"search.epochs", "diagnostics.hessian_every", "seed", "space.supernet.C"} <= shipped_keys("search")
    assert "arch" not in shipped_keys("search")  # protocol is: search composes it as null, task=super_resolution sets it
    with pytest.raises(ConfigError, match=r"^unknown key 'arch' for nas search; valid keys: components, dataset, "
                                          r"device, diagnostics, logger, method, num_threads, optimizer, out_root, paper, "
                                          r"search, seed, seeds, seeds_mode, selection, space, task$"):
        validate_config("search", compose_cfg("search", ["+arch=x"]), outside=False)


def test_write_problems_are_told_apart_from_read_problems(tmp_path):
    import errno

    from nascli.config.checks import write_problem

    cfg = OmegaConf.create({"out_root": str(tmp_path)})
    full = OSError(errno.ENOSPC, "No space left on device")
    assert write_problem(full, cfg) == (f"cannot write under out_root={tmp_path}: the disk is full; allowed: a "
                                        "writable folder with free space")
    inside = PermissionError(errno.EACCES, "Permission denied", str(tmp_path / "search" / "x.json"))
    assert write_problem(inside, cfg) == (f"cannot write under out_root={tmp_path} ({tmp_path / 'search' / 'x.json'}):"
                                          " permission denied; allowed: a writable folder with free space")
    elsewhere = PermissionError(errno.EACCES, "Permission denied", "/etc/some_dataset_file")
    assert write_problem(elsewhere, cfg) is None  # not ours to rephrase: the traceback shows the real cause
    assert write_problem(FileNotFoundError(errno.ENOENT, "gone", str(tmp_path / "x")), cfg) is None
