"""The SmolLM2-on-MiniWoB experiment's pieces that run without a browser or the model: options, layer freezing,
throughput from the trainer's records. (The whole run is `python benchmarks/learning.py --family smollm2`.)"""

import pytest

from turngym.errors import ConfigError
from turngym.experiments import smollm2


def opts(*argv):
    return smollm2.parser().parse_args(list(argv))


def test_options_are_checked_and_name_the_bad_one():
    assert smollm2.check(opts("--tasks", "click-test, click-link,")) == ["click-test", "click-link"]
    with pytest.raises(ConfigError, match="--tasks"):
        smollm2.check(opts("--tasks", " , "))
    with pytest.raises(ConfigError, match="--group-size"):
        smollm2.check(opts("--group-size", "0"))
    with pytest.raises(ConfigError, match="--train-layers"):
        smollm2.check(opts("--train-layers", "-1"))
    with pytest.raises(ConfigError, match="--sft-episodes"):
        smollm2.check(opts("--sft-episodes", "-2"))


def test_freeze_below_trains_only_the_top_layers_and_the_final_norm():
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    cfg = transformers.LlamaConfig(
        vocab_size=64,
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=3,
        num_attention_heads=2,
        tie_word_embeddings=True,
    )
    torch.manual_seed(0)
    model = transformers.LlamaForCausalLM(cfg)
    total = sum(p.numel() for p in model.parameters())
    top = sum(p.numel() for p in model.model.layers[2].parameters()) + model.model.norm.weight.numel()
    assert smollm2.freeze_below(model, 1) == top
    assert not model.model.embed_tokens.weight.requires_grad and not model.lm_head.weight.requires_grad
    assert not any(p.requires_grad for p in model.model.layers[1].parameters())
    assert all(p.requires_grad for p in model.model.layers[2].parameters())
    with pytest.raises(ConfigError, match="3 decoder layers"):
        smollm2.freeze_below(model, 4)
    model.requires_grad_(True)
    assert smollm2.freeze_below(model, 0) == total


def test_throughput_averages_the_step_records():
    recs = [
        {"step": 0, "eval_success": 0.1},
        {"step": 1, "rollout_s": 10.0, "update_s": 30.0, "policy_tokens": 6.25, "batch_samples": 16},
        {"step": 2, "rollout_s": 30.0, "update_s": 10.0, "policy_tokens": 18.75, "batch_samples": 16},
    ]
    t = smollm2.throughput(recs)
    assert t["steps"] == 2 and t["seconds_per_step"] == 40.0
    assert t["rollout_seconds_per_step"] == 20.0 and t["update_seconds_per_step"] == 20.0
    assert t["generated_tokens_per_step"] == 200.0 and t["rollout_tokens_per_s"] == 10.0
    assert "rollout_tokens_per_s" not in smollm2.throughput([{"rollout_s": 1.0}])
    assert smollm2.throughput([{"step": 0}]) == {}
