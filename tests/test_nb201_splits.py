"""NAS-Bench-201's official split files: the shipped copy equals the originals, and the readers apply it
(``dataset.split=nb201``) to datasets of the official sizes, held as index-coded fake images (no real
data is on this machine); partial datasets are reported and fall back to the class-balanced rule."""
from __future__ import annotations

import gzip
import hashlib
import json
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

import nascli.data as D
from nascli.data import cifar, idx, imagenet16, official_splits
from nascli.data.base import ImageSplit
from nascli.errors import NasError

ORIGINALS = Path(__file__).resolve().parents[2] / "shared" / "data" / "nb201_splits"  # compared only if present
# sha256 of the original files, as listed in the provenance README (AutoDL-Projects @ f46486e).
ORIGINAL_SHA256 = {
    "cifar-split.txt": "986da6174822048d4c5a25ee8ebdb7e754cd5372b51c633ffd4898ace8db9e32",
    "cifar100-test-split.txt": "14a5e3708e790ad57f987cdbcf202f724519475d6e8b0db34d0182e73b581bba",
    "imagenet-16-120-test-split.txt": "c0edac1d3676a9f21acea8feeb31336202d75b1a73df62aec31c6b45bb289a18",
}


@pytest.fixture(autouse=True)
def _fresh_index_cache():
    official_splits._document.cache_clear()
    official_splits.load_index_file.cache_clear()
    yield
    official_splits._document.cache_clear()
    official_splits.load_index_file.cache_clear()


def cfg(name: str, **kw):
    return OmegaConf.create({"name": name, "root": None, "download": False, "train_portion": 0.5, **kw})


def fake(n: int, classes: int, start: int = 0) -> ImageSplit:
    """``n`` 3x1x1 images whose three bytes spell their id ``start + i``; label = id % classes."""
    ids = torch.arange(start, start + n)
    images = torch.stack([ids // 65536, ids // 256 % 256, ids % 256], 1).to(torch.uint8).reshape(n, 3, 1, 1)
    return ImageSplit(images, ids % classes)


def ids(split: ImageSplit) -> torch.Tensor:
    x = split.images.reshape(len(split), 3).to(torch.int64)
    return x[:, 0] * 65536 + x[:, 1] * 256 + x[:, 2]


TEST_START = 1_000_000  # test ids are offset so a test image can never pass for a train image


def use_fake(monkeypatch, reader, n_train: int, n_test: int, classes: int) -> None:
    monkeypatch.setattr(reader, "train", lambda self: fake(n_train, classes))
    monkeypatch.setattr(reader, "test", lambda self: fake(n_test, classes, TEST_START))


# ---------------------------------------------------------------- the shipped files

def test_shipped_cifar10_train_split_starts_like_the_file():
    f = official_splits.load_index_file("cifar-split.txt")
    # The first indices of "train" and "valid" in cifar-split.txt (AutoDL-Projects configs/nas-benchmark/).
    assert f.part("train")[:24].tolist() == [0, 5, 7, 11, 13, 15, 16, 17, 20, 24, 26, 28, 30, 31, 32, 34, 36, 37,
                                             39, 40, 43, 46, 48, 49]
    assert f.part("valid")[:5].tolist() == [1, 2, 3, 4, 6]
    assert (f.total, len(f.part("train")), len(f.part("valid"))) == (50_000, 25_000, 25_000)
    assert f.part("train")[-1].item() == 49_994 and f.part("valid")[-1].item() == 49_999


@pytest.mark.parametrize("name,total,xvalid,xtest", [
    ("cifar100-test-split.txt", 10_000, [1, 3, 4, 5, 8], [0, 2, 6, 7, 9]),
    ("imagenet-16-120-test-split.txt", 6_000, [1, 2, 3, 6, 7], [0, 4, 5, 10, 11]),
])
def test_shipped_test_halves_start_like_the_files(name, total, xvalid, xtest):
    f = official_splits.load_index_file(name)
    assert f.total == total and len(f.part("xvalid")) == len(f.part("xtest")) == total // 2
    assert f.part("xvalid")[:5].tolist() == xvalid and f.part("xtest")[:5].tolist() == xtest


def test_shipped_copy_names_the_original_checksums():
    for name, digest in ORIGINAL_SHA256.items():
        assert official_splits.load_index_file(name).source_sha256 == digest
    assert set(json.loads(gzip.decompress(official_splits.PACKED.read_bytes()))["files"]) == set(ORIGINAL_SHA256)
    provenance = official_splits.PACKED.with_name("README.md").read_text()
    assert all(d in provenance for d in ORIGINAL_SHA256.values())
    assert "MIT License" in official_splits.PACKED.with_name("LICENSE-AutoDL-Projects.md").read_text()


@pytest.mark.skipif(not ORIGINALS.is_dir(), reason="the original NB201 split files are not on this machine")
def test_shipped_copy_equals_the_originals(tmp_path):
    for name, digest in ORIGINAL_SHA256.items():
        path = ORIGINALS / name
        assert hashlib.sha256(path.read_bytes()).hexdigest() == digest
        original = official_splits.read_original(path)
        shipped = official_splits.load_index_file(name)
        assert set(original) == set(shipped.parts)
        for part, indices in original.items():
            assert shipped.part(part).tolist() == indices
    official_splits.write_packed(ORIGINALS, tmp_path / "again.json.gz")  # the documented transformation
    assert (tmp_path / "again.json.gz").read_bytes() == official_splits.PACKED.read_bytes()


def test_a_damaged_copy_is_one_line(tmp_path, monkeypatch):
    doc = json.loads(gzip.decompress(official_splits.PACKED.read_bytes()))
    doc["files"]["cifar-split.txt"]["parts"]["train"]["deltas"][3] += 1  # one index moved
    bad = tmp_path / "nb201_splits.json.gz"
    bad.write_bytes(gzip.compress(json.dumps(doc).encode()))
    monkeypatch.setattr(official_splits, "PACKED", bad)
    with pytest.raises(NasError, match=r"damaged \(cifar-split.txt train: checksum mismatch\); reinstall") as err:
        official_splits.load_index_file("cifar-split.txt")
    assert "\n" not in str(err.value)
    official_splits.load_index_file("cifar100-test-split.txt")  # the other files still load


# ---------------------------------------------------------------- nb201 rule on datasets of official size

def test_cifar10_search_sees_exactly_nb201s_halves(monkeypatch, capsys):
    use_fake(monkeypatch, cifar.Cifar10, 50_000, 10_000, 10)
    w, a, _ = D.search_splits(cfg("cifar10"))  # no dataset.split: nb201 is the default where NB201 has a file
    index = official_splits.load_index_file("cifar-split.txt")
    assert torch.equal(ids(w), index.part("train")) and torch.equal(ids(a), index.part("valid"))
    assert ids(w)[:5].tolist() == [0, 5, 7, 11, 13]
    assert torch.equal(w.labels, ids(w) % 10)  # labels travel with their images
    assert (w.name, a.name) == ("nb201-train", "nb201-valid")
    train, test, _ = D.eval_splits(cfg("cifar10", split="nb201"))
    assert (train.name, len(train), test.name, len(test)) == ("train", 50_000, "test", 10_000)
    assert capsys.readouterr().err == ""  # official sizes: nothing to report


@pytest.mark.parametrize("reader,name,sizes,classes,file", [
    (cifar.Cifar100, "cifar100", (50_000, 10_000), 100, "cifar100-test-split.txt"),
    (imagenet16.ImageNet16, "imagenet16_120", (151_700, 6_000), 120, "imagenet-16-120-test-split.txt"),
])
def test_xvalid_search_and_xtest_evaluation(monkeypatch, capsys, reader, name, sizes, classes, file):
    use_fake(monkeypatch, reader, *sizes, classes)
    index = official_splits.load_index_file(file)
    w, a, _ = D.search_splits(cfg(name))
    assert torch.equal(ids(w), torch.arange(sizes[0])) and w.name == "train"  # weights: the whole train set
    assert torch.equal(ids(a), TEST_START + index.part("xvalid")) and a.name == "xvalid"
    train, test, _ = D.eval_splits(cfg(name))
    assert len(train) == sizes[0]
    assert torch.equal(ids(test), TEST_START + index.part("xtest")) and test.name == "xtest"
    assert not set(ids(test).tolist()) & set(ids(a).tolist())  # no test image was used by the search
    assert capsys.readouterr().err == ""


def test_balanced_rule_searches_on_train_only_and_evaluates_on_all_of_test(monkeypatch, capsys):
    use_fake(monkeypatch, cifar.Cifar100, 50_000, 10_000, 100)
    w, a, _ = D.search_splits(cfg("cifar100", split="balanced"))
    assert (w.name, a.name, len(w), len(a)) == ("balanced-train", "balanced-valid", 25_000, 25_000)
    assert torch.equal(torch.cat([ids(w), ids(a)]).sort().values, torch.arange(50_000))
    assert torch.bincount(w.labels, minlength=100).tolist() == [250] * 100
    _, test, _ = D.eval_splits(cfg("cifar100", split="balanced"))
    assert (test.name, len(test)) == ("test", 10_000)
    assert capsys.readouterr().err == ""


# ---------------------------------------------------------------- partial datasets

def test_partial_cifar10_is_reported_and_split_class_balanced(monkeypatch, capsys):
    use_fake(monkeypatch, cifar.Cifar10, 49_990, 10_000, 10)
    w, a, _ = D.search_splits(cfg("cifar10"))
    err = capsys.readouterr().err
    assert err == ("warning: cifar10 has 49,990 train images, not the official 50,000 (a partial dataset): NB201's "
                   "cifar-split.txt cannot apply, searching on dataset.split=balanced (class-balanced halves of the "
                   "train images) instead\n")
    assert (w.name, a.name, len(w) + len(a)) == ("balanced-train", "balanced-valid", 49_990)
    per_class = torch.bincount(w.labels, minlength=10)  # 4,999 per class, 24,995 weights images
    assert set(per_class.tolist()) <= {2_499, 2_500} and int(per_class.sum()) == 24_995


def test_partial_test_set_is_reported_and_evaluated_whole(monkeypatch, capsys):
    use_fake(monkeypatch, cifar.Cifar100, 50_000, 9_000, 100)
    _, test, _ = D.eval_splits(cfg("cifar100"))
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "has 50,000 train and 9,000 test images" in err and "cannot apply" in err
    assert (test.name, len(test)) == ("test", 9_000)


def test_partial_fashion_mnist_is_reported(monkeypatch, capsys):
    use_fake(monkeypatch, idx.FashionMNIST, 60_000, 10_000, 10)
    D.eval_splits(cfg("fashion_mnist"))
    assert capsys.readouterr().err == ""
    use_fake(monkeypatch, idx.FashionMNIST, 600, 100, 10)
    w, a, _ = D.search_splits(cfg("fashion_mnist", split="balanced"))
    assert capsys.readouterr().err == ("warning: fashion_mnist has 600 train images, not the official 60,000 "
                                       "(a partial dataset)\n")
    assert (len(w), len(a)) == (300, 300)


# ---------------------------------------------------------------- bad choices

@pytest.mark.parametrize("name,kw,message", [
    ("fashion_mnist", {"split": "nb201"}, "dataset.split=nb201: NAS-Bench-201 has no split file for fashion_mnist; "
                                          "use dataset.split=balanced"),
    ("synthetic", {"split": "nb201"}, "NAS-Bench-201 has no split file for synthetic"),
    ("cifar10", {"split": "official"}, "unknown dataset.split 'official'; valid choices: balanced, nb201"),
    ("cifar10", {"train_portion": 0.7}, "dataset.train_portion=0.7 applies to dataset.split=balanced only"),
])
def test_bad_split_choices_are_one_line(monkeypatch, name, kw, message):
    use_fake(monkeypatch, cifar.Cifar10, 50_000, 10_000, 10)
    with pytest.raises(NasError) as err:
        D.search_splits(cfg(name, **kw))
    assert message in str(err.value) and "\n" not in str(err.value)


def test_train_portion_still_applies_under_balanced(monkeypatch):
    use_fake(monkeypatch, cifar.Cifar10, 50_000, 10_000, 10)
    w, a, _ = D.search_splits(cfg("cifar10", split="balanced", train_portion=0.7))
    assert (len(w), len(a)) == (35_000, 15_000)


# ---------------------------------------------------------------- nas evaluate says where it tested

@pytest.mark.parametrize("split,test_split,n_test", [("nb201", "xtest", 5_000), ("balanced", "test", 10_000)])
def test_evaluate_result_names_its_test_split(tmp_path, monkeypatch, split, test_split, n_test):
    from nascli.commands import evaluate as evaluate_command
    from helpers import compose_cfg

    use_fake(monkeypatch, cifar.Cifar100, 50_000, 10_000, 100)
    seen = {}

    def train_network(model, protocol, train_split, test_split, *a, **kw):
        seen["test"] = ids(test_split.to("cpu"))
        return {"test_acc": 0.0}

    monkeypatch.setattr("nascli.train.train_network", train_network)
    arch = "|nor_conv_3x3~0|+|nor_conv_3x3~0|skip_connect~1|+|skip_connect~0|nor_conv_3x3~1|none~2|"
    c = compose_cfg("evaluate", [f"arch='{arch}'", "dataset=cifar100", f"dataset.split={split}", "device=cpu",
                                 f"out_root={tmp_path}", "space.network.C=4", "space.network.N=1", "num_threads=1"])
    result = evaluate_command.evaluate(c)
    assert result["test_split"] == test_split and result["images"] == {"train": 50_000, "test": n_test}
    assert json.loads((Path(result["run_dir"]) / "result.json").read_text())["test_split"] == test_split
    if split == "nb201":
        xtest = official_splits.load_index_file("cifar100-test-split.txt").part("xtest")
        assert torch.equal(seen["test"], TEST_START + xtest)


def test_search_result_names_its_splits_and_counts_their_images(tmp_path):
    from helpers import TINY_SEARCH, compose_cfg

    from nascli.commands.search import search

    c = compose_cfg("search", [*TINY_SEARCH, "search.epochs=1", "search.max_steps_per_epoch=2", "device=cpu",
                               "dataset.num_train=200", f"out_root={tmp_path}"])
    result = search(c)
    assert result["splits"] == {"weights": "balanced-train", "arch": "balanced-valid"}
    assert result["images"] == {"weights": 100, "arch": 100}
    assert json.loads((Path(result["run_dir"]) / "result.json").read_text())["images"] == result["images"]
