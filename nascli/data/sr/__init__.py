"""Super-resolution data and metrics (``task=super_resolution``): LR/HR pair readers registered in
:data:`SR_DATASETS` (``sr_photos``, ``div2k``, ``sr_benchmark``), random patch streams, whole-image
evaluation, Y-channel PSNR/SSIM and the bicubic baseline. Imported by its own path, not by
:mod:`nascli.data`; scikit-image and Pillow (``pip install 'nascli[sr]'``) load only when used."""
from nascli.data.sr.images import SRImages, SRInfo
from nascli.data.sr.metrics import psnr_y, ssim_y
from nascli.data.sr.reader import SR_DATASETS, SRDatasetReader
from nascli.data.sr.resample import upscale_bicubic
from nascli.data.sr.stream import SRPatchStream, iterate_sr_eval

# Importing the readers registers them in SR_DATASETS.
from nascli.data.sr import benchmark, div2k, photos  # noqa: E402,F401  isort: skip

__all__ = [
    "SR_DATASETS",
    "SRDatasetReader",
    "SRImages",
    "SRInfo",
    "SRPatchStream",
    "iterate_sr_eval",
    "psnr_y",
    "ssim_y",
    "upscale_bicubic",
]
