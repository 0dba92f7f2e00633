"""Speech data (issue 18): audio readers, the AISHELL-1 / LibriSpeech / Kaldi layouts written here as tiny
real WAV/FLAC files, log-Mel features, CMVN, SpecAugment, the resumable stream, the vocabulary, and the
espeak-ng spoken digits."""
from __future__ import annotations

import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from nascli.data.speech import load_readers
from nascli.data.speech.audio import read_audio, read_flac, read_wav, write_wav
from nascli.data.speech.features import FbankOptions, fbank, global_stats, normalise, utterance_cmvn
from nascli.data.speech.specaugment import POLICIES, SpecAugment, _spans, policy, time_warp
from nascli.data.speech.split import SpeechSplit, iterate_speech_eval
from nascli.data.speech.stream import SpeechBatchStream
from nascli.data.speech.vocab import BLANK_TOKEN, Vocabulary
from nascli.errors import DataMissingError, NasError

RATE = 16000


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("NASCLI_CACHE_DIR", str(tmp_path / "cache"))


def tone(seconds: float, freq: float = 440.0, seed: int = 0) -> np.ndarray:
    """A sine tone with a little noise on the 16-bit scale."""
    t = np.arange(int(seconds * RATE)) / RATE
    noise = np.random.default_rng(seed).normal(0, 200, t.shape)
    return (8000 * np.sin(2 * math.pi * freq * t) + noise).astype(np.float32)


# ------------------------------------------------------------------ layouts (shared with test_speech_task.py)
AISHELL_TEXT = {"BAC009S0002W0122": "而 对 楼市 成交", "BAC009S0002W0123": "抑制 作用", "BAC009S0003W0121": "最 大 的",
                "BAC009S0003W0122": "限 购",
                "BAC009S0764W0121": "甚至 出现 交易", "BAC009S0764W0122": "几乎 停滞 的 情况"}
AISHELL_PARTS = {"train": {"S0002": ["BAC009S0002W0122", "BAC009S0002W0123"], "S0003": ["BAC009S0003W0121", "BAC009S0003W0122"]},
                 "test": {"S0764": ["BAC009S0764W0121", "BAC009S0764W0122"]}}


def write_aishell_layout(root: Path, seconds: float = 0.4) -> Path:
    """``<root>/data_aishell/{wav/<part>/<spk>/<utt>.wav, transcript/aishell_transcript_v0.8.txt}`` (plus one
    wav without a transcript line, which the reader skips)."""
    base = root / "data_aishell"
    for part, speakers in AISHELL_PARTS.items():
        for spk, utts in speakers.items():
            (base / "wav" / part / spk).mkdir(parents=True, exist_ok=True)
            for k, utt in enumerate(utts):
                write_wav(base / "wav" / part / spk / f"{utt}.wav", tone(seconds, 300 + 100 * k, k), RATE)
    write_wav(base / "wav" / "train" / "S0002" / "BAC009S0002W9999.wav", tone(seconds), RATE)
    (base / "transcript").mkdir(parents=True)
    lines = [f"{u} {t}" for u, t in AISHELL_TEXT.items()]
    (base / "transcript" / "aishell_transcript_v0.8.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root


def write_librispeech_layout(root: Path) -> Path:
    """``<root>/LibriSpeech/{train-clean-100,test-clean}/<spk>/<chapter>/...flac + .trans.txt``."""
    sf = pytest.importorskip("soundfile")
    texts = {"train-clean-100": {"19-198": ["NORTHANGER ABBEY", "IT'S A TALE"]},
             "test-clean": {"1089-134686": ["HE HOPED THERE"]}}
    for subset, chapters in texts.items():
        for sc, lines in chapters.items():
            spk, chapter = sc.split("-")
            folder = root / "LibriSpeech" / subset / spk / chapter
            folder.mkdir(parents=True)
            trans = []
            for k, line in enumerate(lines):
                utt = f"{sc}-{k:04d}"
                sf.write(str(folder / f"{utt}.flac"), np.round(tone(0.3, 500, k)).astype(np.int16), RATE,
                         subtype="PCM_16")
                trans.append(f"{utt} {line}")
            (folder / f"{sc}.trans.txt").write_text("\n".join(trans) + "\n")
    return root


def write_kaldi_dir(folder: Path, texts: dict[str, str], pipe: bool = False) -> Path:
    """``<folder>/{wav.scp,text,utt2spk}`` with relative wav paths (or one pipe entry)."""
    (folder / "wav").mkdir(parents=True)
    scp = []
    for k, utt in enumerate(sorted(texts)):
        write_wav(folder / "wav" / f"{utt}.wav", tone(0.3, 400, k), RATE)
        scp.append(f"{utt} wav/{utt}.wav")
    if pipe:
        scp[0] = f"{sorted(texts)[0]} sox in.flac -t wav - |"
    (folder / "wav.scp").write_text("\n".join(scp) + "\n")
    (folder / "text").write_text("".join(f"{u} {t}\n" for u, t in sorted(texts.items())))
    (folder / "utt2spk").write_text("".join(f"{u} {u.split('_')[0]}\n" for u in sorted(texts)))
    return folder


def reader(name: str, **cfg):
    node = OmegaConf.load(Path(__file__).parents[1] / "nascli" / "conf" / "dataset" / f"{name}.yaml")
    node = OmegaConf.merge(node, cfg)
    return load_readers().get(name)(node, FbankOptions(num_mel_bins=23), "utterance")


# ------------------------------------------------------------------ audio
def test_wav_roundtrip_and_flac(tmp_path):
    x = np.array([0, 1000, -32768, 32767, -5], dtype=np.float32)
    write_wav(tmp_path / "a.wav", x, 8000)
    y, rate = read_wav(tmp_path / "a.wav")
    assert rate == 8000 and y.dtype == np.float32 and y.tolist() == x.tolist()
    sf = pytest.importorskip("soundfile")
    sf.write(str(tmp_path / "a.flac"), x.astype(np.int16), 8000, subtype="PCM_16")
    z, rate = read_flac(tmp_path / "a.flac")
    assert rate == 8000 and z.tolist() == x.tolist()
    with pytest.raises(NasError, match=r"'\.mp3' is not supported; valid choices: \.wav, \.flac"):
        read_audio(tmp_path / "a.mp3")


# ------------------------------------------------------------------ readers on the real layouts
def test_aishell_layout(tmp_path):
    r = reader("aishell1", root=str(write_aishell_layout(tmp_path)))
    train = r.utterances("train")
    assert [u.id for u in train] == ["BAC009S0002W0122", "BAC009S0002W0123", "BAC009S0003W0121",
                                     "BAC009S0003W0122"]  # W9999 has no transcript line
    assert train[0].text == "而对楼市成交" and train[0].speaker == "S0002"
    assert [u.id for u in r.utterances("test")] == ["BAC009S0764W0121", "BAC009S0764W0122"]
    info = r.info()
    assert info.vocab.tokens == [BLANK_TOKEN, *sorted(set("而对楼市成交抑制作用最大的限购"))]
    tr, te = r.eval_splits()
    assert len(tr) == 4 and len(te) == 2 and tr.features[0].shape == (1 + (6400 - 400) // 160, 23)
    assert te.labels[1].tolist() == info.vocab.encode("的")  # only 的 of 几乎停滞的情况 is in the training vocabulary
    assert te.texts[1] == "几乎停滞的情况"
    w, a = r.search_splits()
    assert len(w) == len(a) == 2 and not set(w.ids) & set(a.ids)


def test_aishell_missing_names_the_files(tmp_path):
    with pytest.raises(DataMissingError, match=r"aishell1: data files not found: expected "
                       r"data_aishell/transcript/aishell_transcript_v0\.8\.txt, data_aishell/wav/train/<speaker>"):
        reader("aishell1", root=str(tmp_path)).utterances("train")


def test_librispeech_layout(tmp_path):
    r = reader("librispeech", root=str(write_librispeech_layout(tmp_path)))
    train = r.utterances("train")
    assert [(u.id, u.text, u.speaker) for u in train] == [("19-198-0000", "NORTHANGER ABBEY", "19"),
                                                          ("19-198-0001", "IT'S A TALE", "19")]
    assert r.info().vocab.tokens[1:3] == [" ", "'"]
    assert r.eval_splits()[1].features[0].shape == (1 + (4800 - 400) // 160, 23)
    with pytest.raises(DataMissingError, match=r"LibriSpeech/dev-other/<speaker>/<chapter>/<speaker>-<chapter>"
                                               r"\.trans\.txt"):
        reader("librispeech", root=str(tmp_path), test_subsets=["dev-other"]).utterances("test")


def test_kaldi_dir(tmp_path):
    train = write_kaldi_dir(tmp_path / "train", {"a_1": "yes no", "a_2": "no", "b_1": "yes"})
    test = write_kaldi_dir(tmp_path / "test", {"c_1": "no yes"})
    r = reader("kaldi_dir", root=str(train), test_root=str(test))
    utts = r.utterances("train")
    assert [(u.id, u.text, u.speaker) for u in utts] == [("a_1", "yes no", "a"), ("a_2", "no", "a"), ("b_1", "yes", "b")]
    assert utts[0].path == train / "wav" / "a_1.wav"
    assert r.info().vocab_size == 1 + len(set("yes no"))
    piped = write_kaldi_dir(tmp_path / "piped", {"p_1": "yes"}, pipe=True)
    with pytest.raises(NasError, match=r"entry p_1 is 'sox in\.flac -t wav - \|'; only plain audio paths"):
        reader("kaldi_dir", root=str(piped), test_root=str(test)).utterances("train")
    with pytest.raises(DataMissingError, match=r"dataset\.test_root is not set"):
        reader("kaldi_dir", root=str(train)).utterances("test")
    with pytest.raises(DataMissingError, match=r"expected wav\.scp, text in one of \["):
        reader("kaldi_dir", root=str(tmp_path), test_root=str(test)).utterances("train")


# ------------------------------------------------------------------ features
def test_fbank_frames_and_values():
    """kaldi-native-fbank with Kaldi's framing (snip_edges: 1 + (N - 400) // 160 frames at 16 kHz); silence
    gives log(FLT_EPSILON) in every bin (the log floor); a 1 kHz tone peaks in the mel bin centred nearest it."""
    assert fbank(np.zeros(399, np.float32), RATE).shape == (0, 80)
    silent = fbank(np.zeros(RATE, np.float32), RATE, FbankOptions(num_mel_bins=40))
    assert silent.shape == (98, 40) and silent.dtype == torch.float32
    assert torch.allclose(silent, torch.full_like(silent, math.log(np.finfo(np.float32).eps)))
    feats = fbank(tone(1.0, 1000.0), RATE)
    assert feats.shape == (98, 80)
    mel = lambda f: 1127.0 * math.log(1 + f / 700.0)  # noqa: E731  Kaldi's mel scale, bins from 20 Hz to 8 kHz
    step = (mel(8000) - mel(20)) / 81
    centre = [700 * (math.exp((mel(20) + (k + 1) * step) / 1127.0) - 1) for k in range(80)]
    nearest = min(range(80), key=lambda k: abs(centre[k] - 1000))
    assert abs(int(feats.mean(0).argmax()) - nearest) <= 1


def test_cmvn():
    x = torch.tensor([[1.0, 10.0], [3.0, 10.0], [5.0, 10.0]])
    u = utterance_cmvn(x)
    assert torch.allclose(u[:, 0], torch.tensor([-1.0, 0.0, 1.0]) * math.sqrt(1.5))
    assert torch.equal(u[:, 1], torch.zeros(3))  # constant bin: std floored, mean removed
    mean, std = global_stats([x, torch.tensor([[7.0, 10.0]])])
    assert torch.allclose(mean, torch.tensor([4.0, 10.0]))
    (tr,), ((te,),) = normalise([x], [[torch.tensor([[3.0, 10.0]])]], "global")  # training mean: 3, 10
    assert torch.allclose(te, torch.zeros(1, 2), atol=1e-6) and tr.shape == x.shape
    with pytest.raises(NasError, match="task.cmvn='mean' is not a CMVN mode; valid choices: utterance, global, none"):
        normalise([x], [], "mean")


# ------------------------------------------------------------------ SpecAugment
def test_spans_by_hand():
    start = torch.tensor([[1.0, 6.0], [0.0, 0.0]])
    width = torch.tensor([[2.0, 1.0], [0.0, 3.0]])
    assert _spans(start, width, 8).int().tolist() == [[0, 1, 1, 0, 0, 0, 1, 0], [1, 1, 1, 0, 0, 0, 0, 0]]


def test_specaugment_masks():
    b, t, f = 4, 60, 20
    x = torch.ones(b, t, f)
    lengths = torch.tensor([60, 40, 20, 10])
    aug = SpecAugment(freq_masks=1, freq_width=5, time_masks=3, time_width=100, time_ratio=0.1)
    out = aug(x, lengths, torch.Generator().manual_seed(0))
    for i, n in enumerate(lengths.tolist()):
        zero_bins = (out[i] == 0).all(0)        # bins masked at every frame
        zero_frames = (out[i] == 0).all(1)      # frames masked in every bin
        assert int(zero_bins.sum()) <= 5
        assert int(zero_frames.sum()) <= 3 * int(0.1 * n)      # each time mask <= floor(0.1 * L)
        assert not zero_frames[n:].any() or int(zero_bins.sum()) == f  # never beyond the utterance
        # a cell is 0 exactly when its bin or its frame is masked
        assert torch.equal(out[i] == 0, zero_bins[None, :] | zero_frames[:, None])
    again = aug(x, lengths, torch.Generator().manual_seed(0))
    assert torch.equal(out, again)
    assert POLICIES["none"](x, lengths, torch.Generator()) is x
    assert policy("ld").time_width == 100 and policy("conformer").time_masks == 10
    with pytest.raises(NasError, match="task.specaugment='xx' is not a SpecAugment policy; valid choices: ld, "):
        policy("xx")


def test_time_warp_by_hand():
    """Frame values are their index, so the output is the source position s(j) of the docstring's rule."""
    x = torch.arange(12, dtype=torch.float32).repeat(3, 1)[..., None].repeat(1, 1, 2)   # (3, 12, 2)
    lens = torch.tensor([10.0, 12.0, 2.0], dtype=torch.float64)
    u = torch.tensor([[0.5, 0.0], [0.0, 0.999], [0.7, 0.9]], dtype=torch.float64)
    y = time_warp(x, lens, 3, u)
    # L=10: W_b=3, c=3+floor(0.5*4)=5, w=-3 -> m=2: j<2 reads 5j/2, then 5+(j-2)*4/7; frames 10, 11 are padding
    first = [0, 2.5, *[5 + (j - 2) * 4 / 7 for j in range(2, 10)], 10, 11]
    # L=12: c=3, w=floor(0.999*7)-3=3 -> m=6: j<6 reads j/2, then 3+(j-6)*8/5
    second = [j / 2 for j in range(6)] + [3 + (j - 6) * 8 / 5 for j in range(6, 12)]
    assert torch.allclose(y[0, :, 0], torch.tensor(first)) and torch.allclose(y[1, :, 0], torch.tensor(second))
    assert torch.equal(y[2], x[2])                      # 2 frames: W_b = 0, no warp
    assert torch.equal(y[..., 0], y[..., 1])            # every bin moves with its frame


def test_time_warp_keeps_the_ends_and_the_order():
    g = torch.Generator().manual_seed(3)
    x = torch.arange(50, dtype=torch.float32)[None, :, None].repeat(16, 1, 4)
    lens = torch.randint(3, 51, (16,), generator=g).to(torch.float64)
    y = time_warp(x, lens, 80, torch.rand(16, 2, generator=g, dtype=torch.float64))
    for b, n in enumerate(lens.long().tolist()):
        assert y[b, 0, 0] == 0 and y[b, n - 1, 0] == n - 1          # the first and last valid frames stay
        assert (y[b, 1:n, 0] >= y[b, :n - 1, 0]).all()              # a warp never reverses time
        assert torch.equal(y[b, n:], x[b, n:])                     # padding untouched
    assert policy("ld").warp_width == 80 and policy("conformer").warp_width == 0
    warp_only = SpecAugment(0, 0, 0, 0, 0.0, warp_width=5)
    assert warp_only.active and not torch.equal(warp_only(x, lens, torch.Generator().manual_seed(0)), x)


# ------------------------------------------------------------------ split, stream, vocabulary
def fake_split(n: int = 10, f: int = 6) -> SpeechSplit:
    g = torch.Generator().manual_seed(1)
    feats = [torch.randn(5 + 3 * i, f, generator=g) for i in range(n)]
    labels = [torch.arange(1, 2 + i % 4) for i in range(n)]
    return SpeechSplit("fake", feats, labels, [f"t{i}" for i in range(n)], [f"u{i}" for i in range(n)])


def test_batch_padding():
    split = fake_split()
    x, y = split.batch([2, 0])
    assert x.features.shape == (2, 11, 6) and x.lengths.tolist() == [11, 5]
    assert torch.equal(x.features[1, :5], split.features[0]) and not x.features[1, 5:].any()
    assert y.labels.tolist() == [[1, 2, 3], [1, 0, 0]] and y.lengths.tolist() == [3, 1]
    assert [len(b[0].lengths) for b in iterate_speech_eval(split, 4)] == [4, 4, 2]


def test_stream_resumes_bit_identically():
    split = fake_split()
    a = SpeechBatchStream(split, 3, seed=5, augment=SpecAugment(2, 3, 2, 4, 0.5))
    for _ in range(4):  # into the second pass
        a.next()
    state = a.state_dict()
    tail = [a.next() for _ in range(3)]
    b = SpeechBatchStream(split, 3, seed=99, augment=SpecAugment(2, 3, 2, 4, 0.5))
    b.load_state_dict(state)
    for (xa, ya), (xb, yb) in zip(tail, [b.next() for _ in range(3)]):
        assert torch.equal(xa.features, xb.features) and torch.equal(xa.lengths, xb.lengths)
        assert torch.equal(ya.labels, yb.labels)
    assert a.passes_done == b.passes_done == 2 and a.batches_per_pass() == 3
    with pytest.raises(NasError, match="batch size 11 does not fit a split of 10"):
        SpeechBatchStream(split, 11, seed=0)


def test_length_buckets_sort_within_groups_and_cover_each_pass():
    split = fake_split(n=26)                     # utterance i has 5 + 3 i frames
    bs, k = 3, 2
    stream = SpeechBatchStream(split, bs, seed=7, length_buckets=k)
    plain = SpeechBatchStream(split, bs, seed=7)
    assert stream.batches_per_pass() == plain.batches_per_pass() == 8
    # the pass's order, rebuilt by hand from the same generator draws: permutation, groups of k*bs sorted by
    # length, batches shuffled by a second permutation
    g = torch.Generator().manual_seed(7)
    perm = torch.randperm(26, generator=g)
    groups = [sorted(perm[s:s + k * bs].tolist(), key=lambda i: 5 + 3 * i) for s in range(0, 24, k * bs)]
    batches = [grp[j:j + bs] for grp in groups for j in range(0, len(grp), bs)]
    expected = [batches[i] for i in torch.randperm(8, generator=g).tolist()]
    got = []
    for _ in range(8):
        x, _ = stream.next()
        got.append(sorted(((int(n) - 5) // 3 for n in x.lengths), key=int))
    assert got == [sorted(b) for b in expected]
    assert sorted(i for b in got for i in b) == sorted(perm[:24].tolist())   # the pass sees each kept one once
    # less padding than uniform batches of the same pass length
    pad = lambda s: sum(int(x.lengths.max()) * bs - int(x.lengths.sum()) for x, _ in (s.next() for _ in range(8)))  # noqa: E731
    assert pad(SpeechBatchStream(split, bs, seed=7, length_buckets=k)) < pad(SpeechBatchStream(split, bs, seed=7))


def test_length_buckets_resume_bit_identically():
    split = fake_split(n=20)
    a = SpeechBatchStream(split, 3, seed=5, length_buckets=3)
    for _ in range(8):                              # into the second pass (6 batches per pass)
        a.next()
    state = a.state_dict()
    tail = [a.next()[0].lengths.tolist() for _ in range(6)]
    b = SpeechBatchStream(split, 3, seed=1, length_buckets=3)
    b.load_state_dict(state)
    assert [b.next()[0].lengths.tolist() for _ in range(6)] == tail


def test_length_buckets_option_is_checked():
    from nascli.tasks.speech_recognition import SpeechRecognitionTask

    assert SpeechRecognitionTask({"length_buckets": 4}).length_buckets == 4
    for bad in (-1, 1.5, "many", True):
        with pytest.raises(NasError, match=r"task.length_buckets=.* is not allowed; expected an integer >= 0"):
            SpeechRecognitionTask({"length_buckets": bad})


def test_vocabulary(tmp_path):
    v = Vocabulary.from_texts(["ba a", "c"])
    assert v.tokens == [BLANK_TOKEN, " ", "a", "b", "c"] and len(v) == 5
    assert v.encode("abz c") == [2, 3, 1, 4] and v.decode([0, 3, 2, 0, 1]) == "ba "
    v.save(tmp_path / "vocab.json")
    assert Vocabulary.load(tmp_path / "vocab.json").tokens == v.tokens
    with pytest.raises(NasError, match="starts with the CTC blank"):
        Vocabulary(["a"])


# ------------------------------------------------------------------ espeak-ng spoken digits
TINY_DIGITS = {"train_voices": ["en-us+m1", "en-gb+f2"], "test_voices": ["en-us+f3"], "per_voice": 2,
               "max_digits": 2}


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed (apt-get install espeak-ng; "
                                                               "make test installs it when run as root)")
def test_spoken_digits_synthesis_and_cache(tmp_path, monkeypatch):
    import nascli.data.speech.spoken_digits as sd

    r = reader("spoken_digits", root=str(tmp_path / "digits"), **TINY_DIGITS)
    train, test = r.utterances("train"), r.utterances("test")
    assert len(train) == 4 and len(test) == 2
    assert {u.speaker for u in train} == {"en-us+m1", "en-gb+f2"} and {u.speaker for u in test} == {"en-us+f3"}
    words = set(sd.WORDS) | {"oh"}
    assert all(1 <= len(u.text.split()) <= 2 and set(u.text.split()) <= words for u in train + test)
    samples, rate = read_audio(train[0].path)
    assert rate == 22050 and len(samples) > 0.2 * rate and np.abs(samples).max() > 1000  # real speech, not silence
    # a cache hit reads the files: no synthesiser needed, same corpus
    monkeypatch.setattr(sd, "synthesise", lambda *a, **k: pytest.fail("synthesised twice"))
    assert [u.text for u in reader("spoken_digits", root=str(tmp_path / "digits"), **TINY_DIGITS).utterances("train")] \
        == [u.text for u in train]
    assert r.info().vocab.tokens == Vocabulary.from_texts(u.text for u in train).tokens


def test_spoken_digits_plan_and_refusals(tmp_path, monkeypatch):
    import nascli.data.speech.spoken_digits as sd

    spec = {**{k: OmegaConf.load(Path(__file__).parents[1] / "nascli/conf/dataset/spoken_digits.yaml")[k]
               for k in sd.SPEC_KEYS}, **TINY_DIGITS}
    plan = sd.corpus_plan(spec)
    assert plan == sd.corpus_plan(spec) and plan != sd.corpus_plan({**spec, "seed": 1})
    assert [p["part"] for p in plan] == ["train"] * 4 + ["test"] * 2
    with pytest.raises(NasError, match="test_voices must be unseen in training; in both lists: en-us\\+m1"):
        sd.corpus_plan({**spec, "test_voices": ["en-us+m1"]})
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(DataMissingError, match="espeak-ng, which is not installed: apt-get install espeak-ng"):
        reader("spoken_digits", root=str(tmp_path / "none"), **TINY_DIGITS).utterances("train")


def test_missing_extra_is_one_line(monkeypatch):
    import sys

    from nascli.data.speech.metrics import error_rates

    monkeypatch.setitem(sys.modules, "jiwer", None)  # import jiwer raises ImportError
    with pytest.raises(NasError, match=r"^CER/WER \(task=speech_recognition\) needs jiwer, which is not installed: "
                                       r"pip install 'nascli\[speech\]'$"):
        error_rates(["a"], ["a"])
    monkeypatch.setitem(sys.modules, "kaldi_native_fbank", None)
    with pytest.raises(NasError, match=r"needs kaldi-native-fbank, which is not installed: pip install 'nascli\[speech\]'"):
        fbank(np.zeros(400, np.float32), RATE)
