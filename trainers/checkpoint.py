"""Checkpoints that resume exactly: model, optimizer, scheduler, RNG states, step and data position.

    runs/x/checkpoints/step-000012/{model.pt, trainer.pt}   written to a temp folder, then renamed (atomic)

`trainer.pt` holds optimizer, scheduler, torch/numpy/python RNG states and a free `state` dict (step, task position,
entropy history, ...). Resuming from the latest complete checkpoint continues with the next batch: no batch lost or
repeated.
"""

from __future__ import annotations

import logging
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

log = logging.getLogger(__name__)


def rng_state() -> dict[str, Any]:
    return {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}


def set_rng_state(s: dict[str, Any]) -> None:
    torch.set_rng_state(s["torch"])
    np.random.set_state(s["numpy"])
    random.setstate(s["python"])


def _trainable_state(model: torch.nn.Module | dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    state = model if isinstance(model, dict) else model.state_dict()
    return {k: v.detach().cpu() for k, v in state.items()}


def save_checkpoint(
    folder: Path | str,
    step: int,
    model: torch.nn.Module | dict[str, torch.Tensor],
    optimizer: torch.optim.Optimizer | dict[str, Any] | None,
    scheduler: Any,
    state: dict[str, Any],
    keep: int = 2,
) -> Path:
    """Write `folder/checkpoints/step-NNNNNN`; keep the newest `keep` (0 keeps all). Returns the checkpoint path.

    `model` / `optimizer` may also be state dicts (a sharded trainer passes its gathered full states)."""
    root = Path(folder) / "checkpoints"
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step-{step:06d}"
    tmp = root / f".tmp-step-{step:06d}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    torch.save(_trainable_state(model), tmp / "model.pt")
    torch.save(
        {
            "step": step,
            "optimizer": optimizer
            if isinstance(optimizer, dict) or optimizer is None
            else optimizer.state_dict(),
            "scheduler": scheduler.state_dict() if scheduler is not None else None,
            "rng": rng_state(),
            "state": state,
        },
        tmp / "trainer.pt",
    )
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)
    if keep > 0:
        for old in list_checkpoints(folder)[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
    log.info("saved checkpoint %s", final)
    return final


def list_checkpoints(folder: Path | str) -> list[Path]:
    root = Path(folder) / "checkpoints"
    if not root.exists():
        return []
    return sorted(p for p in root.iterdir() if p.name.startswith("step-") and (p / "trainer.pt").exists())


def latest_checkpoint(folder: Path | str) -> Path | None:
    ckpts = list_checkpoints(folder)
    return ckpts[-1] if ckpts else None


def resume_checkpoint(folder: Path | str, resume: bool | str | Path) -> Path | None:
    """The checkpoint a trainer's `resume` argument selects: a path (an error if it is not a checkpoint), True (the
    latest under `folder/checkpoints`; None, with a warning, when there is none: the run starts at step 1) or
    False (None)."""
    from turngym.errors import ConfigError

    if not resume:
        return None
    if not isinstance(resume, bool):
        path = Path(resume)
        if not (path / "trainer.pt").is_file() or not (path / "model.pt").is_file():
            raise ConfigError(f"resume: {path} is not a checkpoint folder (it needs model.pt and trainer.pt)")
        return path
    ckpt = latest_checkpoint(folder)
    if ckpt is None:
        log.warning("resume: no checkpoint under %s; starting from step 1", Path(folder) / "checkpoints")
    return ckpt


def load_checkpoint(
    path: Path | str,
    model: torch.nn.Module | None,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: Any = None,
) -> dict[str, Any]:
    """Restore model/optimizer/scheduler/RNG in place; returns {"step": ..., "state": {...}, "model": ...,
    "optimizer": ...} (the last two: the saved states, for a caller that restores a sharded model itself and
    passes model=None / optimizer=None)."""
    path = Path(path)
    weights = torch.load(path / "model.pt", map_location="cpu", weights_only=True)
    if model is not None:
        model.load_state_dict(weights)
    blob = torch.load(path / "trainer.pt", map_location="cpu", weights_only=False)
    if optimizer is not None and blob["optimizer"] is not None:
        optimizer.load_state_dict(blob["optimizer"])
    if scheduler is not None and blob["scheduler"] is not None:
        scheduler.load_state_dict(blob["scheduler"])
    set_rng_state(blob["rng"])
    log.info("resumed from %s (step %d)", path, blob["step"])
    return {"step": blob["step"], "state": blob["state"], "model": weights, "optimizer": blob["optimizer"]}
