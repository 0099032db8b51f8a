"""AlignDistil (token-adaptive, contrastive) on a 3-token vocabulary by hand; the hook; a real GRPO run with it on."""

from __future__ import annotations

import json
import math
from types import SimpleNamespace

import pytest

torch = pytest.importorskip("torch")

from turngym.agents.trajectory import TokenEpisode  # noqa: E402
from turngym.errors import ConfigError  # noqa: E402
from turngym.trainers.distill import (  # noqa: E402
    AlignDistilTeacher,
    aligndistil_lambda,
    aligndistil_logits,
    make_distill,
    total_variation,
)

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/trainers/conftest.py

LN2 = math.log(2.0)
ZREF = torch.zeros(2, 3)  # π_ref uniform: [1/3, 1/3, 1/3] at both tokens
ZDPO = torch.tensor([[LN2, 0.0, 0.0], [0.01, 0.0, 0.0]])


def test_token_adaptive_lambda_bounds_the_shift_on_a_3_token_vocab():
    # token 0: π_DPO = softmax([ln2, 0, 0]) = [2, 1, 1]/4 = [0.5, 0.25, 0.25];
    #   TV(π_DPO, π_ref) = ½(|0.5 − 1/3| + 2·|0.25 − 1/3|) = ½(1/6 + 1/6) = 1/6
    #   λ_0 = min(3, 0.1 / (1/6)) = 0.6 → z_T = [0.6·ln2, 0, 0] → π_T ∝ [2^0.6, 1, 1] = [1.5157, 1, 1]
    #   → π_T = [0.43112, 0.28444, 0.28444]; TV(π_T, π_ref) = 0.43112 − 1/3 = 0.0978 ≈ δ
    # token 1: π_DPO = [e^0.01, 1, 1]/(e^0.01 + 2) → TV = 0.3356 − 1/3 = 0.00223; 0.1/0.00223 = 44.9 → λ_1 = λ_max = 3
    #   → z_T = [0.03, 0, 0]: the small DPO step is extrapolated 3×
    z, lam = aligndistil_logits(ZDPO, ZREF)
    assert lam.tolist() == pytest.approx([0.6, 3.0], abs=1e-4)
    assert torch.softmax(z, -1)[0].tolist() == pytest.approx([0.43112, 0.28444, 0.28444], abs=1e-4)
    assert z[1].tolist() == pytest.approx([0.03, 0.0, 0.0], abs=1e-6)
    assert total_variation(z, ZREF)[0].item() == pytest.approx(0.0978, abs=1e-4)
    assert total_variation(ZDPO, ZREF).tolist() == pytest.approx([1 / 6, 0.002227], abs=1e-5)
    # δ = 0.05, λ_max = 0.2: token 0 → 0.05 / (1/6) = 0.3 capped to 0.2; token 1 → 0.2
    assert aligndistil_lambda(ZREF, ZDPO - ZREF, delta=0.05, lam_max=0.2).tolist() == pytest.approx(
        [0.2, 0.2]
    )
    with pytest.raises(ConfigError, match="delta"):
        aligndistil_lambda(ZREF, ZDPO, delta=0.0)


def test_constant_lambda_and_the_contrastive_teacher_by_hand():
    # not token-adaptive, λ = 2: z_T = z_ref + 2·(z_DPO − z_ref) = [2·ln2, 0, 0] → π_T ∝ [4, 1, 1] = [2/3, 1/6, 1/6]
    z, lam = aligndistil_logits(ZDPO[:1], ZREF[:1], token_adaptive=False, lam=2.0)
    assert lam.tolist() == [2.0]
    assert torch.softmax(z, -1)[0].tolist() == pytest.approx([2 / 3, 1 / 6, 1 / 6], abs=1e-6)
    # contrastive: reverse DPO prefers token 1: z_rev = [0, ln2, 0]; d = z_DPO − z_rev = [ln2, −ln2, 0]
    #   one unit step from π_ref: softmax(d) ∝ [2, 0.5, 1] = [0.5714, 0.1429, 0.2857];
    #   TV vs uniform = ½(0.2381 + 0.1905 + 0.0476) = 0.2381 → λ = 0.1 / 0.2381 = 0.42
    #   z_T = 0.42·[ln2, −ln2, 0] → π_T ∝ [2^0.42, 2^−0.42, 1] = [1.3379, 0.7474, 1] → [0.4336, 0.2422, 0.3241]
    zrev = torch.tensor([[0.0, LN2, 0.0]])
    z, lam = aligndistil_logits(ZDPO[:1], ZREF[:1], zrev)
    assert lam.tolist() == pytest.approx([0.42], abs=1e-4)
    assert torch.softmax(z, -1)[0].tolist() == pytest.approx([0.4336, 0.2422, 0.3241], abs=1e-4)
    with pytest.raises(ConfigError, match="shape"):
        aligndistil_logits(ZDPO, ZREF[:1])


class TableLogits:
    """A 3-token `LogitScorer`: the next-token logits after token k are `table[k]`."""

    def __init__(self, table):
        self.table = torch.tensor(table, dtype=torch.float32)

    def batch_logits(self, sequences):
        t = max(len(s) for s in sequences)
        out = torch.zeros((len(sequences), t, 3))
        for i, s in enumerate(sequences):
            out[i, : len(s)] = self.table[torch.tensor(s)]
        return out


DPO = TableLogits([[0.0, LN2, 0.0], [0.0, 0.0, 0.01], [0.0, 0.0, 0.0]])
REF = TableLogits([[0.0, 0.0, 0.0]] * 3)


def episode():
    # prompt token 0, then the policy's tokens 1, 2 (one turn), sampled with log-prob −1.0 each
    return TokenEpisode(
        input_ids=[0, 1, 2],
        policy_mask=[0, 1, 1],
        logprobs=[0.0, -1.0, -1.0],
        turn_index=[-1, 0, 0],
        rewards=[0.0],
        obs_keys=[""],
        infos=[{}],
        task_id="t",
    )


def test_the_teacher_scores_tokens_and_the_hook_gives_opd_advantages_by_hand(tmp_path):
    # position 0 predicts token 1: z_DPO = [0, ln2, 0], λ = 0.6 (as above, mirrored) → π_T(1) = 2^0.6 / (2^0.6 + 2)
    #   = 1.5157 / 3.5157 = 0.43112, log = −0.84136; A = −0.84136 − (−1.0) = 0.15864
    # position 1 predicts token 2: z_DPO = [0, 0, 0.01], λ = 3 → π_T(2) = e^0.03 / (e^0.03 + 2) = 0.340033,
    #   log = −1.07871; A = −1.07871 + 1.0 = −0.07871.  Mean λ over the two policy tokens = (0.6 + 3) / 2 = 1.8
    teacher = AlignDistilTeacher(DPO, REF)
    lp = teacher.token_logprobs([[0, 1, 2]])[0]
    assert lp == pytest.approx([0.0, -0.84136, -1.07871], abs=1e-4)
    assert teacher.lambdas([[0, 1, 2]])[0] == pytest.approx([0.0, 0.6, 3.0], abs=1e-4)
    hook = make_distill(teacher=DPO, method="aligndistil", ref=REF)
    cfg = SimpleNamespace(output_dir=str(tmp_path), aligndistil_delta=0.1, aligndistil_lam_max=3.0)
    ctx = SimpleNamespace(step=0, config=cfg, extra={})
    adv = hook([episode()], SimpleNamespace(input_ids=torch.zeros((1, 4))), ctx)
    assert adv[0].tolist() == pytest.approx([0.0, 0.15864, -0.07871, 0.0], abs=1e-4)
    assert ctx.extra["aligndistil_lam"] == pytest.approx(1.8, abs=1e-4)
    line = json.loads((tmp_path / "distill.jsonl").read_text())
    assert line["method"] == "aligndistil" and line["lam_mean"] == pytest.approx(1.8, abs=1e-4)
    # the config's λ_max reaches the teacher: λ_max = 1 → λ = [0.6, 1] → position 1: π_T(2) = e^0.01/(e^0.01 + 2)
    cfg1 = SimpleNamespace(output_dir=None, aligndistil_delta=0.1, aligndistil_lam_max=1.0)
    adv1 = make_distill(teacher=DPO, method="aligndistil", ref=REF)(
        [episode()], None, SimpleNamespace(step=0, config=cfg1)
    )
    assert adv1[0, 2].item() == pytest.approx(math.log(math.exp(0.01) / (math.exp(0.01) + 2)) + 1.0, abs=1e-4)


def test_aligndistil_options_are_checked():
    with pytest.raises(ConfigError, match="needs `ref`"):
        make_distill(teacher=DPO, method="aligndistil")
    with pytest.raises(ConfigError, match="aligndistil' only"):
        make_distill(teacher=DPO, method="gopd", token_adaptive=True)
    with pytest.raises(ConfigError, match="reverse_teacher needs next-token logits"):
        AlignDistilTeacher(DPO, REF, reverse=object())
    from turngym.trainers.config import GRPOConfig

    with pytest.raises(ConfigError, match="'aligndistil_delta'"):
        GRPOConfig(aligndistil_delta=0.0)
    with pytest.raises(ConfigError, match="'aligndistil_lam_max'"):
        GRPOConfig(aligndistil_lam_max=-1.0)


@pytest.mark.parametrize("contrastive", [False, True])
def test_aligndistil_in_a_real_grpo_run(tmp_path, contrastive):
    """AlignDistil from the config in the real GRPOTrainer loop (tiny Llamas as DPO, reference and reverse models)."""
    pytest.importorskip("transformers")
    from tests.trainers.bandit import BanditEngine, tiny_model
    from turngym.trainers.config import GRPOConfig
    from turngym.trainers.grpo import GRPOTrainer

    dpo = tiny_model(seed=1)
    with torch.no_grad():
        dpo.lm_head.weight.mul_(5.0)
    dpo.save_pretrained(tmp_path / "dpo")
    tiny_model(seed=0).save_pretrained(tmp_path / "ref")  # the student's own initial weights
    tiny_model(seed=2).save_pretrained(tmp_path / "rev")
    spec = {"name": "aligndistil", "teacher": f"hf:{tmp_path / 'dpo'}", "ref": f"hf:{tmp_path / 'ref'}"}
    if contrastive:
        spec["reverse_teacher"] = f"hf:{tmp_path / 'rev'}"
    student = tiny_model(seed=0)
    before = [p.detach().clone() for p in student.parameters()]
    cfg = GRPOConfig(
        env_id="bandit",
        task_ids=["0", "1"],
        steps=2,
        tasks_per_step=2,
        group_size=4,
        lr=1e-2,
        mini_batch_size=8,
        micro_batch_size=4,
        max_new_tokens=2,
        output_dir=str(tmp_path / "run"),
        progress=False,
        tensorboard=False,
        plot=False,
        save_every=0,
        reward_shaping=[{"name": "zero"}],
        extra_advantages=[spec],
        aligndistil_delta=0.05,
        aligndistil_lam_max=2.0,
    )
    GRPOTrainer(student, config=cfg, engine=BanditEngine(student, {"0": {4}, "1": {8}})).train()
    rows = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    lams = [r["aligndistil_lam"] for r in rows if "aligndistil_lam" in r]
    assert len(lams) == 2 and all(0.0 < x <= 2.0 for x in lams), lams
    lines = [json.loads(x) for x in (tmp_path / "run" / "distill.jsonl").read_text().splitlines()]
    assert {r["method"] for r in lines} == {"aligndistil"} and all(r["signal_tokens"] > 0 for r in lines)
    assert any(not torch.equal(a, b) for a, b in zip(before, student.parameters()))
