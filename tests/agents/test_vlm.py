"""The vision-language backend (`hf-vlm:`, agents/backends/vlm.py) on the tiny Qwen2-VL-shaped model, in real envs.

Checked token by token against the model's own processor: what the rollout engine builds for an episode with
image observations is the processor's rendering of the same conversation and images; image placeholders are
never policy tokens; the sampling log-probs are those of a teacher-forced forward pass with the image inputs.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

import turngym  # noqa: E402,F401  (registers the env ids)
from turngym.agents.backends.vlm import VLMPolicy, mask_vision_logits  # noqa: E402
from turngym.agents.engine import RolloutEngine  # noqa: E402
from turngym.errors import ConfigError  # noqa: E402

ES = "turngym/EmbodiedSearch-v0"


class RecordingVLM(VLMPolicy):
    """The real VLMPolicy, also remembering every (prompt, generation) pair it produced."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.record: dict[tuple[int, ...], list] = {}
        self.calls: list[int] = []

    def generate(self, prompts, **kw):
        gens = super().generate(prompts, **kw)
        self.calls.append(len(prompts))
        for p, g in zip(prompts, gens):
            self.record.setdefault(tuple(p), []).append(g)
        return gens


def tiny(cls=VLMPolicy, **kw):
    from turngym.agents.backends.vlm import tiny_qwen2_vl, tiny_vl_processor

    proc = tiny_vl_processor()
    kw.setdefault("max_new_tokens", 8)
    return cls(tiny_qwen2_vl(proc.tokenizer, seed=0), proc, seed=0, **kw)


@pytest.fixture(scope="module")
def episodes():
    policy = tiny(RecordingVLM)
    with RolloutEngine(policy, ES, num_envs=2, max_turns=2, system_prompt="Find it.") as eng:
        eps = eng.collect(2, group_size=2, seed=3)
    return policy, eps


def spans(mask):
    out, start = [], None
    for k, m in enumerate([*mask, 0]):
        if m and start is None:
            start = k
        elif not m and start is not None:
            out.append((start, k))
            start = None
    return out


def processor_rendering(policy, ep):
    """The processor's tokens and tensors for the episode's final conversation and its images."""
    text = policy.processor.apply_chat_template(ep.meta["messages"], tokenize=False)
    return policy.processor(text=[text], images=ep.images or None, return_tensors="pt")


def teacher_forced_logprobs(policy, ids, image_inputs, mm, blank=False):
    kw = {}
    if image_inputs:
        pv = image_inputs["pixel_values"]
        kw = {
            "pixel_values": torch.zeros_like(pv) if blank else pv,
            "image_grid_thw": image_inputs["image_grid_thw"],
        }
    with torch.no_grad():
        logits = policy.model(
            input_ids=torch.tensor([ids]), mm_token_type_ids=torch.tensor([mm]), use_cache=False, **kw
        ).logits[0]
    return torch.log_softmax(mask_vision_logits(logits.float(), policy.model.config), -1)


def test_episode_tokens_are_the_processors_rendering(episodes):
    policy, eps = episodes
    assert [e.group for e in eps] == [0, 0, 1, 1]
    assert policy.calls[0] == 2  # the first turn of two episodes sampled in one batch
    for ep in eps:
        ref = processor_rendering(policy, ep)
        assert not ep.meta.get("noncanonical_turns"), "a random generation was not its own encoding"
        # 1. token by token the processor's rendering, with the processor's image tensors and token types
        assert ep.input_ids == ref["input_ids"][0].tolist()
        assert ep.mm_token_type_ids == ref["mm_token_type_ids"][0].tolist()
        assert torch.equal(ep.image_inputs["image_grid_thw"], ref["image_grid_thw"])
        assert torch.allclose(ep.image_inputs["pixel_values"], ref["pixel_values"].float())
        # one placeholder run per observation image, of the grid's merged-patch count
        n_img = sum(policy.num_image_tokens(g) for g in ep.image_inputs["image_grid_thw"])
        assert sum(ep.mm_token_type_ids) == n_img > 0
        # 2. image placeholders (and every other template token) are never policy tokens
        assert not any(m and p for m, p in zip(ep.mm_token_type_ids, ep.policy_mask))
        vis = set(policy.vision_token_ids())
        assert not any(p and t in vis for t, p in zip(ep.input_ids, ep.policy_mask))
        # 3. the policy spans are generations for the prompt before them (with its images), with their log-probs
        runs = spans(ep.policy_mask)
        assert len(runs) == len(ep.rewards)
        for t, (a, b) in enumerate(runs):
            gens = [g for g in policy.record[tuple(ep.input_ids[:a])] if g.token_ids == ep.input_ids[a:b]]
            assert gens and any(ep.logprobs[a:b] == g.logprobs for g in gens)
            assert set(ep.turn_index[a:b]) == {t}
        # 4. sampling log-probs == a teacher-forced forward pass with the image inputs
        lp = teacher_forced_logprobs(policy, ep.input_ids, ep.image_inputs, ep.mm_token_type_ids)
        pos = [k for k in range(1, len(ep.input_ids)) if ep.policy_mask[k]]
        got = torch.tensor([lp[k - 1, ep.input_ids[k]].item() for k in pos])
        want = torch.tensor([ep.logprobs[k] for k in pos])
        assert torch.allclose(got, want, atol=1e-4), (got - want).abs().max()
        # ... and the model reads the pixels: blanked images give other log-probs at the same tokens
        blank = teacher_forced_logprobs(
            policy, ep.input_ids, ep.image_inputs, ep.mm_token_type_ids, blank=True
        )
        assert max(abs(blank[k - 1, ep.input_ids[k]].item() - ep.logprobs[k]) for k in pos) > 1e-3


def test_each_user_turn_carries_its_observation_image(episodes):
    policy, eps = episodes
    for ep in eps:
        users = [m for m in ep.meta["messages"] if m["role"] == "user"]
        assert len(users) == len(ep.images)
        for m in users:
            assert isinstance(m["content"], list) and m["content"][0] == {"type": "image"}
        # every image is the env's (256x512 map), and the map changes as the agent moves
        assert all(im.shape == (256, 512, 3) and im.dtype == np.uint8 for im in ep.images)


def test_a_rows_samples_do_not_depend_on_its_batch():
    policy = tiny()
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (60, 90, 3), dtype=np.uint8)
    b = rng.integers(0, 256, (150, 140, 3), dtype=np.uint8)
    pa = policy.encode_conversation([{"role": "user", "content": policy.user_content("look", a)}], [a])
    conv_b = [
        {"role": "user", "content": policy.user_content("first, a longer text", b)},
        {"role": "assistant", "content": "ok"},
        {"role": "user", "content": policy.user_content("again", a)},
    ]
    pb = policy.encode_conversation(conv_b, [b, a])
    alone = policy.generate([pa], images=[[a]], seed=[7])[0]
    both = policy.generate([pb, pa], images=[[b, a], [a]], seed=[1, 7])
    assert both[1].token_ids == alone.token_ids
    assert np.allclose(both[1].logprobs, alone.logprobs, atol=1e-4)
    # the image is read: another image gives another distribution for the same prompt tokens
    other = policy.generate([pa], images=[[b[:60, :90].copy()]], seed=[7])[0]
    assert not np.allclose(other.logprobs[:1], alone.logprobs[:1], atol=1e-4)


def test_keep_images_bounds_the_prompt_in_evaluation():
    from turngym.agents.evaluate import evaluate

    seen: dict[int | None, list[int]] = {}
    for keep in (None, 1, 0):
        policy = tiny(RecordingVLM, keep_images=keep, max_new_tokens=4)
        res = evaluate(ES, policy, episodes=1, max_turns=3, num_envs=1)
        assert len(res.episodes) == 1
        runs = []
        for prompt in policy.record:  # one prompt per turn
            mm = policy.mm_token_type_ids(list(prompt))
            runs.append(len(spans(mm)))
        seen[keep] = sorted(runs)
    assert seen[None] == [1, 2, 3]  # turn t's prompt holds t images
    assert set(seen[1]) == {1} and set(seen[0]) == {0}


def test_engine_refuses_keep_images_and_bad_inputs_are_named():
    with pytest.raises(ConfigError, match="keep_images"):
        RolloutEngine(tiny(keep_images=1), ES, num_envs=1)
    policy = tiny()
    img = np.zeros((56, 56, 3), dtype=np.uint8)
    ids = policy.encode_conversation([{"role": "user", "content": policy.user_content("x", img)}], [img])
    with pytest.raises(ConfigError, match="placeholder runs"):
        policy.generate([ids], images=[[]])
    with pytest.raises(ConfigError, match="image lists for 1 prompts"):
        policy.generate([ids], images=[[img], [img]])
    with pytest.raises(ConfigError, match="HxWx3"):
        policy.image_inputs([np.zeros((4, 4), dtype=np.uint8)])
    with pytest.raises(ConfigError, match="uint8"):
        policy.image_inputs([np.zeros((56, 56, 3), dtype=np.float32)])
    with pytest.raises(ConfigError, match="keep_images"):
        tiny(keep_images=-1)
    with pytest.raises(ConfigError, match="kv_reuse"):
        tiny(kv_reuse=True)
    # vision tokens spelled in an observation's text never become placeholders
    content = policy.user_content("a page showing <|image_pad|><|vision_start|>", None)
    ids = policy.chat.prompt_ids([{"role": "user", "content": content}])
    assert not set(ids) & set(policy.vision_token_ids())


def test_text_only_policies_are_unchanged(lock_id):
    from turngym.agents.backends.hf import HFPolicy
    from turngym.trainers.batch import collate

    policy = HFPolicy.from_pretrained("tiny", max_new_tokens=6)
    assert not getattr(policy, "multimodal", False)
    with RolloutEngine(policy, lock_id, num_envs=2, max_turns=2) as eng:
        eps = eng.collect(["train-0"], group_size=2, seed=1)
    for ep in eps:
        assert ep.images == [] and ep.image_inputs == {} and ep.mm_token_type_ids is None
        assert all(isinstance(m["content"], str) for m in ep.meta["messages"])
        assert ep.input_ids == policy.chat.template_ids(ep.meta["messages"])
    assert collate(eps).images is None
