"""Metric logging for trainers: JSON lines always, TensorBoard when ``torch.utils.tensorboard`` imports."""

from __future__ import annotations

import json
import logging
import math
import os
from pathlib import Path
from typing import Any

__all__ = ["MetricLogger"]

logger = logging.getLogger(__name__)


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # strict JSON has no NaN/Infinity
    return value


class MetricLogger:
    """Append ``{"step": s, ...}`` lines to ``out_dir/log.jsonl`` and mirror scalars to TensorBoard.

    TensorBoard is optional: ``torch.utils.tensorboard`` is imported lazily and, when it (or the
    ``tensorboard`` package behind it) is missing, the logger says so once and keeps only the JSON lines.

    Args:
        out_dir: run folder (created).
        enabled: False makes every call a no-op (non-zero ranks).
        tensorboard: try TensorBoard (event files under ``out_dir/tensorboard``).

    Example:
        >>> log = MetricLogger("runs/x", tensorboard=False)  # doctest: +SKIP
        >>> log.log(1, {"loss": 0.5})  # doctest: +SKIP
    """

    def __init__(self, out_dir: str | os.PathLike, *, enabled: bool = True, tensorboard: bool = True) -> None:
        self.enabled = enabled
        self.path = Path(out_dir) / "log.jsonl"
        self.writer = None
        if not enabled:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError as err:
                logger.info("TensorBoard logging off (%s); install it with: pip install tensorboard. Metrics go to %s", err, self.path)
            else:
                self.writer = SummaryWriter(log_dir=str(Path(out_dir) / "tensorboard"))

    def log(self, step: int, values: dict[str, Any]) -> None:
        """Write one JSON line and the numeric values as TensorBoard scalars."""
        if not self.enabled:
            return
        record = {"step": int(step), **{k: _jsonable(v) for k, v in values.items()}}
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(record) + "\n")
        if self.writer is not None:
            for key, value in values.items():
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    self.writer.add_scalar(key, value, step)

    def log_text(self, tag: str, text: str) -> None:
        """Record a text blob (TensorBoard only; the JSON log stays metrics-only)."""
        if self.enabled and self.writer is not None:
            self.writer.add_text(tag, text)

    def log_image(self, step: int, tag: str, path: Path) -> None:
        """Reference a saved image in the JSON log (and add it to TensorBoard)."""
        if not self.enabled:
            return
        self.log(step, {"image": str(path), "tag": tag})
        if self.writer is not None:
            import numpy as np
            from PIL import Image

            self.writer.add_image(tag, np.asarray(Image.open(path).convert("RGB")), step, dataformats="HWC")

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
