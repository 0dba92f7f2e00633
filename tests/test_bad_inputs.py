"""Bad inputs to all four commands: exit code 2, exactly one stderr line, no traceback, nothing on
stdout, and a finished search run in the same out_root left byte-identical (no file added or changed).

Most cases run in-process through ``nascli.cli.main`` (one subprocess costs ~2 s); a representative
subset runs the real ``nas`` executable. Command lines use placeholders filled from the fixtures:
``{out}`` the out_root holding the finished run, ``{run}`` that run's folder, ``{files}`` a folder of
broken input files, ``{file}`` a plain file.
"""
from __future__ import annotations

import errno
import gzip
import io
import json
import os
import tarfile
from pathlib import Path

import pytest

from helpers import TINY_SEARCH, nas, result_line
from nascli.cli import main
from nascli.paths import CONF_DIR

TOP_PRESETS = sorted(p.stem for p in (CONF_DIR / "experiment").glob("*.yaml"))  # demo, fmnist_cpu, ...

NB201 = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"
DARTS_OK = {"schema": 1, "space": "darts",
            "normal": [["sep_conv_3x3", 0], ["sep_conv_3x3", 1]] * 4, "normal_concat": [2, 3, 4, 5],
            "reduce": [["max_pool_3x3", 0], ["skip_connect", 1]] * 4, "reduce_concat": [2, 3, 4, 5]}
BROKEN_JSON = {
    "not_json.json": "{space: nb201",
    "list.json": json.dumps([1, 2, 3]),
    "no_space.json": json.dumps({"arch": NB201}),
    "foo_space.json": json.dumps({"space": "foo", "arch": NB201}),
    "nb201_number.json": json.dumps({"space": "nb201", "arch": 5}),
    "nb201_bad_op.json": json.dumps({"space": "nb201", "arch": NB201.replace("skip_connect", "conv_9x9")}),
    "darts_cell_text.json": json.dumps({**DARTS_OK, "normal": "sep_conv_3x3"}),
    "darts_bad_op.json": json.dumps({**DARTS_OK, "reduce": [["conv_9x9", 0], ["skip_connect", 1]] * 4}),
    "darts_bad_concat.json": json.dumps({**DARTS_OK, "normal_concat": [2, 3, 9]}),
    "darts_bad_input.json": json.dumps({**DARTS_OK, "normal": [["sep_conv_3x3", 0], ["sep_conv_3x3", 7]] * 4}),
}


# ---------------------------------------------------------------------------------------- fixtures
def snapshot(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` with its bytes."""
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> dict:
    """A finished tiny search (made once), broken input files, and a snapshot of the out_root."""
    base = tmp_path_factory.mktemp("bad_inputs")
    out = base / "out"
    res = result_line(nas("search", *TINY_SEARCH, f"out_root={out}"))
    files = base / "files"
    for name, text in BROKEN_JSON.items():
        (files / "arch").mkdir(parents=True, exist_ok=True)
        (files / "arch" / name).write_text(text)
    (files / "no_tar").mkdir()
    (files / "no_tar" / "cifar-10-python.tar.gz").write_bytes(b"these bytes are not a tar archive\n" * 8)
    (files / "no_tar" / "cifar-100-python.tar.gz").write_bytes(b"PK\x03\x04 a zip header, not a tar\n")
    (files / "wrong_md5").mkdir()
    with tarfile.open(files / "wrong_md5" / "cifar-10-python.tar.gz", "w:gz") as tar:
        data = b"not the real batch"
        info = tarfile.TarInfo("cifar-10-batches-py/data_batch_1")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    (files / "fmnist").mkdir()
    for stem in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
                 "t10k-labels-idx1-ubyte"):
        (files / "fmnist" / f"{stem}.gz").write_bytes(b"\x00\x00\x08\x03 raw bytes named .gz")
    (files / "fmnist_cut").mkdir()
    for stem in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
                 "t10k-labels-idx1-ubyte"):
        (files / "fmnist_cut" / f"{stem}.gz").write_bytes(gzip.compress(b"\x00\x00\x08\x03" + bytes(64))[:20])
    (files / "inet").mkdir()
    (files / "inet" / "Imagenet16_train.zip").write_bytes(b"\x1f\x8b a gzip header, not a zip archive")
    (files / "empty_dir").mkdir()
    plain = base / "plain_file.txt"
    plain.write_text("a file, not a folder\n")
    return {"out": out, "run": Path(res["run_dir"]), "files": files, "file": plain, "before": snapshot(out)}


def fill(template: str, fx: dict) -> list[str]:
    return [part.format(**fx) for part in template.split()]


def run_in_process(capsys, argv: list[str]) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of ``nas <argv>`` run in this process."""
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    out, err = capsys.readouterr()
    return exit_info.value.code, out, err


def assert_refused(code: int, out: str, err: str, expected: str | tuple[str, ...], fx: dict) -> None:
    """Exit 2, one stderr line equal to ``error: <expected>`` (or holding every fragment of a tuple), no
    traceback, nothing on stdout, and the finished run untouched with no file added to out_root."""
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, err
    assert "Traceback" not in err
    assert len(lines) == 1, err
    if isinstance(expected, tuple):
        assert lines[0].startswith("error: ") and all(f.format(**fx) in lines[0] for f in expected), lines[0]
    else:
        assert lines[0] == "error: " + expected.format(**fx)
    assert out == ""
    assert snapshot(fx["out"]) == fx["before"]


# ------------------------------------------------------------------------------------------ cases
# (command line, the one error line without "error: "); out_root={out} is added unless given.
SEARCH = [
    # wrong types
    ("search search.epochs=abc", "search.epochs='abc' is not allowed; expected an integer >= 1"),
    ("search seed=abc", "seed='abc' is not allowed; expected an integer >= 0"),
    ("search seed=1.5", "seed=1.5 is not allowed; expected an integer >= 0"),
    ("search search.batch_size=true", "search.batch_size=true is not allowed; expected an integer >= 1"),
    ("search num_threads=two", "num_threads='two' is not allowed; expected an integer >= 1 or null"),
    ("search dataset.download=maybe", "dataset.download='maybe' is not allowed; expected true or false"),
    ("search space.supernet.C=[4,8]", "space.supernet.C=[4, 8] is not allowed; expected an integer >= 1"),
    # out of range
    ("search search.epochs=0", "search.epochs=0 is not allowed; expected an integer >= 1"),
    ("search search.epochs=-3", "search.epochs=-3 is not allowed; expected an integer >= 1"),
    ("search seed=-1", "seed=-1 is not allowed; expected an integer >= 0"),
    ("search search.batch_size=0", "search.batch_size=0 is not allowed; expected an integer >= 1"),
    ("search search.max_steps_per_epoch=0",
     "search.max_steps_per_epoch=0 is not allowed; expected an integer >= 1 or null"),
    ("search search.cutout=-1", "search.cutout=-1 is not allowed; expected an integer >= 0"),
    ("search search.checkpoint_every_steps=-5",
     "search.checkpoint_every_steps=-5 is not allowed; expected an integer >= 0"),
    ("search diagnostics.hessian_every=-1", "diagnostics.hessian_every=-1 is not allowed; expected an integer >= 0"),
    ("search space.supernet.C=0", "space.supernet.C=0 is not allowed; expected an integer >= 1"),
    ("search space.supernet.N=-2", "space.supernet.N=-2 is not allowed; expected an integer >= 1"),
    ("search space=darts space.supernet.layers=0", "space.supernet.layers=0 is not allowed; expected an integer >= 1"),
    ("search num_threads=0", "num_threads=0 is not allowed; expected an integer >= 1 or null"),
    ("search dataset.train_portion=0", "dataset.train_portion=0 is not allowed; expected a number > 0 and < 1"),
    ("search dataset.train_portion=1.5", "dataset.train_portion=1.5 is not allowed; expected a number > 0 and < 1"),
    ("search dataset.num_train=0", "dataset.num_train=0 is not allowed; expected an integer >= 1"),
    # choices
    ("search device=gpu", "device='gpu' is not allowed; expected one of auto, cpu, cuda, cuda:N"),
    ("search search.val_sampling=rand", "search.val_sampling='rand' is not allowed; expected one of shuffle, random"),
    ("search space.supernet.impl=slow", "space.supernet.impl='slow' is not allowed; expected one of fast, reference"),
    ("search experiment=nope", (f"unknown experiment 'nope'; valid choices: {', '.join(TOP_PRESETS)}, "
                                "paper/darts_c10_daas", "paper/nb201_darts_v1")),   # subfolder presets after the others
    # misspelled keys and misplaced flags
    ("search search.epochz=3", "unknown key 'search.epochz' for nas search; did you mean search.epochs?"),
    ("search serch.epochs=3", "unknown key 'serch.epochs' for nas search; did you mean search.epochs?"),
    ("search sed=1", "unknown key 'sed' for nas search; did you mean seed?"),
    ("search +search.epochz=3", "unknown key 'search.epochz' for nas search; did you mean search.epochs?"),
    ("search ++outroot={out}", "unknown key 'outroot' for nas search; did you mean out_root?"),
    ("search --epochs 3", "unknown flag '--epochs' for nas search; did you mean search.epochs=3? settings are "
                          "key=value overrides; flags: --help, --cfg job|hydra|all, --resolve, -m/--multirun, --info"),
    ("search --frobnicate", "unknown flag '--frobnicate' for nas search; settings are key=value overrides; flags: "
                            "--help, --cfg job|hydra|all, --resolve, -m/--multirun, --info"),
    ("search --cfg jobs", "flag --cfg needs job|hydra|all, got 'jobs'"),
    ("search ~search.epochs", "~search.epochs removes a setting nas search needs; set it instead (search.epochs=...)"),
    ("search ~seed", "~seed removes a setting nas search needs; set it instead (seed=...)"),
    ("search +seed=1", "+seed=1 adds seed, which nas search already has; change it without +: seed=1"),
    ("search darts", "bad argument 'darts' for nas search: overrides are key=value; did you mean method=darts?"),
    # sweeps
    ("search -m seed=0,abc", "seed='abc' is not allowed; expected an integer >= 0"),
    ("search -m search.epochs=2,0", "search.epochs=0 is not allowed; expected an integer >= 1"),
    ("search -m method=darts,gdas search.batch_size=0",
     "search.batch_size=0 is not allowed; expected an integer >= 1"),
    ("search seed=0,1", "seed=0,1 gives several values: add -m for one job per value (nas search -m seed=0,1), "
                        "or write a list: seed=[0,1]"),
    ("search seed=[", "cannot read override 'seed=[': no viable alternative at input '['"),
    # output folders
    ("search out_root={file}", "out_root={file} cannot hold run folders: it is a file, not a folder; "
                               "allowed: a writable folder (existing or creatable)"),
    ("search out_root={file}/runs", "out_root={file}/runs cannot hold run folders: {file} is a file, not a "
                                    "folder; allowed: a writable folder (existing or creatable)"),
    ("search out_root=/sys/nascli_out", "out_root=/sys/nascli_out cannot hold run folders: /sys is not writable "
                                        "(permission denied); allowed: a writable folder (existing or creatable)"),
]

DATA = [
    ("search dataset=cifar10 dataset.root={files}/no_tar dataset.download=false",
     "{files}/no_tar/cifar-10-python.tar.gz is not a tar archive; expected the official release (md5 "
     "c58f30108f718f92721af3b95e74349a); delete it to download again, or put the extracted cifar-10-batches-py "
     "in dataset.root"),
    ("search dataset=cifar100 dataset.root={files}/no_tar dataset.download=false",
     "{files}/no_tar/cifar-100-python.tar.gz is not a tar archive; expected the official release (md5 "
     "eb9058c3a382ffc7106e4002c42a8d85); delete it to download again, or put the extracted cifar-100-python in "
     "dataset.root"),
    ("search dataset=imagenet16_120 dataset.root={files}/inet",
     "{files}/inet/Imagenet16_train.zip is not a zip archive; expected the official Imagenet16_train.zip / "
     "Imagenet16_val.zip from image-net.org"),
    ("evaluate arch=" + NB201 + " dataset=fashion_mnist dataset.root={files}/fmnist dataset.download=false",
     "{files}/fmnist/train-images-idx3-ubyte.gz is not a gzip file (it starts with 00000803); expected a "
     "gzip-compressed IDX file"),
]

EVALUATE = [
    ("evaluate arch={files}/arch/nb201_number.json",
     "NB201 arch.json \"arch\" is 5; expected an NB201 string like "
     "'|nor_conv_3x3~0|+|nor_conv_3x3~0|skip_connect~1|+|...~0|...~1|...~2|'"),
    ("evaluate arch={files}/arch/nb201_bad_op.json",
     "unknown NB201 op 'conv_9x9'; valid ops: none, skip_connect, nor_conv_1x1, nor_conv_3x3, avg_pool_3x3"),
    ("evaluate arch={files}/arch/darts_cell_text.json",
     "normal cell must be a non-empty list of (op, input) pairs, two per node; got 'sep_conv_3x3'"),
    ("evaluate arch={files}/arch/darts_bad_op.json",
     "unknown op 'conv_9x9' in reduce cell (node 2); valid ops: none, max_pool_3x3, avg_pool_3x3, skip_connect, "
     "sep_conv_3x3, sep_conv_5x5, dil_conv_3x3, dil_conv_5x5"),
    ("evaluate arch={files}/arch/darts_bad_concat.json", "bad node 9 in normal_concat; valid nodes: 2, 3, 4, 5"),
    ("evaluate arch={files}/arch/darts_bad_input.json",
     "bad input 7 for normal node 2 (op 'sep_conv_3x3'); valid inputs: 0, 1"),
    ("evaluate arch=" + NB201 + " protocol.lr=0", "protocol.lr=0 is not allowed; expected a number > 0"),
    ("evaluate arch=" + NB201 + " protocol.lr=-0.1", "protocol.lr=-0.1 is not allowed; expected a number > 0"),
    ("evaluate arch=" + NB201 + " protocol.epochs=0", "protocol.epochs=0 is not allowed; expected an integer >= 1"),
    ("evaluate arch=" + NB201 + " protocol.batch_size=abc",
     "protocol.batch_size='abc' is not allowed; expected an integer >= 1"),
    ("evaluate arch=" + NB201 + " protocol.cutout=-16", "protocol.cutout=-16 is not allowed; expected an integer >= 0"),
    ("evaluate arch=" + NB201 + " protocol.weight_decay=-1",
     "protocol.weight_decay=-1 is not allowed; expected a number >= 0"),
    ("evaluate arch=" + NB201 + " protocol.momentum=1.5",
     "protocol.momentum=1.5 is not allowed; expected a number >= 0 and < 1"),
    ("evaluate arch=" + NB201 + " protocol.schedule=linear",
     "protocol.schedule='linear' is not allowed; expected one of cosine, step"),
    ("evaluate arch=" + NB201 + " space.network.C=0", "space.network.C=0 is not allowed; expected an integer >= 1"),
    ("evaluate arch=" + NB201 + " dry_run=yes", "dry_run='yes' is not allowed; expected true or false"),
    ("evaluate arch=" + NB201 + " seed=abc", "seed='abc' is not allowed; expected an integer >= 0"),
    ("evaluate arch=" + NB201 + " protocol.epochz=1",
     "unknown key 'protocol.epochz' for nas evaluate; did you mean protocol.epochs?"),
    ("evaluate arch=" + NB201 + " experiment=demo",
     "experiment=demo does not apply to nas evaluate; its config groups: dataset, logger, protocol, space, task"),
    ("evaluate arch=" + NB201 + " optimizer=bilevel",
     "optimizer=bilevel does not apply to nas evaluate; its config groups: dataset, logger, protocol, space, task"),
    ("evaluate arch=" + NB201 + " out_root={file}", "out_root={file} cannot hold run folders: it is a file, not a "
                                                    "folder; allowed: a writable folder (existing or creatable)"),
]

# arch files are read by the CLI before the schema runs (nascli.spaces.lookup): the line names the file and the
# problem; its exact wording belongs to that module
ARCH_FILES = [
    ("evaluate arch={files}/arch/missing.json dry_run=true", ("{files}/arch/missing.json", "not found")),
    ("evaluate arch={files}/arch/not_json.json", ("{files}/arch/not_json.json", "not valid JSON")),
    ("evaluate arch={files}/arch/list.json", ("{files}/arch/list.json", "list", "darts, darts_s1, darts_s2, darts_s3, darts_s4, nb201, sharp_darts, sharp_darts_choke, sharper_darts")),
    ("evaluate arch={files}/arch/no_space.json", ("{files}/arch/no_space.json", "space=None", "darts, darts_s1, darts_s2, darts_s3, darts_s4, nb201, sharp_darts, sharp_darts_choke, sharper_darts")),
    ("evaluate arch={files}/arch/foo_space.json", ("{files}/arch/foo_space.json", "space='foo'", "darts, darts_s1, darts_s2, darts_s3, darts_s4, nb201, sharp_darts, sharp_darts_choke, sharper_darts")),
]

DERIVE = [
    ("derive run={files}/missing_run", "run={files}/missing_run does not exist; allowed: a search run folder "
                                       "(holding config.yaml and checkpoint.pt)"),
    ("derive run={file}", "run={file} is a file; allowed: a search run folder (holding config.yaml and checkpoint.pt)"),
    ("derive run={files}/empty_dir", "run={files}/empty_dir is not a search run directory: no config.yaml there"),
    ("derive", "derive needs run=<search run directory> (the folder holding config.yaml and checkpoint.pt)"),
    ("derive run={run} selection=nope", "unknown selection 'nope'; valid choices: magnitude, ostr, perturbation"),
    ("derive run={run} seed=1", "unknown key 'seed' for nas derive; valid keys: device, num_threads, out_root, run, "
                                "selection"),
    ("derive run={run} num_threads=abc", "num_threads='abc' is not allowed; expected an integer >= 1 or null"),
    ("derive run={run} device=tpu", "device='tpu' is not allowed; expected one of auto, cpu, cuda, cuda:N"),
    ("derive run={run} --selection ostr", "unknown flag '--selection' for nas derive; did you mean selection=ostr? "
                                          "settings are key=value overrides; flags: --help, --cfg job|hydra|all, "
                                          "--resolve, -m/--multirun, --info"),
    ("derive run={run} method=darts",
     "method=darts does not apply to nas derive; its config groups: selection"),
]

BENCHMARK = [
    ("benchmark methods=darts", "methods='darts' is a single value where a list belongs; write methods=[darts]"),
    ("benchmark seeds=0", "seeds=0 is a single value where a list belongs; write seeds=[0]"),
    ("benchmark selections=ostr", "selections='ostr' is a single value where a list belongs; write selections=[ostr]"),
    ("benchmark seeds=[a]", "seeds=['a'] is not allowed; expected a non-empty list, each item an integer >= 0, "
                            "e.g. seeds=[0,1,2]"),
    ("benchmark seeds=[-1]", "seeds=[-1] is not allowed; expected a non-empty list, each item an integer >= 0, "
                             "e.g. seeds=[0,1,2]"),
    ("benchmark methods=[]", "methods=[] is not allowed; expected a non-empty list, each item a method name, "
                             "e.g. methods=[darts,darts_minus]"),
    ("benchmark methods=darts,gdas", "methods=darts,gdas gives several values: add -m for one job per value (nas "
                                     "benchmark -m methods=darts,gdas), or write a list: methods=[darts,gdas]"),
    ("benchmark jobs=0", "jobs=0 is not allowed; expected an integer >= 1"),
    ("benchmark baseline.samples=-1", "baseline.samples=-1 is not allowed; expected an integer >= 0"),
    ("benchmark evaluation=table", "evaluation='table' is not allowed; expected one of auto, train"),
    ("benchmark mode=run", "mode='run' is not allowed; expected one of study, aggregate"),
    ("benchmark plots=sometimes", "plots='sometimes' is not allowed; expected true or false"),
    ("benchmark protocol.lr=0", "protocol.lr=0 is not allowed; expected a number > 0"),
    ("benchmark space.supernet.C=0", "space.supernet.C=0 is not allowed; expected an integer >= 1"),
    ("benchmark methodz=[darts]", "unknown key 'methodz' for nas benchmark; did you mean methods?"),
    ("benchmark +baseline.sample=4", "unknown key 'baseline.sample' for nas benchmark; did you mean baseline.samples?"),
    ("benchmark method=darts", "method=darts does not apply to nas benchmark; its config groups: dataset, logger, "
                               "protocol, space, task"),
    ("benchmark --seeds 0", "unknown flag '--seeds' for nas benchmark; did you mean seeds=0? settings are key=value "
                            "overrides; flags: --help, --cfg job|hydra|all, --resolve, -m/--multirun, --info"),
    ("benchmark out_root={file}", "out_root={file} cannot hold run folders: it is a file, not a folder; allowed: a "
                                  "writable folder (existing or creatable)"),
]

ALL = SEARCH + DATA + EVALUATE + ARCH_FILES + DERIVE + BENCHMARK


def _argv(template: str, fx: dict) -> list[str]:
    argv = fill(template, fx)
    if not any(a.startswith(("out_root=", "++outroot=")) for a in argv):
        argv.append(f"out_root={fx['out']}")
    return argv


def test_enough_cases_across_all_commands():
    per_command = {c: sum(1 for line, _ in ALL if line.split()[0] == c) for c in ("search", "derive", "evaluate",
                                                                                   "benchmark")}
    assert sum(per_command.values()) >= 60 and min(per_command.values()) >= 10, per_command


@pytest.mark.parametrize("line, expected", ALL, ids=[line for line, _ in ALL])
def test_bad_input_is_one_line_and_writes_nothing(line, expected, finished, capsys):
    code, out, err = run_in_process(capsys, _argv(line, finished))
    assert_refused(code, out, err, expected, finished)


def test_misplaced_flag_before_the_command(finished, capsys):
    code, out, err = run_in_process(capsys, ["--cfg", "job", "search", "search.epochs=2"])
    assert_refused(code, out, err, "flag '--cfg' comes before the command; flags go after it: nas search --cfg job "
                                   "search.epochs=2; commands: search, derive, evaluate, benchmark, show", finished)


def test_wrong_md5_archive_is_refused_before_extraction(finished, capsys):
    root = finished["files"] / "wrong_md5"
    code, out, err = run_in_process(capsys, _argv(f"search dataset=cifar10 dataset.root={root} "
                                                  "dataset.download=false", finished))
    assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert err.startswith(f"error: {root}/cifar-10-python.tar.gz has md5 ")
    assert "expected c58f30108f718f92721af3b95e74349a (the official release)" in err
    assert sorted(p.name for p in root.iterdir()) == ["cifar-10-python.tar.gz"]  # nothing extracted
    assert snapshot(finished["out"]) == finished["before"]


def test_truncated_gzip_is_one_line(finished, capsys):
    root = finished["files"] / "fmnist_cut"
    code, out, err = run_in_process(capsys, _argv(f"evaluate arch={NB201} dataset=fashion_mnist dataset.root={root} "
                                                  "dataset.download=false", finished))
    assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert err.startswith(f"error: {root}/train-images-idx3-ubyte.gz: broken gzip file (")
    assert snapshot(finished["out"]) == finished["before"]


def test_nearly_full_disk_is_refused_up_front(finished, capsys, monkeypatch):
    from collections import namedtuple

    import nascli.config.checks as checks

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(checks.shutil, "disk_usage", lambda path: usage(1 << 30, (1 << 30) - (2 << 20), 2 << 20))
    code, out, err = run_in_process(capsys, _argv(f"evaluate arch={NB201} dry_run=true", finished))
    monkeypatch.undo()
    out_root = finished["out"]
    assert_refused(code, out, err, f"out_root={out_root} cannot hold run folders: the disk holding {out_root} has "
                                   "2 MiB free, need at least 16 MiB; allowed: a writable folder (existing or "
                                   "creatable)", finished)


def test_disk_full_at_the_first_write_is_one_line(finished, capsys, monkeypatch):
    """The disk fills up between the check and the first write: the write's ENOSPC is one line."""
    def full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", full)
    code, out, err = run_in_process(capsys, _argv(f"evaluate arch={NB201} dry_run=true", finished))
    monkeypatch.undo()
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and "Traceback" not in err and out == ""
    assert lines[0] == (f"error: cannot write under out_root={finished['out']}: the disk is full; allowed: a writable "
                        "folder with free space")
    assert snapshot(finished["out"]) == finished["before"]  # the temp file of the failed write is gone too


# ------------------------------------------------------------------------- the real executable
SUBPROCESS = [
    ("search search.epochs=abc", "search.epochs='abc' is not allowed; expected an integer >= 1"),
    ("search search.epochz=3", "unknown key 'search.epochz' for nas search; did you mean search.epochs?"),
    ("search -m seed=0,abc", "seed='abc' is not allowed; expected an integer >= 0"),
    ("search out_root={file}", "out_root={file} cannot hold run folders: it is a file, not a folder; allowed: a "
                               "writable folder (existing or creatable)"),
    ("evaluate arch={files}/arch/list.json", ("{files}/arch/list.json", "list", "darts, darts_s1, darts_s2, darts_s3, darts_s4, nb201, sharp_darts, sharp_darts_choke, sharper_darts")),
    ("derive run={files}/missing_run", "run={files}/missing_run does not exist; allowed: a search run folder "
                                       "(holding config.yaml and checkpoint.pt)"),
    ("benchmark methods=darts", "methods='darts' is a single value where a list belongs; write methods=[darts]"),
]


@pytest.mark.parametrize("line, expected", SUBPROCESS, ids=[line for line, _ in SUBPROCESS])
def test_bad_input_through_the_nas_executable(line, expected, finished):
    proc = nas(*_argv(line, finished), check=False)
    assert_refused(proc.returncode, proc.stdout, proc.stderr, expected, finished)


def test_misplaced_flag_through_the_nas_executable(finished):
    proc = nas("--cfg", "job", "search", check=False)
    assert_refused(proc.returncode, proc.stdout, proc.stderr, "flag '--cfg' comes before the command; flags go after "
                   "it: nas search --cfg job; commands: search, derive, evaluate, benchmark, show", finished)
