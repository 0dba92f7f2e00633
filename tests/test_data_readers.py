"""Dataset readers on small files written in the real on-disk formats, split conventions, the
missing-data error, downloads (file:// URLs, no network) and the real Fashion-MNIST copy."""
from __future__ import annotations

import dataclasses
import gzip
import io
import os
import pickle
import struct
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

import nascli.data as D
from nascli.data import cifar, idx
from nascli.data.download import md5_of
from nascli.data.pickles import load_dict_pickle
from nascli.data.sr import SR_DATASETS
from nascli.errors import DataMissingError, NasError, UnknownChoiceError

REAL_FMNIST = Path("/usr/share/datasets/fashion-mnist")


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    """No reader may see the real cache, $TORCH_HOME or the system Fashion-MNIST copy by accident."""
    monkeypatch.setenv("NASCLI_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    monkeypatch.setattr(idx, "SYSTEM_DIR", str(tmp_path / "system"))


def cfg(name: str, **kw):
    return OmegaConf.create({"name": name, "root": None, "download": False, "train_portion": 0.5, **kw})


# ---------------------------------------------------------------- writers (real formats, tiny sizes)

class _Py2Pickler(pickle._Pickler):  # type: ignore[name-defined]
    """Writes every bytes/str as a Python 2 ``str`` (SHORT_BINSTRING/BINSTRING), as cPickle did."""

    dispatch = pickle._Pickler.dispatch.copy()  # type: ignore[attr-defined]

    def _save_py2_str(self, obj):
        raw = obj.encode("latin1") if isinstance(obj, str) else obj
        if len(raw) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(raw)]) + raw)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(raw)) + raw)
        self.memoize(obj)

    dispatch[bytes] = _save_py2_str
    dispatch[str] = _save_py2_str


def dump_pickle(obj, path: Path, py2: bool = False) -> None:
    if py2:
        buf = io.BytesIO()
        _Py2Pickler(buf, protocol=2).dump(obj)
        path.write_bytes(buf.getvalue().replace(b"numpy._core.multiarray", b"numpy.core.multiarray"))
    else:
        with open(path, "wb") as f:
            pickle.dump(obj, f, protocol=2)


def unique_rows(n: int, width: int, start: int, rng: np.random.Generator) -> np.ndarray:
    """uint8 rows whose first two bytes encode a global id (start + i), the rest random."""
    data = rng.integers(0, 256, size=(n, width), dtype=np.uint8)
    ids = np.arange(start, start + n)
    data[:, 0], data[:, 1] = ids // 256, ids % 256
    return data


def row_ids(images: torch.Tensor) -> list[int]:
    flat = images.reshape(images.shape[0], -1).to(torch.int64)
    return (flat[:, 0] * 256 + flat[:, 1]).tolist()


def write_cifar10(folder: Path, per_batch: int = 8, n_test: int = 10, py2: bool = False) -> dict:
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    out = {"train_data": [], "train_labels": []}
    for i in range(1, 6):
        data = unique_rows(per_batch, 3072, (i - 1) * per_batch, rng)
        labels = [int(v) for v in (np.arange(per_batch) + (i - 1) * per_batch) % 10]  # 4 per class over 40
        entry = {b"batch_label": f"training batch {i} of 5".encode(), b"labels": labels, b"data": data,
                 b"filenames": [f"img_{i}_{j}.png".encode() for j in range(per_batch)]}
        dump_pickle(entry, folder / f"data_batch_{i}", py2)
        out["train_data"].append(data)
        out["train_labels"] += labels
    data = unique_rows(n_test, 3072, 1000, rng)
    labels = [j % 10 for j in range(n_test)]
    dump_pickle({b"batch_label": b"testing batch 1 of 1", b"labels": labels, b"data": data,
                 b"filenames": [b"t.png"] * n_test}, folder / "test_batch", py2)
    (folder / "batches.meta").write_bytes(pickle.dumps({b"label_names": [b"airplane"] * 10}, protocol=2))
    out.update(train_data=np.concatenate(out["train_data"]), test_data=data, test_labels=labels)
    return out


def write_cifar100(folder: Path, n_train: int = 20, n_test: int = 20) -> dict:
    rng = np.random.default_rng(1)
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for split, n, start in (("train", n_train, 0), ("test", n_test, 1000)):
        data = unique_rows(n, 3072, start, rng)
        fine = [int(v) for v in (np.arange(n) * 7) % 100]
        dump_pickle({b"filenames": [b"x.png"] * n, b"batch_label": split.encode(), b"fine_labels": fine,
                     b"coarse_labels": [v // 5 for v in fine], b"data": data}, folder / split)
        out[split] = (data, fine)
    return out


def make_tar(archive: Path, base: Path, folder: str) -> None:
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(base / folder, arcname=folder)


def write_idx(path: Path, array: np.ndarray, magic: int, gz: bool) -> None:
    raw = struct.pack(">I", magic) + struct.pack(f">{array.ndim}I", *array.shape) + array.astype(np.uint8).tobytes()
    if gz:
        path = path.with_name(path.name + ".gz")
        raw = gzip.compress(raw)
    path.write_bytes(raw)


def write_fmnist(folder: Path, n_train: int = 20, n_test: int = 10, gz: bool = True) -> dict:
    rng = np.random.default_rng(2)
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        labels = (np.arange(n) * 3) % 10
        write_idx(folder / f"{prefix}-images-idx3-ubyte", images, 2051, gz)
        write_idx(folder / f"{prefix}-labels-idx1-ubyte", labels, 2049, gz)
        out[prefix] = (images, labels)
    return out


def write_imagenet16(folder: Path, per_file: int = 12, n_val: int = 40, py2: bool = True) -> dict:
    """Labels are 1-based over 1000 classes; about half are <= 120 and must be kept."""
    rng = np.random.default_rng(3)
    folder.mkdir(parents=True, exist_ok=True)
    train_rows, train_labels = [], []
    for i in range(1, 11):
        data = unique_rows(per_file, 768, (i - 1) * per_file, rng)
        j = np.arange(per_file)
        labels = [int(v) for v in np.where(j % 2 == 0, 1 + (j * 11 + i) % 120, 121 + j * 37 % 880)]
        dump_pickle({"data": data, "labels": labels, "mean": data.mean(0)}, folder / f"train_data_batch_{i}", py2)
        train_rows.append(data)
        train_labels += labels
    data = unique_rows(n_val, 768, 1000, rng)
    labels = [1 + j % 120 if j % 4 else 500 + j for j in range(n_val)]
    dump_pickle({"data": data, "labels": labels}, folder / "val_data", py2)
    return {"train": (np.concatenate(train_rows), np.array(train_labels)), "val": (data, np.array(labels))}


# ---------------------------------------------------------------- CIFAR

@pytest.mark.parametrize("py2", [False, True], ids=["py3-protocol2-bytes-keys", "py2-str"])
def test_cifar10_folder_layout(tmp_path, py2):
    ref = write_cifar10(tmp_path / "cifar-10-batches-py", py2=py2)
    train, test, info = D.eval_splits(cfg("cifar10", root=str(tmp_path)))
    assert train.images.shape == (40, 3, 32, 32) and train.images.dtype == torch.uint8 and train.images.is_contiguous()
    assert test.images.shape == (10, 3, 32, 32) and train.labels.dtype == torch.int64
    # rows of b'data' are channel planes R, G, B of 32x32 in row-major order
    assert torch.equal(train.images, torch.from_numpy(ref["train_data"].reshape(40, 3, 32, 32)))
    assert train.images[5, 1, 2, 3].item() == ref["train_data"][5, 1024 + 2 * 32 + 3]
    assert train.labels.tolist() == ref["train_labels"] and test.labels.tolist() == ref["test_labels"]
    assert info.num_classes == 10 and info.crop_padding == 4 and info.image_size == 32


def test_cifar10_root_inside_release_folder(tmp_path):
    write_cifar10(tmp_path / "cifar-10-batches-py")
    train, _, _ = D.eval_splits(cfg("cifar10", root=str(tmp_path / "cifar-10-batches-py")))
    assert len(train) == 40


def test_cifar10_tarball_is_extracted(tmp_path, monkeypatch):
    src = tmp_path / "src"
    ref = write_cifar10(src / "cifar-10-batches-py")
    root = tmp_path / "root"
    root.mkdir()
    make_tar(root / "cifar-10-python.tar.gz", src, "cifar-10-batches-py")
    # local archives are md5-checked before extraction: this test archive stands in for the official one
    monkeypatch.setattr(cifar.Cifar10, "layout", dataclasses.replace(
        cifar.Cifar10.layout, md5=md5_of(root / "cifar-10-python.tar.gz")))
    train, test, _ = D.eval_splits(cfg("cifar10", root=str(root)))
    assert (root / "cifar-10-batches-py" / "data_batch_3").is_file()
    assert torch.equal(train.images.reshape(40, -1), torch.from_numpy(ref["train_data"]))
    assert len(test) == 10


def test_cifar100_tarball_and_fine_labels(tmp_path, monkeypatch):
    src = tmp_path / "src"
    ref = write_cifar100(src / "cifar-100-python")
    make_tar(tmp_path / "cifar-100-python.tar.gz", src, "cifar-100-python")
    monkeypatch.setattr(cifar.Cifar100, "layout", dataclasses.replace(
        cifar.Cifar100.layout, md5=md5_of(tmp_path / "cifar-100-python.tar.gz")))
    train, test, info = D.eval_splits(cfg("cifar100", root=str(tmp_path)))
    assert train.images.shape == (20, 3, 32, 32) and len(test) == 20
    assert train.labels.tolist() == ref["train"][1] and test.labels.tolist() == ref["test"][1]
    assert torch.equal(test.images.reshape(20, -1), torch.from_numpy(ref["test"][0]))
    assert info.num_classes == 100


def test_cifar_download_from_url_with_md5(tmp_path, monkeypatch):
    src = tmp_path / "src"
    write_cifar10(src / "cifar-10-batches-py")
    archive = tmp_path / "served.tar.gz"
    make_tar(archive, src, "cifar-10-batches-py")
    lay = dataclasses.replace(cifar.Cifar10.layout, url=archive.as_uri(), md5=md5_of(archive))
    monkeypatch.setattr(cifar.Cifar10, "layout", lay)
    root = tmp_path / "dl"
    train, _, _ = D.eval_splits(cfg("cifar10", root=str(root), download=True))
    assert len(train) == 40 and (root / "cifar-10-python.tar.gz").is_file()


def test_cifar_download_md5_mismatch_is_refused(tmp_path, monkeypatch):
    src = tmp_path / "src"
    write_cifar10(src / "cifar-10-batches-py")
    archive = tmp_path / "served.tar.gz"
    make_tar(archive, src, "cifar-10-batches-py")
    monkeypatch.setattr(cifar.Cifar10, "layout", dataclasses.replace(cifar.Cifar10.layout, url=archive.as_uri(), md5="0" * 32))
    with pytest.raises(DataMissingError, match="md5"):
        D.eval_splits(cfg("cifar10", root=str(tmp_path / "dl"), download=True))
    assert not (tmp_path / "dl" / "cifar-10-python.tar.gz").exists()


# ---------------------------------------------------------------- restricted unpickler

class _Evil:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_unpickler_refuses_foreign_globals(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "data_batch_1"
    path.write_bytes(pickle.dumps({b"data": _Evil(marker)}, protocol=2))
    with pytest.raises(DataMissingError, match="not allowed"):
        load_dict_pickle(path, what="data_batch_1")
    assert not marker.exists()


# ---------------------------------------------------------------- Fashion-MNIST (IDX)

@pytest.mark.parametrize("gz", [True, False], ids=["gz", "raw"])
def test_fashion_mnist_idx(tmp_path, gz):
    ref = write_fmnist(tmp_path, gz=gz)
    train, test, info = D.eval_splits(cfg("fashion_mnist", root=str(tmp_path)))
    assert train.images.shape == (20, 1, 28, 28) and test.images.shape == (10, 1, 28, 28)
    assert torch.equal(train.images[:, 0], torch.from_numpy(ref["train"][0]))
    assert train.labels.tolist() == ref["train"][1].tolist() and test.labels.dtype == torch.int64
    assert info.channels == 1 and info.image_size == 28 and info.crop_padding == 4


def test_idx_wrong_magic_and_truncation(tmp_path):
    write_fmnist(tmp_path)
    good_labels = (tmp_path / "train-labels-idx1-ubyte.gz").read_bytes()
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(good_labels)  # a labels file where images belong
    with pytest.raises(DataMissingError, match="magic 2049, expected 2051"):
        D.eval_splits(cfg("fashion_mnist", root=str(tmp_path)))
    raw = gzip.decompress(good_labels)[:-3]
    (tmp_path / "train-labels-idx1-ubyte.gz").write_bytes(gzip.compress(raw))
    with pytest.raises(DataMissingError, match="IDX header"):
        idx.read_idx(tmp_path / "train-labels-idx1-ubyte.gz")


def test_fashion_mnist_download_md5_mismatch(tmp_path, monkeypatch):
    served = tmp_path / "served"
    write_fmnist(served)
    monkeypatch.setattr(idx, "MIRRORS", (served.as_uri() + "/",))
    with pytest.raises(DataMissingError, match="md5") as err:
        D.eval_splits(cfg("fashion_mnist", root=str(tmp_path / "dl"), download=True))
    assert "\n" not in str(err.value)
    good = {k: (stem, md5_of(served / (stem + ".gz"))) for k, (stem, _) in idx.FILES.items()}
    monkeypatch.setattr(idx, "FILES", good)
    train, test, _ = D.eval_splits(cfg("fashion_mnist", root=str(tmp_path / "dl"), download=True))
    assert len(train) == 20 and len(test) == 10


@pytest.mark.skipif(not REAL_FMNIST.is_dir(), reason="no Fashion-MNIST copy at /usr/share/datasets/fashion-mnist")
def test_real_fashion_mnist(monkeypatch):
    monkeypatch.setattr(idx, "SYSTEM_DIR", str(REAL_FMNIST))
    train, test, info = D.eval_splits(cfg("fashion_mnist"))
    assert train.images.shape == (60000, 1, 28, 28) and test.images.shape == (10000, 1, 28, 28)
    assert train.labels.min() == 0 and train.labels.max() == 9
    assert torch.bincount(train.labels).tolist() == [6000] * 10
    assert torch.bincount(test.labels).tolist() == [1000] * 10
    assert train.labels[:10].tolist() == [9, 0, 0, 3, 0, 2, 7, 2, 5, 5]  # the published first labels
    x = train.images.double() / 255
    assert x.mean().item() == pytest.approx(info.mean[0], abs=1e-9)
    assert x.std(unbiased=False).item() == pytest.approx(info.std[0], abs=1e-6)


# ---------------------------------------------------------------- ImageNet16-120

def test_imagenet16_filters_and_shifts_labels(tmp_path):
    ref = write_imagenet16(tmp_path)
    train, val, info = D.eval_splits(cfg("imagenet16_120", root=str(tmp_path)))
    rows, labels = ref["train"]
    keep = (labels >= 1) & (labels <= 120)
    assert 0 < keep.sum() < len(labels)
    assert train.images.shape == (int(keep.sum()), 3, 16, 16)
    assert torch.equal(train.images.reshape(len(train), -1), torch.from_numpy(rows[keep]))
    assert train.labels.tolist() == (labels[keep] - 1).tolist()
    assert train.labels.min() >= 0 and train.labels.max() <= 119
    vkeep = ref["val"][1] <= 120
    assert len(val) == int(vkeep.sum()) and val.labels.tolist() == (ref["val"][1][vkeep] - 1).tolist()
    assert info.crop_padding == 2 and info.num_classes == 120 and info.image_size == 16


def test_imagenet16_py3_pickles_also_read(tmp_path):
    ref = write_imagenet16(tmp_path, py2=False)
    train, _, _ = D.eval_splits(cfg("imagenet16_120", root=str(tmp_path)))
    rows, labels = ref["train"]
    keep = (labels >= 1) & (labels <= 120)
    assert torch.equal(train.images.reshape(len(train), -1), torch.from_numpy(rows[keep]))
    assert train.labels.tolist() == (labels[keep] - 1).tolist()


# ---------------------------------------------------------------- missing data

@pytest.mark.parametrize(
    "name,files",
    [
        ("cifar10", ["cifar-10-batches-py/data_batch_1", "cifar-10-batches-py/test_batch", "cifar-10-python.tar.gz"]),
        ("cifar100", ["cifar-100-python/train", "cifar-100-python/test", "cifar-100-python.tar.gz"]),
        ("fashion_mnist", ["train-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]),
        ("imagenet16_120", ["train_data_batch_1", "train_data_batch_10", "val_data"]),
    ],
)
def test_missing_data_error_is_one_helpful_line(tmp_path, name, files):
    root = tmp_path / "empty"
    root.mkdir()
    with pytest.raises(DataMissingError) as err:
        D.search_splits(cfg(name, root=str(root)))
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith(name)
    for f in files:
        assert f in msg
    assert str(root) in msg and str(tmp_path / "cache" / name) in msg
    assert "dataset.root=" in msg
    assert isinstance(err.value, NasError)


def test_failed_download_names_the_failure(tmp_path, monkeypatch):
    missing = (tmp_path / "nowhere.tar.gz").as_uri()
    monkeypatch.setattr(cifar.Cifar100, "layout", dataclasses.replace(cifar.Cifar100.layout, url=missing))
    with pytest.raises(DataMissingError, match="download into .* failed: .*nowhere.tar.gz"):
        D.eval_splits(cfg("cifar100", root=str(tmp_path / "r"), download=True))


def test_unknown_dataset_lists_choices():
    with pytest.raises(UnknownChoiceError, match="cifar10, cifar100, fashion_mnist, imagenet16_120, synthetic"):
        D.dataset_info(cfg("mnist"))


def test_dataset_info_needs_no_files(tmp_path):
    for name in D.DATASETS.names():
        info = D.dataset_info(cfg(name, root=str(tmp_path / "nothing")))
        assert info.name == name and len(info.mean) == info.channels == len(info.std)
    assert not (tmp_path / "nothing").exists() and not (tmp_path / "cache").exists()


# ---------------------------------------------------------------- split conventions on fake sets

def _assert_partition(a: list[int], b: list[int], everything: list[int]) -> None:
    assert not set(a) & set(b)
    assert sorted(a + b) == sorted(everything)


def test_cifar10_search_split_halves_train(tmp_path):
    ref = write_cifar10(tmp_path / "cifar-10-batches-py")
    w, a, info = D.search_splits(cfg("cifar10", root=str(tmp_path)))
    assert len(w) == len(a) == 20 and info.name == "cifar10"
    _assert_partition(row_ids(w.images), row_ids(a.images), list(range(40)))
    assert torch.bincount(w.labels, minlength=10).tolist() == [2] * 10  # class-balanced
    labels = torch.tensor(ref["train_labels"])
    assert w.labels.tolist() == labels[row_ids(w.images)].tolist()  # labels travel with their images
    torch.manual_seed(123)  # the split must not depend on the run's RNG
    w2, _, _ = D.search_splits(cfg("cifar10", root=str(tmp_path)))
    assert torch.equal(w.images, w2.images)


def test_partial_cifar100_is_reported_and_split_from_train_only(tmp_path, capsys):
    """20 + 20 images cannot take NB201's 10,000-image xvalid/xtest file: one warning line, then the
    balanced rule (search on train halves, evaluate on the whole test set)."""
    write_cifar100(tmp_path / "cifar-100-python", n_train=20, n_test=20)
    w, a, _ = D.search_splits(cfg("cifar100", root=str(tmp_path)))
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("warning: cifar100 has 20 train and 20 test images, not the official "
                                                   "50,000 and 10,000") and "cannot apply" in err
    _assert_partition(row_ids(w.images), row_ids(a.images), list(range(20)))
    assert (w.name, a.name, len(w), len(a)) == ("balanced-train", "balanced-valid", 10, 10)
    train, test, _ = D.eval_splits(cfg("cifar100", root=str(tmp_path)))
    assert (train.name, test.name, len(test)) == ("train", "test", 20)
    assert "cannot apply" in capsys.readouterr().err


def test_partial_imagenet16_is_reported_and_split_from_train_only(tmp_path, capsys):
    write_imagenet16(tmp_path, n_val=40)
    w, a, _ = D.search_splits(cfg("imagenet16_120", root=str(tmp_path)))
    train, val, _ = D.eval_splits(cfg("imagenet16_120", root=str(tmp_path)))
    assert "warning: imagenet16_120 has " in capsys.readouterr().err
    _assert_partition(row_ids(w.images), row_ids(a.images), row_ids(train.images))
    assert val.name == "test" and not set(row_ids(val.images)) & set(row_ids(w.images) + row_ids(a.images))


def test_fashion_mnist_search_split_honours_train_portion(tmp_path):
    write_fmnist(tmp_path, n_train=20)
    w, a, _ = D.search_splits(cfg("fashion_mnist", root=str(tmp_path), train_portion=0.7))
    assert (len(w), len(a)) == (14, 6)
    ids = lambda s: [bytes(img.flatten()[:8].tolist()) for img in s.images]  # noqa: E731
    assert not set(ids(w)) & set(ids(a))


@pytest.mark.parametrize(
    "n_per_class,classes,portion,first_size",
    [(5000, 10, 0.5, 25000), (100, 100, 0.5, 5000), (50, 120, 0.5, 3000), (7, 3, 0.5, 10), (9, 4, 0.3, 11)],
)
def test_balanced_partition(n_per_class, classes, portion, first_size):
    labels = torch.arange(classes).repeat_interleave(n_per_class)[torch.randperm(classes * n_per_class)]
    first, second = D.balanced_partition(labels, portion)
    assert len(first) == first_size and len(first) + len(second) == len(labels)
    assert torch.equal(torch.cat([first, second]).sort().values, torch.arange(len(labels)))
    per_class = torch.bincount(labels[first], minlength=classes).double()
    assert (per_class - portion * n_per_class).abs().max() <= 1.0
    again, _ = D.balanced_partition(labels, portion)
    assert torch.equal(first, again)
    other, _ = D.balanced_partition(labels, portion, seed=1)
    assert not torch.equal(first, other)


@pytest.mark.parametrize("portion", [0.0, 1.0, 1.5])
def test_bad_train_portion(portion):
    with pytest.raises(NasError, match="train_portion"):
        D.balanced_partition(torch.arange(10) % 2, portion)


# ---------------------------------------------------------------- config files

def test_dataset_yamls_match_registry():
    conf_dir = Path(__file__).resolve().parents[1] / "nascli" / "conf" / "dataset"
    names = sorted(p.stem for p in conf_dir.glob("*.yaml"))
    # every file is a reader of one task's registry (the SR readers: tests/test_sr_data.py checks their keys;
    # the speech readers: tests/test_speech_data.py; the RL environments, by family: tests/test_rl_task.py)
    from nascli.data.speech import load_readers
    from nascli.tasks.reinforcement_learning import ReinforcementLearningTask
    assert names == sorted(D.DATASETS.names() + SR_DATASETS.names() + load_readers().names()
                           + ReinforcementLearningTask().dataset_names())
    for name in D.DATASETS.names():
        c = OmegaConf.load(conf_dir / f"{name}.yaml")
        assert c.name == name and c.root is None and c.download is True and c.train_portion == 0.5
        nb201 = D.DATASETS.get(name).nb201_split is not None
        assert c.split == ("nb201" if nb201 else "balanced")  # NB201's own files wherever NB201 has one
        assert D.dataset_info(c).name == name
