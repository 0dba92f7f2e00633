"""``task=speech_recognition`` (issue 18): CTC loss and greedy decoding by hand, CER/WER by hand, the task's
options and refusals, and through the commands: a search on the espeak-ng spoken digits and on an
AISHELL-1-layout folder, ``nas evaluate arch=conformer_baseline`` (dry run and one short training)."""
from __future__ import annotations

import json
import math
import shutil
import sys
from pathlib import Path

import pytest
import torch

from helpers import compose_cfg, nas, result_line
from nascli.data.speech.batch import CTCOutput, CTCTargets
from nascli.data.speech.metrics import error_rates, greedy_decode
from nascli.errors import NasError
from nascli.tasks import TASKS, task_of

sys.path.insert(0, str(Path(__file__).parent))
from test_speech_data import TINY_DIGITS, write_aishell_layout  # noqa: E402

NEEDS_ESPEAK = pytest.mark.skipif(shutil.which("espeak-ng") is None,
                                  reason="espeak-ng is not installed (apt-get install espeak-ng; make test installs it "
                                         "when run as root)")
DIGITS = ["dataset.train_voices=[en-us+m1,en-gb+f2]", "dataset.test_voices=[en-us+f3]", "dataset.per_voice=3",
          f"dataset.max_digits={TINY_DIGITS['max_digits']}"]
TINY = ["task=speech_recognition", "task.num_mel_bins=20", "search.epochs=1", "search.max_steps_per_epoch=1",
        "search.batch_size=2", "space.supernet.d_model=8", "space.supernet.blocks=1", "num_threads=1"]
SHORT = ["protocol.epochs=1", "protocol.max_steps_per_epoch=2", "protocol.batch_size=2", "space.network.d_model=8",
         "space.network.heads=2", "space.network.blocks=1", "task.num_mel_bins=20", "num_threads=1"]


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("NASCLI_CACHE_DIR", str(tmp_path / "cache"))


def out(log_probs: list[list[list[float]]], lengths: list[int]) -> CTCOutput:
    return CTCOutput(torch.tensor(log_probs), torch.tensor(lengths))


# ------------------------------------------------------------------ decoding, loss, metrics by hand
def test_greedy_decode_by_hand():
    """Best path a a _ a b b | padding -> repeats merged, blanks dropped: a a b; lengths cut the padding."""
    ids = [[1, 1, 0, 1, 2, 2, 2], [0, 2, 2, 0, 0, 1, 1]]
    lp = torch.full((2, 7, 3), -5.0)
    for b, row in enumerate(ids):
        for t, k in enumerate(row):
            lp[b, t, k] = -0.1
    assert greedy_decode(CTCOutput(lp, torch.tensor([6, 4]))) == [[1, 1, 2], [2]]
    assert greedy_decode(CTCOutput(lp, torch.tensor([0, 7]))) == [[], [2, 1]]


def test_ctc_loss_and_score_by_hand():
    """T=2 frames, blank + one token a, label [a]: p(a) = p1(a) p2(a) + p1(a) p2(_) + p1(_) p2(a)."""
    from nascli.tasks.speech_recognition import CTC

    p1, p2 = (0.6, 0.4), (0.3, 0.7)  # (blank, a) per frame
    expected = -math.log(p1[1] * p2[1] + p1[1] * p2[0] + p1[0] * p2[1])
    o = out([[[math.log(v) for v in p1], [math.log(v) for v in p2]]], [2])
    y = CTCTargets(torch.tensor([[1]]), torch.tensor([1]))
    assert math.isclose(float(CTC.loss(o, y)), expected, rel_tol=1e-5)
    # a label longer than the frames cannot be aligned: zero_infinity makes it 0, the mean is over utterances
    both = CTCOutput(torch.cat([o.log_probs, o.log_probs]), torch.tensor([2, 2]))
    y2 = CTCTargets(torch.tensor([[1, 0, 0], [1, 1, 1]]), torch.tensor([1, 3]))
    assert math.isclose(float(CTC.loss(both, y2)), expected / 2, rel_tol=1e-5)
    assert math.isclose(float(CTC.loss(both, y2, reduction="sum")), expected, rel_tol=1e-5)
    assert math.isclose(float(CTC.score_sum(o, y)), -expected, rel_tol=1e-5)  # log p per character, summed


def test_error_rates_by_hand():
    # CER: abc->abd 1 substitution, de->'' 2 deletions: 3 / 5 characters; WER: 'a b'->'a' 1, 'c'->'' 1: 2 / 3
    r = error_rates(["abc", "de"], ["abd", ""])
    assert math.isclose(r["cer"], 60.0) and math.isclose(r["wer"], 100.0)
    r = error_rates(["a b", "c"], ["a", ""])
    assert math.isclose(r["wer"], 200.0 / 3) and math.isclose(r["cer"], 100.0 * 3 / 4)


# ------------------------------------------------------------------ the task's interface and refusals
def test_task_options_and_refusals():
    from omegaconf import OmegaConf

    task = task_of(OmegaConf.create({"task": {"name": "speech_recognition", "num_mel_bins": 40}}))
    assert task.metric == "cer" and task.higher_is_better is False
    assert set(task.dataset_names()) == {"aishell1", "kaldi_dir", "librispeech", "spoken_digits"}
    cls = TASKS.get("speech_recognition")
    with pytest.raises(NasError, match="task.cmvn=cepstral is not a CMVN mode; valid choices: utterance, global, none"):
        cls(OmegaConf.create({"cmvn": "cepstral"}))
    with pytest.raises(NasError, match="drop policy="):
        task.training(None, make_stream=object())


def test_wrong_space_and_dataset_refused_in_one_line(tmp_path):
    from nascli.commands.search import search

    with pytest.raises(NasError, match=r"space=nb201 builds networks for task=classification, not "
                                       r"task=speech_recognition; spaces for task=speech_recognition: conformer"):
        search(compose_cfg("search", ["task=speech_recognition", "space=nb201", f"out_root={tmp_path}"]))
    with pytest.raises(NasError, match=r"dataset=cifar10 is not a task=speech_recognition dataset; valid choices: "
                                       r"aishell1, kaldi_dir, librispeech, spoken_digits"):
        search(compose_cfg("search", ["task=speech_recognition", "dataset=cifar10", f"out_root={tmp_path}"]))


def test_image_augmentation_method_refused_in_one_line(tmp_path):
    from nascli.commands.search import search

    with pytest.raises(NasError, match=r"method daas \(component augment_policy\) searches an image augmentation "
                                       r"policy, so it serves task=classification only; task=speech_recognition"):
        search(compose_cfg("search", ["task=speech_recognition", "method=daas", f"out_root={tmp_path}"]))


# ------------------------------------------------------------------ through the commands
def _search_and_evaluate(tmp_path, data: list[str]) -> tuple[dict, dict, dict]:
    from nascli.commands.evaluate import evaluate
    from nascli.commands.search import search

    o = [f"out_root={tmp_path / 'out'}"]
    res = search(compose_cfg("search", [*TINY, *data, *o]))
    assert res["status"] == "ok" and res["space"] == "conformer"
    ev = ["task=speech_recognition", *SHORT, *data, *o]
    dry = evaluate(compose_cfg("evaluate", [*ev, "arch=conformer_baseline", "dry_run=true"]))
    derived = evaluate(compose_cfg("evaluate", [*ev, f"arch='{res['arch_path']}'"]))  # the path holds '='
    return res, dry, derived


@pytest.mark.slow
@NEEDS_ESPEAK
def test_search_and_evaluate_on_spoken_digits(tmp_path):
    """The offline default (slow: synthesis and 1-2 s utterances; the AISHELL-layout test below is the fast
    path of the same commands)."""
    res, dry, derived = _search_and_evaluate(tmp_path, [*DIGITS, f"dataset.root={tmp_path / 'digits'}"])
    assert res["dataset"] == "spoken_digits" and res["images"] == {"weights": 3, "arch": 3}
    assert dry["status"] == "dry_run" and dry["params"] > 0 and dry["flops"] > 0 and dry["flops_frames"] == 1000
    assert derived["status"] == "ok" and 0.0 <= derived["cer"] and math.isfinite(derived["wer"])
    assert derived["vocab"][0] == "<blank>" and " " in derived["vocab"] and derived["utterances"] == {"test": 3}
    saved = json.loads((Path(derived["run_dir"]) / "result.json").read_text())
    assert saved["cer"] == derived["cer"]


def test_search_and_derive_on_aishell_layout(tmp_path):
    from nascli.commands.derive import derive
    from nascli.commands.search import search

    root = write_aishell_layout(tmp_path / "aishell")
    o = [f"out_root={tmp_path / 'out'}"]
    res = search(compose_cfg("search", [*TINY, "dataset=aishell1", f"dataset.root={root}", *o]))
    assert res["status"] == "ok" and res["dataset"] == "aishell1" and res["images"] == {"weights": 2, "arch": 2}
    # nas derive on the saved supernet: magnitude gives the search's own arch again
    again = derive(compose_cfg("derive", [f"run='{Path(res['arch_path']).parent}'", "selection=magnitude", *o]))
    assert again["arch"] == res["arch"]
    vocab = json.loads((Path(res["run_dir"]) / "vocab.json").read_text(encoding="utf-8"))
    assert vocab["blank"] == 0 and vocab["tokens"][0] == "<blank>" and "楼" in vocab["tokens"]


@pytest.mark.slow
@pytest.mark.parametrize("selection", ["ostr", "perturbation"])
def test_probing_selections_derive_a_speech_search(tmp_path, selection):
    """The probing criteria score the speech supernet through the task's CTC loss and batch score."""
    from nascli.commands.derive import derive
    from nascli.commands.search import search

    root = write_aishell_layout(tmp_path / "aishell")
    o = [f"out_root={tmp_path / 'out'}"]
    res = search(compose_cfg("search", [*TINY, "dataset=aishell1", f"dataset.root={root}", *o]))
    got = derive(compose_cfg("derive", [f"run='{Path(res['arch_path']).parent}'", f"selection={selection}", *o]))
    assert (Path(res["run_dir"]) / f"arch_{selection}.json").is_file() and got["arch"].count("~") == 10


def test_evaluate_baseline_on_aishell_layout(tmp_path):
    from nascli.commands.evaluate import evaluate

    root = write_aishell_layout(tmp_path / "aishell")
    ev = ["task=speech_recognition", "arch=conformer_baseline", *SHORT, "dataset=aishell1", f"dataset.root={root}",
          f"out_root={tmp_path / 'out'}"]
    dry = evaluate(compose_cfg("evaluate", [*ev, "dry_run=true"]))
    assert dry["status"] == "dry_run" and dry["params"] > 0 and dry["flops"] > 0 and dry["flops_frames"] == 1000
    trained = evaluate(compose_cfg("evaluate", ev))
    assert trained["status"] == "ok" and trained["test_split"] == "aishell1-test" and trained["cer"] >= 0.0
    assert trained["params"] == dry["params"] and "楼" in trained["vocab"] and trained["vocab"][0] == "<blank>"
    saved = json.loads((Path(trained["run_dir"]) / "result.json").read_text())
    assert saved["cer"] == trained["cer"]
    vocab = json.loads((Path(trained["run_dir"]) / "vocab.json").read_text(encoding="utf-8"))
    assert vocab["tokens"] == trained["vocab"]


@pytest.mark.slow
@NEEDS_ESPEAK
def test_cli_search_and_evaluate(tmp_path):
    """The commands a user types, as subprocesses: nas search and nas evaluate (dry run and a short training)."""
    o = [f"out_root={tmp_path / 'out'}", f"dataset.root={tmp_path / 'digits'}", *DIGITS]
    res = result_line(nas("search", "space=conformer", *TINY, *o, cwd=tmp_path))
    assert res["status"] == "ok" and Path(res["arch_path"]).is_file()
    ev = ["task=speech_recognition", *SHORT, *o]
    dry = result_line(nas("evaluate", "arch=conformer_baseline", "dry_run=true", *ev, cwd=tmp_path))
    assert dry["status"] == "dry_run" and dry["space"] == "conformer"
    trained = result_line(nas("evaluate", "arch=conformer_baseline", *ev, cwd=tmp_path))
    assert trained["status"] == "ok" and trained["cer"] >= 0.0
    bad = nas("evaluate", "arch=conformer_baseline", "task=speech_recognition", "dataset=aishell1",
              f"dataset.root={tmp_path / 'nothing'}", *SHORT[:-1], f"out_root={tmp_path / 'out'}", cwd=tmp_path,
              check=False)
    assert bad.returncode != 0 and "aishell_transcript_v0.8.txt" in bad.stderr.strip().splitlines()[-1]
