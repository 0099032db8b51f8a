"""Ray rollouts driven from the command line, each run in its own processes: `turngym train` with the example YAML
(rollout_backend=ray, async on 2 Ray workers), and 2 torchrun trainer ranks sharing one rollout service
(synchronous against rollout_backend=hf, async, FSDP). Kept apart from test_ray_engine.py (in-process Ray
engine) so the two can run on different pytest-xdist workers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from turngym.optional import is_available

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not is_available("ray"), reason="needs ray (pip install 'turngym[distributed]')"),
]
torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

ROOT = Path(__file__).resolve().parents[2]


# ---- placement as config: the example YAML, and 2 trainer ranks with one rollout service --------------------------
EXAMPLE = ROOT / "examples" / "scale_out_local.yaml"
FAST = ["progress=false", "plot=false", "tensorboard=false", "save_every=0"]

PROBE = '''
import json
from pathlib import Path

from turngym.agents.weight_sync import checksum
from turngym.trainers.callbacks import Callback, register_callback


@register_callback("ray_probe")
class RayProbe(Callback):
    """Per rank: each step's episodes and losses, the trainer's and (rank 0) every rollout worker's weight checksum
    after each sync."""

    def __init__(self):
        self.rows, self.syncs = [], []

    def _sync(self, trainer, step):
        workers = trainer.engine.checksums() if hasattr(trainer.engine, "checksums") else None
        mine = checksum(trainer._full_state())  # under FSDP a gather every rank takes part in
        self.syncs.append({"step": step, "trainer": mine, "workers": workers})

    def on_train_begin(self, trainer):
        self._sync(trainer, 0)

    def on_rollouts(self, trainer, episodes):
        self.rows.append({
            "step": trainer.step,
            "tasks": [e.task_id for e in episodes],
            "ids": [e.input_ids for e in episodes],
            "logprobs": [e.logprobs for e in episodes],
            "versions": [e.meta["policy_versions"] for e in episodes],
            "staleness": [e.meta.get("staleness", 0) for e in episodes],
        })

    def on_step_end(self, trainer, stats):
        self._sync(trainer, trainer.step)

    def on_train_end(self, trainer):
        out = {"rank": trainer.rank, "world": trainer.world, "rows": self.rows, "syncs": self.syncs}
        (Path(trainer.out) / "probe.json").write_text(json.dumps(out))
'''


def run_cli(args, nproc=1, timeout=420, env=None):
    """`turngym <args>` in a subprocess (under torchrun with `nproc` > 1), one OpenMP thread plus `env`; asserts
    it exits 0 and returns its wall time in seconds."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    launcher = [sys.executable, "-m", "turngym.cli"]
    if nproc > 1:
        launcher = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            f"--nproc_per_node={nproc}",
        ]
        launcher += ["-m", "turngym.cli"]
    t0 = time.monotonic()
    proc = subprocess.run(
        [*launcher, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )
    assert proc.returncode == 0, (proc.stdout[-2000:], proc.stderr[-4000:])
    return time.monotonic() - t0


def metrics(folder):
    return [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]


def test_example_yaml_runs_async_on_ray_workers(tmp_path):
    out = tmp_path / "run"
    secs = run_cli(["train", "--config", str(EXAMPLE), "steps=2", f"output_dir={out}", *FAST])
    rows = metrics(out)
    assert [r["step"] for r in rows] == [1, 2]
    for r in rows:  # max_staleness=1, tis_cap=2 from the YAML
        assert 0.0 <= r["staleness"] <= 1.0 and "tis_mismatch" in r and "tis_clipped_share" in r
        assert r["weight_sync_s"] > 0
    print(f"example YAML, 1 trainer process, 2 steps: {secs:.1f} s")


def probe_cli_args(tmp_path, *overrides: str) -> list[str]:
    """`turngym train` arguments: the example YAML for 2 steps with the `ray_probe` callback (written to tmp_path),
    then `overrides` and the fast settings."""
    probe = tmp_path / "probe.py"
    probe.write_text(PROBE)
    return [
        "train",
        "--config",
        str(EXAMPLE),
        "steps=2",
        *overrides,
        f"plugins=[{probe}]",
        "callbacks=[{name: ray_probe}]",
        *FAST,
    ]


def test_two_trainer_ranks_with_ray_rollout_workers_match_hf_ranks(tmp_path):
    """torchrun, 2 gloo ranks + 2 Ray rollout workers (rank 0 drives them for both ranks), synchronous: after every
    sync each worker's weights equal the trainer's; each rank's episodes and losses equal those of the same run with
    rollout_backend=hf (each rank generating with its own model copy)."""
    common = probe_cli_args(tmp_path, "max_staleness=0", "tis_cap=0")
    secs = {}
    for backend in ("ray", "hf"):
        secs[backend] = run_cli(
            [*common, f"rollout_backend={backend}", f"output_dir={tmp_path / backend}"], nproc=2
        )
    print(f"2 ranks x 2 steps: ray {secs['ray']:.1f} s, hf {secs['hf']:.1f} s")
    for rank, sub in ((0, ""), (1, "rank1")):
        ray_p = json.loads((tmp_path / "ray" / sub / "probe.json").read_text())
        hf_p = json.loads((tmp_path / "hf" / sub / "probe.json").read_text())
        assert ray_p["rank"] == rank and ray_p["world"] == 2
        # the same episodes on each rank: tasks, token ids exactly, log-probs up to batch-composition rounding
        assert [r["tasks"] for r in ray_p["rows"]] == [r["tasks"] for r in hf_p["rows"]]
        assert [r["ids"] for r in ray_p["rows"]] == [r["ids"] for r in hf_p["rows"]]
        for a, b in zip(ray_p["rows"], hf_p["rows"]):
            for la, lb in zip(a["logprobs"], b["logprobs"]):
                assert torch.allclose(torch.tensor(la), torch.tensor(lb), atol=1e-5)
        # after every sync (the start and each step): every worker holds the trainer's weights (rank 0 asks them)
        for s in ray_p["syncs"]:
            if rank == 0:
                assert s["workers"] == [s["trainer"]] * 2, s["step"]
            else:
                assert s["workers"] is None
        # ranks train the same weights (data parallel)
        rank0 = json.loads((tmp_path / "ray" / "probe.json").read_text())
        assert [s["trainer"] for s in ray_p["syncs"]] == [s["trainer"] for s in rank0["syncs"]]
        # the losses: equal up to the rounding of the recorded log-probs (the PPO ratio's denominator)
        m_ray, m_hf = metrics(tmp_path / "ray" / sub), metrics(tmp_path / "hf" / sub)
        assert [r["step"] for r in m_ray] == [1, 2]
        for a, b in zip(m_ray, m_hf):
            for key in ("reward", "pg_loss", "grad_norm", "entropy"):
                assert a[key] == pytest.approx(b[key], abs=1e-4, rel=1e-4), (rank, a["step"], key)


def test_two_trainer_ranks_async_and_fsdp_with_ray_workers(tmp_path):
    """The example YAML under torchrun (2 gloo ranks): async (max_staleness 1, tis_cap 2) with rank 0's stream
    collecting both ranks' batches, and synchronous FSDP (rank 0 sends the full state every rank gathers): staleness
    within the bound on both ranks, every worker on the trainer's weights after every sync."""
    common = probe_cli_args(tmp_path)
    secs = {}
    secs["async"] = run_cli([*common, f"output_dir={tmp_path / 'async'}"], nproc=2)
    secs["fsdp"] = run_cli(
        [*common, "fsdp=true", "max_staleness=0", "tis_cap=0", f"output_dir={tmp_path / 'fsdp'}"], nproc=2
    )
    print(f"2 ranks x 2 steps: async {secs['async']:.1f} s, fsdp {secs['fsdp']:.1f} s")
    for run in ("async", "fsdp"):
        probes = [json.loads((tmp_path / run / sub / "probe.json").read_text()) for sub in ("", "rank1")]
        assert [p["rank"] for p in probes] == [0, 1]
        for s in probes[0]["syncs"]:
            assert s["workers"] == [s["trainer"]] * 2, (run, s["step"])
        assert [s["trainer"] for s in probes[0]["syncs"]] == [s["trainer"] for s in probes[1]["syncs"]]
        # each rank got its own share of the step's tasks (4 drawn, split rank::2), 2 episodes per task
        for step in range(2):
            t0, t1 = (p["rows"][step]["tasks"] for p in probes)
            assert len(t0) == len(t1) == 4
        for p in probes:
            rows = metrics(tmp_path / run / ("" if p["rank"] == 0 else "rank1"))
            assert [r["step"] for r in rows] == [1, 2]
            if run == "async":
                assert all(0.0 <= r["staleness"] <= 1.0 and "tis_clipped_share" in r for r in rows)
                for step, row in enumerate(p["rows"]):
                    # version 1 = the start's sync; batch `step` is sampled by versions >= step (at most 1 old)
                    assert all(lag <= 1 for lag in row["staleness"])
                    assert all(min(v) >= step for v in row["versions"])
