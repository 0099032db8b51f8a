"""GRPO on the tiny vision-language policy (hf-vlm:tiny-vl) in the visual envs: the trainer's forward passes read
the episodes' images, its log-probs equal the sampling ones, checkpoints resume, the vision tower can be frozen."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

import turngym  # noqa: E402,F401  (registers the env ids)
from tests.agents.test_vlm import tiny  # noqa: E402
from turngym.agents.backends.vlm import VLMPolicy  # noqa: E402
from turngym.trainers.batch import collate, shift_entropy, shift_logprobs  # noqa: E402
from turngym.trainers.config import GRPOConfig  # noqa: E402
from turngym.trainers.grpo import GRPOTrainer, forward_logits  # noqa: E402

ES = "turngym/EmbodiedSearch-v0"
MW = "turngym/MiniWoB-click-button-v0"


def config(tmp_path, env_id, **kw):
    base = dict(
        env_id=env_id,
        steps=2,
        tasks_per_step=1,
        group_size=2,
        max_new_tokens=6,
        max_turns=2,
        num_envs=2,
        lr=1e-2,
        entropy_coef=0.1,  # a gradient even when a random policy's group rewards are all equal
        mini_batch_size=2,
        micro_batch_size=2,
        output_dir=str(tmp_path / "rl"),
        progress=False,
        tensorboard=False,
        plot=False,
    )
    return GRPOConfig(**{**base, **kw})


def test_batch_logprobs_equal_the_sampling_logprobs(tmp_path, one_thread):
    policy = tiny()
    trainer = GRPOTrainer(policy, config=config(tmp_path, ES, tasks_per_step=2))
    groups, _ = trainer.rollout()
    eps = [e for g in groups for e in g]
    batch = collate(eps, trainer.pad_id)
    assert batch.images is not None
    assert batch.images["image_grid_thw"].shape[0] == sum(len(e.images) for e in eps)
    assert batch.images["mm_token_type_ids"].sum() > 0
    with torch.no_grad():
        logits = forward_logits(trainer.model, batch)
        lp = shift_logprobs(logits, batch.input_ids, trainer.config.temperature) * batch.policy_mask
    m = batch.policy_mask > 0
    # the placeholders' masked logits keep the entropy (and its gradient) finite
    assert torch.isfinite(shift_entropy(logits, trainer.config.temperature)).all()
    assert m.sum() > 0
    assert torch.allclose(lp[m], batch.old_logprobs[m], atol=1e-4), (
        (lp[m] - batch.old_logprobs[m]).abs().max()
    )
    # without the images the same tokens get other log-probs: the trainer really feeds them
    blank = dict(batch.images, pixel_values=torch.zeros_like(batch.images["pixel_values"]))
    with torch.no_grad():
        lp0 = shift_logprobs(
            forward_logits(trainer.model, type(batch)(**{**batch.__dict__, "images": blank})),
            batch.input_ids,
            trainer.config.temperature,
        )
    assert (lp0[m] - batch.old_logprobs[m]).abs().max() > 1e-3
    trainer.engine.close()


def test_grpo_steps_checkpoint_and_resume_with_a_frozen_vision_tower(tmp_path, one_thread):
    policy = tiny(freeze_vision=True)
    vision0 = {k: v.clone() for k, v in policy.model.model.visual.state_dict().items()}
    text0 = {k: v.clone() for k, v in policy.model.model.language_model.state_dict().items()}
    cfg = config(tmp_path, ES, save_every=1)
    trainer = GRPOTrainer(policy, config=cfg)
    recs = trainer.train()
    trainer.engine.close()
    assert [r["step"] for r in recs] == [1, 2]
    assert all(r["optimizer_steps"] >= 1 and abs(r["rollout_logprob_gap"]) < 1e-3 for r in recs)
    vision = policy.model.model.visual.state_dict()
    assert all(torch.equal(vision0[k], vision[k]) for k in vision0)  # frozen
    text = policy.model.model.language_model.state_dict()
    assert any(not torch.equal(text0[k], text[k]) for k in text0)  # trained
    ckpts = sorted((tmp_path / "rl" / "checkpoints").iterdir())
    assert [c.name for c in ckpts] == ["step-000001", "step-000002"]
    # resume from step 1 in a fresh trainer over a fresh model: step 2 again, the same weights as the first run
    fresh = tiny(freeze_vision=True)
    again = GRPOTrainer(fresh, config=config(tmp_path, ES, save_every=1, output_dir=str(tmp_path / "rl2")))
    assert again.resume(ckpts[0]) and again.step == 1
    rec = again.train_step()
    again.engine.close()
    assert again.step == 2 and rec["groups"] == 1
    for k, v in policy.model.state_dict().items():
        assert torch.allclose(v, fresh.model.state_dict()[k], atol=1e-5), k


def test_freeze_vision_from_a_spec_and_saved_policies_load_back(tmp_path):
    from turngym.agents import make_agent

    policy = make_agent("hf-vlm:tiny-vl?freeze_vision=1&max_new_tokens=4")
    assert isinstance(policy, VLMPolicy)
    assert not any(p.requires_grad for p in policy.model.model.visual.parameters())
    assert all(p.requires_grad for p in policy.model.model.language_model.parameters())
    policy.save_pretrained(tmp_path / "vl")
    back = VLMPolicy.from_pretrained(tmp_path / "vl", max_new_tokens=4)
    for k, v in policy.model.state_dict().items():
        assert torch.equal(v, back.model.state_dict()[k]), k
    import numpy as np

    img = np.random.default_rng(0).integers(0, 256, (80, 120, 3), dtype=np.uint8)
    msgs = [{"role": "user", "content": policy.user_content("where?", img)}]
    assert back.encode_conversation(msgs, [img]) == policy.encode_conversation(msgs, [img])
    a = policy.generate([policy.encode_conversation(msgs, [img])], images=[[img]], seed=[3])[0]
    b = back.generate([back.encode_conversation(msgs, [img])], images=[[img]], seed=[3])[0]
    assert a.token_ids == b.token_ids


def test_one_grpo_step_on_miniwob_screenshots(tmp_path, one_thread):
    from tests.agents.test_vlm_eval import need_browser

    need_browser()
    trainer = GRPOTrainer(tiny(), config=config(tmp_path, MW, steps=1))
    try:
        recs = trainer.train()
    finally:
        trainer.engine.close()
    assert len(recs) == 1 and recs[0]["optimizer_steps"] >= 1
    assert abs(recs[0]["rollout_logprob_gap"]) < 1e-3


@pytest.mark.parametrize("freeze", [False, True])
def test_sft_on_image_episodes_trains_through_the_vision_tower(tmp_path, one_thread, freeze):
    import numpy as np

    from turngym.trainers.config import SFTConfig
    from turngym.trainers.sft import SFTTrainer

    policy = tiny(freeze_vision=freeze)
    rng = np.random.default_rng(0)
    eps = []
    for i, answer in enumerate(["red", "blue", "green", "red"]):
        img = rng.integers(0, 256, (56 + 14 * i, 84, 3), dtype=np.uint8)
        msgs = [{"role": "user", "content": policy.user_content("What colour?", img)}]
        ep = policy.answer_episode(msgs, [img], answer, task_id=f"t{i}", group=i)
        # the processor's rendering of the conversation with the answer, token for token; the answer is the policy
        text = policy.processor.apply_chat_template(
            [*msgs, {"role": "assistant", "content": answer}], tokenize=False
        )
        assert (
            ep.input_ids
            == policy.processor(text=[text], images=[img], return_tensors="pt")["input_ids"][0].tolist()
        )
        assert (
            policy.chat.decode([t for t, m in zip(ep.input_ids, ep.policy_mask) if m])
            == answer + "<|im_end|>"
        )
        eps.append(ep)
    vision0 = {k: v.clone() for k, v in policy.model.model.visual.state_dict().items()}
    text0 = {k: v.clone() for k, v in policy.model.model.language_model.state_dict().items()}
    cfg = SFTConfig(
        epochs=1,
        lr=1e-3,
        mini_batch_size=4,
        micro_batch_size=2,
        output_dir=str(tmp_path / "sft"),
        progress=False,
        tensorboard=False,
        plot=False,
    )
    recs = SFTTrainer(policy, eps, cfg).train()
    assert recs and all(np.isfinite(r["loss"]) for r in recs)
    vision = policy.model.model.visual.state_dict()
    moved = any(not torch.equal(vision0[k], vision[k]) for k in vision0)
    assert moved is not freeze  # the loss's gradient reaches the vision tower unless it is frozen
    text = policy.model.model.language_model.state_dict()
    assert any(not torch.equal(text0[k], text[k]) for k in text0)


@pytest.mark.parametrize("lora_vision", [False, True])
def test_lora_on_the_language_model_with_the_vision_tower_frozen(tmp_path, one_thread, lora_vision):
    pytest.importorskip("peft")
    policy = tiny()
    base0 = {k: v.clone() for k, v in policy.model.state_dict().items()}
    cfg = config(tmp_path, ES, steps=1, lora_r=4, lora_alpha=8, lora_vision=lora_vision)
    trainer = GRPOTrainer(policy, config=cfg)
    trainable = [n for n, p in trainer.model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    assert any("language_model" in n for n in trainable)
    assert any(".visual." in n for n in trainable) == lora_vision
    # sampling goes through the wrapped model: the batch's log-probs still equal the sampling ones
    groups, _ = trainer.rollout()
    batch = collate([e for g in groups for e in g], trainer.pad_id)
    with torch.no_grad():
        lp = shift_logprobs(forward_logits(trainer.model, batch), batch.input_ids, cfg.temperature)
    m = batch.policy_mask > 0
    assert torch.allclose(lp[m], batch.old_logprobs[m], atol=1e-4)
    rec = trainer.train_step()
    trainer.engine.close()
    assert rec["optimizer_steps"] >= 1
    # base weights (the vision tower's included) are untouched; the adapters moved
    base = trainer.model.get_base_model().state_dict()
    for k, v in base0.items():
        key = (
            k
            if k in base
            else k.replace(".weight", ".base_layer.weight").replace(".bias", ".base_layer.bias")
        )
        assert torch.equal(v, base[key]), k
    lora_b = [p for n, p in trainer.model.named_parameters() if "lora_B" in n]
    assert any(p.abs().sum() > 0 for p in lora_b)  # B starts at zero


def test_turngym_train_runs_a_vlm_from_the_command_line(tmp_path, one_thread):
    from turngym.cli import main

    out = tmp_path / "cli"
    rc = main(
        [
            "train",
            f"env_id={ES}",
            "model=hf-vlm:tiny-vl?freeze_vision=1",
            "steps=1",
            "tasks_per_step=1",
            "group_size=2",
            "max_new_tokens=4",
            "max_turns=1",
            "num_envs=2",
            "mini_batch_size=2",
            "micro_batch_size=2",
            "entropy_coef=0.1",
            "progress=false",
            "tensorboard=false",
            "plot=false",
            f"output_dir={out}",
        ]
    )
    assert rc == 0
    import json

    recs = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert recs and recs[-1]["step"] == 1 and recs[-1]["optimizer_steps"] >= 1


def test_losses_get_the_vocabulary_the_logits_span(tmp_path, one_thread, monkeypatch):
    # a VLM's config keeps vocab_size in its text config; the loss is told the width of the logits it scores
    from turngym.trainers.losses import POLICY_LOSSES

    seen: list[int] = []
    ppo = POLICY_LOSSES.get_entry("ppo_clip")

    def recording(logp, old_logp, adv, mask, cfg=None, entropy=None, norm_len=None, vocab_size=None):
        seen.append(vocab_size)
        return ppo(logp, old_logp, adv, mask, cfg, entropy=entropy, norm_len=norm_len, vocab_size=vocab_size)

    monkeypatch.setitem(POLICY_LOSSES, "vocab_probe", recording)
    policy = tiny()
    trainer = GRPOTrainer(policy, config=config(tmp_path, ES, steps=1, loss="vocab_probe"))
    trainer.train()
    trainer.engine.close()
    rows = policy.model.get_output_embeddings().weight.shape[0]
    assert seen and set(seen) == {rows}
