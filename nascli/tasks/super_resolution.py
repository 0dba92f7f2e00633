"""Single-image super-resolution (``task=super_resolution``): L1 loss, PSNR/SSIM on the Y channel.

* loss: the mean absolute error ``L1 = mean |SR - HR|`` on [0, 1] pixels, in the search and in training a
  derived network. EDSR (Lim et al., CVPRW 2017, sec. 4.4) trains with L1 rather than L2 and the trilevel
  SR search (Wu et al. 2021, arXiv 2101.06658) follows that convention;
* the search's batch score (``train_psnr`` / ``val_psnr``): the mean over the batch's patches of
  ``10 log10(1 / mse)`` on RGB, the output clamped to [0, 1], no border crop. A cheap on-device signal for
  the search log, not the reported metric;
* a trained network: ``psnr`` (primary, dB, higher is better) and ``ssim``, each the mean over the whole
  test images of :func:`nascli.data.sr.psnr_y` / :func:`~nascli.data.sr.ssim_y` (Y channel of BT.601,
  ``scale`` border pixels cropped, output rounded to 8 bits), beside the same figures of bicubic upscaling
  (``bicubic_psnr`` / ``bicubic_ssim``) on the same images;
* data: the readers of ``nascli.data.sr`` (``SR_DATASETS``), random LR patches of ``task.patch_size``
  pixels with their HR patches for the search and for training (:class:`~nascli.data.sr.SRPatchStream`,
  flips and 90-degree rotations), whole images (batch of one) for selection and testing;
* multiply-adds are counted at an output of 1280x720 (720p; input ``floor(1280 / s) x floor(720 / s)``,
  640x360 at x2), as SR papers report them (e.g. CARN, FALSR);
* a space's head: ``scale=<task.scale>``.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from nascli.errors import NasError
from nascli.tasks.base import TASKS, Criterion, ReaderTask
from nascli.train.hooks import TrainingHooks, autocast_for, prepare_input

SCALES = (2, 3, 4)
#: the output size (width, height) at which SR papers count multiply-adds: 720p
OUTPUT_720P = (1280, 720)


def batch_psnr_sum(sr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
    """Sum over the batch of ``10 log10(1 / mse_i)``, mse_i the mean squared error of example i on RGB with
    ``sr`` clamped to [0, 1] (a device tensor; mse floored at 1e-10)."""
    mse = (sr.detach().float().clamp(0, 1) - hr.float()).pow(2).flatten(1).mean(1)
    return (-10.0 * torch.log10(mse.clamp_min(1e-10))).sum()


class L1Loss(Criterion):
    """``mean |sr - hr|`` (float32) and the batch PSNR sum (:func:`batch_psnr_sum`)."""

    score_name = "psnr"
    sum_key = "psnr_sum"
    score_scale = 1.0

    def loss(self, output: torch.Tensor, target: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
        per_example = (output.float() - target.float()).abs().flatten(1).mean(1)
        return per_example.sum() if reduction == "sum" else per_example.mean()

    def score_sum(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return batch_psnr_sum(output, target)


L1 = L1Loss()


def _sr():
    """The SR data package (DATA's nascli.data.sr), imported when a task needs it."""
    import nascli.data.sr as sr

    return sr


class SRTrainingHooks(TrainingHooks):
    """The plain training loop on SR pairs: L1 on random patches, PSNR/SSIM (Y) on whole test images."""

    train_score = None

    def __init__(self, scale: int, patch_size: int, max_images: int | None):
        self.scale, self.patch_size, self.max_images = scale, patch_size, max_images

    def loss(self, output: Any, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return L1.loss(output, target), output

    def make_stream(self, split: Any, info: Any, batch_size: int, *, seed: int, cutout: int = 0) -> Any:
        return _sr().SRPatchStream(split, self.scale, self.patch_size, batch_size, seed=seed, augment=True)

    @torch.no_grad()
    def test_metrics(self, model: nn.Module, split: Any, info: Any, batch_size: int,
                     device: torch.device) -> dict[str, float]:
        sr = _sr()
        model.eval()
        psnr, ssim, n = 0.0, 0.0, 0
        for lr, hr in sr.iterate_sr_eval(split, self.max_images):
            with autocast_for(device):
                out = model(prepare_input(lr, device))
            out = out.float()
            psnr += sr.psnr_y(out, hr.to(device), self.scale)
            ssim += sr.ssim_y(out, hr.to(device), self.scale)
            n += 1
        return {"psnr": psnr / n if n else float("nan"), "ssim": ssim / n if n else float("nan")}

    def shard_test(self, split: Any, rank: int, world_size: int) -> Any:
        raise NasError("task=super_resolution evaluates on one device; run nas evaluate without torchrun")


@TASKS.register("super_resolution")
class SuperResolutionTask(ReaderTask):
    """Module docstring. Task options (``conf/task/super_resolution.yaml``): ``scale`` (2, 3 or 4),
    ``patch_size`` (LR pixels of a training patch), ``eval_max_images`` (test on the first N images; null:
    all)."""

    name = "super_resolution"
    metric = "psnr"
    metric_title = "PSNR (dB, Y channel)"
    selections = ("magnitude",)
    selections_why = "it reads the mixer's weights of every level, while the probing criteria score cell edges only"

    def __init__(self, cfg: Any = None):
        super().__init__(cfg)
        get = cfg.get if cfg is not None else (lambda k, d=None: d)
        self.scale = int(get("scale", 2))
        self.patch_size = int(get("patch_size", 48))
        max_images = get("eval_max_images", None)
        self.max_images = None if max_images is None else int(max_images)
        if self.scale not in SCALES:
            raise NasError(f"task.scale={self.scale} is not an SR scale; valid choices: {', '.join(map(str, SCALES))}")
        if self.patch_size < 1:
            raise NasError(f"task.patch_size={self.patch_size} must be >= 1 (LR pixels)")

    def readers(self) -> Any:
        return _sr().SR_DATASETS

    def reader(self, dataset_cfg: Any) -> Any:
        return self.readers().get(str(dataset_cfg.name))(dataset_cfg, self.scale)

    def head_kwargs(self, info: Any) -> dict[str, Any]:
        return {"scale": self.scale}

    @property
    def criterion(self) -> Criterion:
        return L1

    def concat(self, a: Any, b: Any) -> Any:
        return _sr().SRImages(list(a.lr) + list(b.lr), list(a.hr) + list(b.hr), f"{a.name}+{b.name}")

    def search_stream(self, split: Any, info: Any, batch_size: int, *, seed: int, mode: str = "shuffle",
                      cutout: int = 0) -> Any:
        return _sr().SRPatchStream(split, self.scale, self.patch_size, batch_size, seed=seed, augment=True,
                                   mode=mode)

    def eval_batches(self, split: Any, info: Any, batch_size: int):
        return _sr().iterate_sr_eval(split, self.max_images)

    def input_size(self, info: Any) -> int:
        """LR training patches of ``task.patch_size`` pixels (tests run whole images of any size)."""
        return self.patch_size

    def input_shape(self, info: Any) -> tuple[int, ...]:
        width, height = OUTPUT_720P
        return (1, int(info.channels), height // self.scale, width // self.scale)

    def cost_fields(self, shape: tuple[int, ...]) -> dict[str, Any]:
        h, w = int(shape[-2]), int(shape[-1])
        return {"flops_input": [h, w], "flops_output": [h * self.scale, w * self.scale], "scale": self.scale}

    def eval_data(self, dataset_cfg: Any) -> tuple[Any, Any, Any]:
        reader = self.reader(dataset_cfg)
        train, test = reader.eval_splits()
        return train, test, reader.info()

    def training(self, protocol: Any, make_stream: Any = None) -> TrainingHooks:
        if make_stream is not None:
            raise NasError("task=super_resolution has its own patch stream; drop policy= (an augmentation policy "
                           "for classification)")
        return SRTrainingHooks(self.scale, self.patch_size, self.max_images)

    @torch.no_grad()
    def result_fields(self, model: nn.Module, test_split: Any, info: Any, device: torch.device) -> dict[str, Any]:
        """``bicubic_psnr`` / ``bicubic_ssim``: bicubic upscaling scored like the network, same images."""
        sr = _sr()
        psnr, ssim, n = 0.0, 0.0, 0
        for lr, hr in sr.iterate_sr_eval(test_split, self.max_images):
            up = sr.upscale_bicubic(lr, self.scale)
            psnr += sr.psnr_y(up, hr, self.scale)
            ssim += sr.ssim_y(up, hr, self.scale)
            n += 1
        return {"bicubic_psnr": psnr / n if n else float("nan"), "bicubic_ssim": ssim / n if n else float("nan")}
