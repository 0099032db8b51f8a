"""OPD, G-OPD/ExOPD advantages and TCOD masking on hand-computed cases; a real causal LM as the teacher."""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")

from turngym.agents.trajectory import TokenEpisode  # noqa: E402
from turngym.errors import ConfigError, UnknownNameError  # noqa: E402
from turngym.trainers.distill import (  # noqa: E402
    DISTILL_ADVANTAGES,
    CausalLMScorer,
    distill_advantages,
    exopd_advantages,
    gopd_advantages,
    opd_advantages,
    reverse_kl,
)

T = torch.tensor([[-1.0, -0.5, -2.0]])
S = torch.tensor([[-1.5, -0.5, -1.0]])
R = torch.tensor([[-2.0, -1.0, -1.0]])
M = torch.tensor([[1.0, 1.0, 0.0]])


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/trainers/conftest.py


def test_opd_hand_computed():
    assert opd_advantages(T, S, M).tolist() == [[0.5, 0.0, 0.0]]  # masked token gets nothing


def test_gopd_lambda_one_is_opd_for_any_ref():
    assert torch.allclose(gopd_advantages(T, S, M, R, lam=1.0), opd_advantages(T, S, M))


def test_gopd_and_exopd_hand_computed():
    # lam = 1.25: token0: 1.25*(-1+2) - (-1.5+2) = 0.75; token1: 1.25*(0.5) - (0.5) = 0.125
    assert gopd_advantages(T, S, M, R, lam=1.25)[0].tolist() == pytest.approx([0.75, 0.125, 0.0])
    assert exopd_advantages(T, S, M, R)[0].tolist() == pytest.approx([0.75, 0.125, 0.0])
    # no ref: ref = student -> lam * (T - S)
    assert gopd_advantages(T, S, M, lam=2.0)[0].tolist() == pytest.approx([1.0, 0.0, 0.0])
    with pytest.raises(ConfigError, match="> 1"):
        exopd_advantages(T, S, M, R, lam=1.0)
    with pytest.raises(ConfigError, match="shapes"):
        opd_advantages(T, S[:, :2], M)
    assert set(DISTILL_ADVANTAGES) == {"opd", "gopd", "exopd", "aligndistil"}


def test_reverse_kl():
    # masked tokens: (S - T) = -0.5, 0 -> mean -0.25
    assert reverse_kl(S, T, M).tolist() == pytest.approx([-0.25])
    assert reverse_kl(S, T, torch.zeros_like(M)).tolist() == [0.0]


class TableScorer:
    """A deterministic teacher: log-prob of a token = -0.1 * token id (enough to check the plumbing by hand)."""

    def token_logprobs(self, sequences):
        return [[0.0] + [-0.1 * t for t in s[1:]] for s in sequences]


def token_episode(ids, mask, turn_index, logprobs):
    n = max(turn_index) + 1
    return TokenEpisode(
        input_ids=ids,
        policy_mask=mask,
        logprobs=logprobs,
        turn_index=turn_index,
        rewards=[0.0] * n,
        obs_keys=[""] * n,
        infos=[{}] * n,
        task_id="t",
    )


def test_distill_advantages_with_tcod_depth():
    ep = token_episode(
        [5, 1, 2, 7, 3, 4], [0, 1, 1, 0, 1, 1], [-1, 0, 0, -1, 1, 1], [0, -0.5, -0.5, 0, -0.1, -0.1]
    )
    short = token_episode([5, 2, 9], [0, 1, 0], [-1, 0, -1], [0, -1.0, 0])
    adv, mask, rep = distill_advantages([ep, short], TableScorer(), method="opd", depth=1)
    # episode 0, turn 0 tokens: teacher -0.1, -0.2 vs student -0.5 -> 0.4, 0.3; turn 1 masked out by depth 1
    assert adv[0].tolist() == pytest.approx([0, 0.4, 0.3, 0, 0, 0])
    assert adv[1].tolist() == pytest.approx([0, -1 * 0.2 + 1.0, 0, 0, 0, 0])  # padded to 6
    assert mask.sum().item() == 3 and rep["signal_tokens"] == 3 and rep["policy_tokens"] == 5
    adv_all, mask_all, rep_all = distill_advantages([ep], TableScorer(), method="exopd")
    # no ref -> 1.25 * (T - S): turn 1 tokens: 1.25 * (-0.3 + 0.1), 1.25 * (-0.4 + 0.1)
    assert adv_all[0].tolist() == pytest.approx([0, 0.5, 0.375, 0, -0.25, -0.375])
    assert rep_all["kl"] == pytest.approx(rep_all["kl_all_turns"])
    with pytest.raises(UnknownNameError):
        distill_advantages([ep], TableScorer(), method="kd")


class BadScorer:
    def token_logprobs(self, sequences):
        return [[0.0] for _ in sequences]


def test_distill_rejects_mismatched_teacher():
    ep = token_episode([5, 1], [0, 1], [-1, 0], [0, -0.5])
    with pytest.raises(ConfigError, match="lengths"):
        distill_advantages([ep], BadScorer())


def test_causal_lm_scorer_matches_a_manual_forward():
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    cfg = transformers.LlamaConfig(
        vocab_size=32,
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=64,
    )
    model = transformers.LlamaForCausalLM(cfg).eval()
    scorer = CausalLMScorer(model, batch_size=2)
    seqs = [[1, 5, 7, 9], [2, 3], [4, 4, 4]]
    out = scorer.token_logprobs(seqs)
    assert [len(r) for r in out] == [4, 2, 3] and all(r[0] == 0.0 for r in out)
    with torch.no_grad():
        lp = torch.log_softmax(model(input_ids=torch.tensor([seqs[0]])).logits[0], -1)
    assert out[0][2] == pytest.approx(lp[1, 7].item(), abs=1e-5)
    assert all(math.isfinite(x) and x <= 0 for r in out for x in r)
    # padding in a batch does not change a sequence's scores
    alone = scorer.token_logprobs([seqs[1]])[0]
    assert alone == pytest.approx(out[1], abs=1e-5)


def test_distill_hook_loads_a_checkpoint_teacher_caches_and_logs(tmp_path):
    import json
    from types import SimpleNamespace

    from turngym.trainers.distill import load_scorer, make_distill

    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    cfg = transformers.LlamaConfig(
        vocab_size=32,
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=64,
    )
    transformers.LlamaForCausalLM(cfg).save_pretrained(tmp_path / "teacher")
    teacher = load_scorer(f"hf:{tmp_path / 'teacher'}")
    ep = token_episode(
        [5, 1, 2, 7, 3, 4], [0, 1, 1, 0, 1, 1], [-1, 0, 0, -1, 1, 1], [0, -0.5, -0.5, 0, -0.1, -0.1]
    )
    hook = make_distill(
        teacher=f"hf:{tmp_path / 'teacher'}", method="gopd", lam=1.5, tcod={"d0": 1, "every": 2, "d_max": 3}
    )
    ctx = SimpleNamespace(step=0, config=SimpleNamespace(output_dir=str(tmp_path / "run")))
    batch = SimpleNamespace(
        input_ids=torch.zeros((1, 8), dtype=torch.long)
    )  # the trainer's batch may be wider
    a0 = hook([ep], batch, ctx)
    t = teacher.token_logprobs([ep.input_ids])[0]
    # step 0: depth 1 -> only turn-0 tokens (1, 2); G-OPD without ref: 1.5 * (T - S)
    assert a0.shape == (1, 8)
    assert a0[0].tolist() == pytest.approx(
        [0, 1.5 * (t[1] + 0.5), 1.5 * (t[2] + 0.5), 0, 0, 0, 0, 0], abs=1e-5
    )
    ctx.step = 2  # depth 2: turn 1 too
    a2 = hook([ep], batch, ctx)
    assert a2[0, 4].item() == pytest.approx(1.5 * (t[4] + 0.1), abs=1e-5)
    lines = [json.loads(x) for x in (tmp_path / "run" / "distill.jsonl").read_text().splitlines()]
    assert [(r["step"], r["depth"], r["signal_tokens"]) for r in lines] == [(0, 1, 2), (2, 2, 4)]
    assert lines[0]["kl"] == pytest.approx(-((t[1] + 0.5) + (t[2] + 0.5)) / 2, abs=1e-5)
    with pytest.raises(ConfigError, match="tcod"):
        make_distill(teacher="x", tcod={"depth": 3})
    with pytest.raises(ConfigError, match="Python API"):
        load_scorer("openai:http://localhost:1")


def test_selected_by_name_from_the_trainer_config(tmp_path):
    from types import SimpleNamespace

    from turngym.trainers import hooks

    hook = hooks.resolve(
        hooks.EXTRA_ADVANTAGES,
        {"name": "exopd", "teacher": TableScorer(), "coef": 0.5, "log_file": None},
        "extra",
    )
    ep = token_episode([5, 1, 2], [0, 1, 1], [-1, 0, 0], [0, -0.5, -0.5])
    out = hook([ep], SimpleNamespace(input_ids=torch.zeros((1, 3))), SimpleNamespace(step=0, config=None))
    assert out[0].tolist() == pytest.approx([0.0, 1.25 * 0.4, 1.25 * 0.3])  # ExOPD λ = 1.25, no ref


def test_opd_through_the_trainer_moves_the_student_toward_the_teacher(tmp_path):
    """Pure OPD in the real GRPO loop (env reward zeroed): the reverse KL to a peaked teacher falls over training."""
    import json

    from tests.trainers.bandit import BanditEngine, tiny_model
    from turngym.trainers.config import GRPOConfig
    from turngym.trainers.grpo import GRPOTrainer

    teacher = tiny_model(seed=1)
    with torch.no_grad():
        teacher.lm_head.weight.mul_(30.0)  # a confident teacher: far from the near-uniform fresh student
    teacher.save_pretrained(tmp_path / "teacher")
    student = tiny_model(seed=0)
    cfg = GRPOConfig(
        env_id="bandit",
        task_ids=["0", "1"],
        steps=16,
        tasks_per_step=2,
        group_size=8,
        lr=2e-2,
        mini_batch_size=16,
        micro_batch_size=16,
        max_new_tokens=2,
        output_dir=str(tmp_path / "run"),
        progress=False,
        tensorboard=False,
        plot=False,
        save_every=0,
        reward_shaping=[{"name": "zero"}],
        extra_advantages=[
            {"name": "opd", "teacher": f"hf:{tmp_path / 'teacher'}", "tcod": {"d0": 1, "every": 5}}
        ],
    )
    GRPOTrainer(student, config=cfg, engine=BanditEngine(student, {"0": {4}, "1": {8}})).train()
    rows = [json.loads(x) for x in (tmp_path / "run" / "distill.jsonl").read_text().splitlines()]
    by_step: dict[int, list[float]] = {}
    for r in rows:
        by_step.setdefault(r["step"], []).append(r["kl"])
    kl = [sum(v) / len(v) for _, v in sorted(by_step.items())]
    assert len(kl) == 16
    assert sum(kl[-3:]) / 3 < 0.7 * sum(kl[:3]) / 3, kl
    assert {r["depth"] for r in rows} == {1, 2, 3, 4}  # TCOD: depth 1 + step // 5
