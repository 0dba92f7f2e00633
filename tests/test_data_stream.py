"""BatchStream (passes, random mode, exact resume) and iterate_eval."""
from __future__ import annotations

import io

import pytest
import torch

from nascli.data import BatchStream, DatasetInfo, ImageSplit, iterate_eval, normalize
from nascli.errors import NasError

INFO = DatasetInfo("t", 5, 1, 4, (0.0,), (1.0,), 1)


def split(n: int = 23) -> ImageSplit:
    """Image i is filled with the value i, so a normalised batch reveals which images it holds."""
    imgs = torch.arange(n, dtype=torch.uint8).view(n, 1, 1, 1).expand(n, 1, 4, 4).contiguous()
    return ImageSplit(imgs, torch.arange(n) % 5)


def ids(x: torch.Tensor) -> list[int]:
    return (x[:, 0, 1, 1] * 255).round().long().tolist()  # centre pixel survives a 1-pixel crop


def test_shuffle_passes_cover_without_repeats_and_drop_last():
    s = BatchStream(split(23), INFO, 5, seed=0, train_aug=False)
    assert s.batches_per_pass() == 4
    seen = []
    for _ in range(4):
        x, y = s.next()
        assert x.shape == (5, 1, 4, 4) and x.dtype == torch.float32 and y.dtype == torch.int64
        assert y.tolist() == [i % 5 for i in ids(x)]  # labels stay with their images
        seen += ids(x)
    assert len(set(seen)) == 20 and s.passes_done == 0
    nxt = ids(s.next()[0])
    assert s.passes_done == 1 and len(set(nxt)) == 5
    first_pass_order = seen
    s2 = BatchStream(split(23), INFO, 5, seed=0, train_aug=False)
    assert sum((ids(s2.next()[0]) for _ in range(4)), []) == first_pass_order  # seeded
    s3 = BatchStream(split(23), INFO, 5, seed=1, train_aug=False)
    assert sum((ids(s3.next()[0]) for _ in range(4)), []) != first_pass_order


def test_random_mode_samples_with_replacement():
    s = BatchStream(split(6), INFO, 6, seed=0, train_aug=False, mode="random")
    batches = [ids(s.next()[0]) for _ in range(20)]
    assert any(len(set(b)) < 6 for b in batches)  # repeats inside a batch happen only with replacement
    assert all(0 <= i < 6 for b in batches for i in b)


def _roundtrip(state: dict) -> dict:
    buf = io.BytesIO()
    torch.save(state, buf)
    buf.seek(0)
    return torch.load(buf, weights_only=True)


@pytest.mark.parametrize("mode", ["shuffle", "random"])
@pytest.mark.parametrize("steps_before", [0, 3, 4, 9])
def test_state_round_trip_is_bit_identical(mode, steps_before):
    kw = dict(seed=11, train_aug=True, cutout=2, mode=mode)
    a = BatchStream(split(23), INFO, 5, **kw)
    for _ in range(steps_before):
        a.next()
    state = _roundtrip(a.state_dict())
    b = BatchStream(split(23), INFO, 5, **{**kw, "seed": 999})  # the state, not the seed, decides
    b.load_state_dict(state)
    for _ in range(10):  # crosses pass boundaries
        (xa, ya), (xb, yb) = a.next(), b.next()
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
    assert a.passes_done == b.passes_done and a.batches_drawn == b.batches_drawn


def test_state_from_another_stream_shape_is_refused():
    state = BatchStream(split(23), INFO, 5, seed=0, train_aug=False).state_dict()
    other = BatchStream(split(23), INFO, 4, seed=0, train_aug=False)
    with pytest.raises(NasError, match="batch_size"):
        other.load_state_dict(state)


def test_augmentation_is_applied_and_driven_by_the_stream_generator():
    a = BatchStream(split(23), INFO, 20, seed=3, train_aug=True, cutout=2)
    plain = BatchStream(split(23), INFO, 20, seed=3, train_aug=False)
    xa, ya = a.next()
    xp, yp = plain.next()
    assert torch.equal(ya, yp)  # augmentation draws do not change which images are drawn
    # image k is constant (value v_k): a crop or a cutout can only bring in zeros (padding, the hole)
    v = xp[:, :, :1, :1]
    assert ((xa == 0) | (xa == v)).all()
    zeros = (xa == 0).flatten(1).sum(1)
    assert (zeros[v.flatten() != 0] >= 1).all()  # the 2x2 cutout hole lands on every image
    torch.manual_seed(5)  # the global RNG plays no part: the same seed gives the same augmented batch
    assert torch.equal(BatchStream(split(23), INFO, 20, seed=3, train_aug=True, cutout=2).next()[0], xa)


@pytest.mark.parametrize("bs,mode,message", [
    (0, "shuffle", "batch size 0 does not fit a split of 23 images"),
    (24, "shuffle", "batch size 24 does not fit a split of 23 images"),
    (5, "cyclic", "unknown batch stream mode 'cyclic'; valid choices: shuffle, random"),
])
def test_bad_arguments(bs, mode, message):
    with pytest.raises(NasError) as err:
        BatchStream(split(23), INFO, bs, seed=0, train_aug=False, mode=mode)
    assert str(err.value) == message


def test_iterate_eval_keeps_order_and_last_partial_batch():
    sp = split(10)
    batches = list(iterate_eval(sp, INFO, 4))
    assert [len(y) for _, y in batches] == [4, 4, 2]
    xs = torch.cat([x for x, _ in batches])
    assert torch.equal(xs, normalize(sp.images, INFO)) and torch.equal(torch.cat([y for _, y in batches]), sp.labels)


def test_image_split_validation_and_to():
    sp = split(4)
    assert len(sp) == 4 and sp.to("cpu").images.dtype == torch.uint8
    with pytest.raises(ValueError, match=r"images must be uint8 \(N, C, H, W\), got torch.float32 \(4, 1, 4, 4\)"):
        ImageSplit(sp.images.float(), sp.labels)
    with pytest.raises(ValueError, match="4 images but 3 labels"):
        ImageSplit(sp.images, sp.labels[:3])


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_stream_on_cuda_resumes_exactly():
    sp = split(23).to("cuda")
    a = BatchStream(sp, INFO, 5, seed=0, train_aug=True, cutout=2)
    for _ in range(6):
        a.next()
    b = BatchStream(sp, INFO, 5, seed=1, train_aug=True, cutout=2)
    b.load_state_dict(_roundtrip(a.state_dict()))
    for _ in range(6):
        (xa, ya), (xb, yb) = a.next(), b.next()
        assert xa.device.type == "cuda" and torch.equal(xa, xb) and torch.equal(ya, yb)
