"""Training metrics: JSONL (always), TensorBoard and W&B (when installed and enabled), a live progress bar, and a
learning-curve PNG at the end.

`metrics.jsonl` has one line per logged step. On resume the logger drops lines past the checkpoint's step, so the
file never holds a step twice.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from turngym.optional import is_available

log = logging.getLogger(__name__)

# what the progress bar shows live: success next to cost and tool calls, then the loss
LIVE_KEYS = ("reward", "success", "cost", "tool_calls", "loss", "eval_success")


def format_metric(v: Any) -> str:
    """A metric for the console: floats to 4 significant digits, in scientific notation when small or large (a
    learning rate of 1e-05 shows as 1e-05, not 0.0); other values as they are."""
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


class MetricsLogger:
    def __init__(
        self,
        output_dir: str | Path,
        total_steps: int,
        tensorboard: bool = True,
        wandb: bool = False,
        progress: bool = True,
        config: dict[str, Any] | None = None,
        name: str = "train",
    ):
        self.dir = Path(output_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.path = self.dir / "metrics.jsonl"
        self.total = total_steps
        self._tb = None
        self._wandb = None
        self._bar = None
        if tensorboard and is_available("tensorboard"):
            from torch.utils.tensorboard import SummaryWriter

            self._tb = SummaryWriter(str(self.dir / "tensorboard"))
        if wandb and is_available("wandb"):
            import wandb as wb

            self._wandb = wb.init(project="turngym", name=name, config=config, dir=str(self.dir))
        if progress:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self._bar = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeRemainingColumn(),
                TextColumn("{task.fields[live]}"),
                transient=False,
            )
            self._task = self._bar.add_task(name, total=total_steps, live="")
            self._bar.start()

    def truncate_after(self, step: int) -> None:
        """Keep only records with step <= `step` (resume)."""
        if not self.path.exists():
            return
        keep = [
            ln for ln in self.path.read_text().splitlines() if ln.strip() and json.loads(ln)["step"] <= step
        ]
        self.path.write_text("".join(ln + "\n" for ln in keep))
        if self._bar is not None:
            self._bar.update(self._task, completed=step)

    def log(self, step: int, metrics: dict[str, Any]) -> None:
        rec = {"step": step, **metrics}
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(rec) + "\n")
        scalars = {
            k: v for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)
        }
        if self._tb is not None:
            for k, v in scalars.items():
                self._tb.add_scalar(k, v, step)
        if self._wandb is not None:
            self._wandb.log(scalars, step=step)
        if self._bar is not None:
            live = " ".join(f"{k}={format_metric(scalars[k])}" for k in LIVE_KEYS if k in scalars)
            self._bar.update(self._task, completed=step, live=live)
        else:
            log.info("step %d: %s", step, " ".join(f"{k}={format_metric(v)}" for k, v in scalars.items()))

    def records(self) -> list[dict[str, Any]]:
        return read_metrics(self.path)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
        if self._tb is not None:
            self._tb.close()
            self._tb = None
        if self._wandb is not None:
            self._wandb.finish()
            self._wandb = None


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    p = Path(path)
    if p.is_dir():
        p = p / "metrics.jsonl"
    return [json.loads(ln) for ln in p.read_text().splitlines() if ln.strip()] if p.exists() else []


def plot_curves(
    records: list[dict[str, Any]],
    out: str | Path,
    keys: tuple[str, ...] = ("reward", "success", "eval_success"),
) -> Path | None:
    """A PNG with one panel per metric key present (x = step). Returns the path, or None when nothing to plot."""
    present = [k for k in keys if any(k in r for r in records)]
    if not present:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(present), figsize=(4.5 * len(present), 3.2), squeeze=False)
    for ax, k in zip(axes[0], present):
        pts = [(r["step"], r[k]) for r in records if k in r]
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o" if len(pts) < 30 else None)
        ax.set_title(k)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
