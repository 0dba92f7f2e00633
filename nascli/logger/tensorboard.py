"""``logger=tensorboard``: one TensorBoard event file per process in the run directory, through
``torch.utils.tensorboard.SummaryWriter`` (the ``tensorboard`` package).

Per epoch ``e`` (global step ``e``, 0-based as in metrics.jsonl): every scalar of the epoch record under the
tags of :mod:`nascli.logger.tags`; on a search also ``alpha/skip_share`` (:func:`~nascli.logger.tags.skip_share`),
one heatmap image per cell type of the per-edge op probabilities (``alphas/<cell type>``,
:mod:`nascli.logger.heatmap`) and the derived arch as text (``arch``); ``speed/images_per_s`` from the
steps' example counts when the record has no such figure (``nas evaluate``).

Resume: the writer is opened at the first epoch end this process logs, with ``purge_step`` = the first epoch
it runs, so TensorBoard drops what an interrupted earlier process logged for that epoch and later ones and the
curves carry no duplicate points. A roll-back to epoch ``e`` (DARTS-ADA) closes the writer; the next one opens
with ``purge_step`` = ``e`` the same way. A run that is found finished opens no writer and adds no file.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from nascli.logger.observer import RunObserver, StepInfo
from nascli.logger.tags import scalars, skip_share
from nascli.logger.target import LogTarget


def available() -> bool:
    """Whether ``torch.utils.tensorboard`` imports (the tensorboard package is installed)."""
    try:
        import torch.utils.tensorboard  # noqa: F401
    except ImportError:
        return False
    return True


class TensorBoardLogger(RunObserver):
    """Writes the epoch records of one run into ``target.run_dir`` (module docstring)."""

    def __init__(self, target: LogTarget, heatmaps: bool = True):
        self.target = target
        self.heatmaps = bool(heatmaps)
        self.writer = None
        self.purge_step = target.start_step  # the purge_step of the next writer opened
        self._began = 0.0
        self._images = 0

    def _open(self):
        if self.writer is None:
            from torch.utils.tensorboard import SummaryWriter

            start = self.purge_step
            self.writer = SummaryWriter(log_dir=str(self.target.run_dir), purge_step=start if start > 0 else None)
        return self.writer

    def on_epoch_start(self, epoch: int, epochs: int, steps: int, done: int) -> None:
        self._began, self._images = time.perf_counter(), 0

    def on_step_end(self, info: StepInfo) -> None:
        self._images += info.images

    def on_epoch_end(self, epoch: int, record: dict[str, Any]) -> None:
        values = scalars(record)
        if "speed/images_per_s" not in values and self._images:
            seconds = time.perf_counter() - self._began
            if seconds > 0:
                values["speed/images_per_s"] = self._images / seconds
        labels = self.target.alphas
        alphas = record.get("alphas")
        if labels is not None and isinstance(alphas, dict):
            share = skip_share(alphas, labels.ops, labels.skip_op)
            if share is not None:
                values["alpha/skip_share"] = share
        writer = self._open()
        for tag, value in values.items():
            writer.add_scalar(tag, value, epoch)
        if isinstance(record.get("arch"), str):
            writer.add_text("arch", record["arch"], epoch)
        if self.heatmaps and labels is not None and isinstance(alphas, dict):
            self._add_heatmaps(writer, epoch, alphas)
        writer.flush()

    def _add_heatmaps(self, writer, epoch: int, alphas: dict[str, Any]) -> None:
        from nascli.logger.heatmap import heatmap_image

        labels = self.target.alphas
        for cell_type, probs in alphas.items():
            width = len(probs[0]) if len(probs) else 0
            columns = labels.ops if width == len(labels.ops) else [f"choice {j}" for j in range(width)]
            try:
                image = heatmap_image(probs, columns, labels.edges.get(cell_type, range(len(probs))),
                                      f"{cell_type} op probabilities, epoch {epoch}")
            except ImportError:  # matplotlib is optional: scalars only
                self.heatmaps = False
                return
            writer.add_image(f"alphas/{cell_type}", image, epoch, dataformats="HWC")

    def on_rollback(self, epoch: int) -> None:
        self.close()
        self.purge_step = epoch

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


def event_files(run_dir: str | Path) -> list[Path]:
    """The TensorBoard event files in a run directory, oldest first."""
    return sorted(Path(run_dir).glob("events.out.tfevents.*"))
