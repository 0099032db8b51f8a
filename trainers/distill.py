"""On-policy distillation for multi-turn agents: OPD, G-OPD / ExOPD, with TCOD's depth curriculum on top.

The student samples episodes in the env (the ordinary rollout); a teacher scores the student's own tokens in the same
context (one forward pass over each episode's token sequence); the per-token advantage is a dense reward that the
trainer's policy-gradient loss uses in place of (or added to) the episode advantage. Only policy tokens (`policy_mask`)
get a signal; with TCOD only those of the first depth(k) turns.

Shapes: every tensor argument is (B, T) over the padded token sequences of B episodes; `mask` is 1 on tokens that
receive signal. The student log-probs are the sampling policy's (`TokenEpisode.logprobs`), constants for the loss.

    DISTILL_ADVANTAGES[name](teacher_logp, student_logp, mask, ref_logp=None, lam=...) -> (B, T) advantages
    distill_advantages(episodes, teacher, method=..., depth=...)                         -> (advantages, mask, report)

A teacher is anything with `token_logprobs(sequences) -> per-token log-probs` (`TokenScorer`): `CausalLMScorer` wraps a
torch causal LM (a transformers checkpoint such as an RL-trained turngym checkpoint, so the pipeline runs offline);
a vLLM or OpenAI-compatible backend that can score given tokens (prompt log-probs) fits the same protocol.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from turngym.errors import ConfigError, UnknownNameError
from turngym.trainers.curricula import tcod_token_mask

if TYPE_CHECKING:
    import torch

    from turngym.agents.trajectory import TokenEpisode

EXOPD_LAMBDA = 1.25


class TokenScorer(Protocol):
    """A policy that returns log π(token_k | tokens_<k) for every token of given sequences (0.0 at position 0)."""

    def token_logprobs(self, sequences: Sequence[Sequence[int]]) -> list[list[float]]: ...


# ---- the advantages ---------------------------------------------------------------------------------------------
def opd_advantages(
    teacher_logp: torch.Tensor,
    student_logp: torch.Tensor,
    mask: torch.Tensor,
    ref_logp: torch.Tensor | None = None,
    lam: float = 1.0,
) -> torch.Tensor:
    """OPD (on-policy distillation; Agarwal et al. 2024, GKD; Thinking Machines 2025): A_t = log π_T(o_t|·) − log
    π_S(o_t|·), the negative per-token reverse KL on the student's own samples. `ref_logp`/`lam` are ignored (OPD
    is G-OPD with λ = 1)."""
    _check(teacher_logp, student_logp, mask)
    return (teacher_logp - student_logp) * mask


def gopd_advantages(
    teacher_logp: torch.Tensor,
    student_logp: torch.Tensor,
    mask: torch.Tensor,
    ref_logp: torch.Tensor | None = None,
    lam: float = 1.0,
) -> torch.Tensor:
    """G-OPD ("Learning beyond Teacher"): A_t = λ·(log π_T − log π_ref) − (log π_S − log π_ref).

    OPD is dense KL-constrained RL with reward log(π_T/π_ref) and KL to π_ref weighted equally; λ = 1 recovers OPD for
    any π_ref; λ > 1 extrapolates the reward (ExOPD). π_ref: the teacher's pre-RL base model when available (reward
    correction); without `ref_logp` the student's own log-probs are used (turngym choice), giving λ·(log π_T − log π_S).
    """
    _check(teacher_logp, student_logp, mask)
    ref = student_logp if ref_logp is None else ref_logp
    _check(teacher_logp, ref, mask)
    return (lam * (teacher_logp - ref) - (student_logp - ref)) * mask


def exopd_advantages(
    teacher_logp: torch.Tensor,
    student_logp: torch.Tensor,
    mask: torch.Tensor,
    ref_logp: torch.Tensor | None = None,
    lam: float = EXOPD_LAMBDA,
) -> torch.Tensor:
    """ExOPD ("Learning beyond Teacher"): G-OPD with reward extrapolation λ > 1 (default 1.25, turngym choice)."""
    if lam <= 1.0:
        raise ConfigError(
            f"exopd: lam must be > 1 (extrapolation), got {lam}; use 'opd' or 'gopd' for λ <= 1"
        )
    return gopd_advantages(teacher_logp, student_logp, mask, ref_logp, lam)


DISTILL_ADVANTAGES: dict[str, Callable[..., torch.Tensor]] = {
    "opd": opd_advantages,
    "gopd": gopd_advantages,
    "exopd": exopd_advantages,
}


def _check(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor) -> None:
    if a.shape != b.shape or a.shape != mask.shape:
        raise ConfigError(
            f"distillation: log-prob and mask shapes differ: {tuple(a.shape)}, {tuple(b.shape)}, {tuple(mask.shape)}"
        )


def reverse_kl(student_logp: torch.Tensor, teacher_logp: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per-episode reverse KL estimate KL(π_S‖π_T) ≈ mean over masked tokens of log π_S − log π_T (k1 on the
    student's samples): the KL curve the OPD/TCOD ablation plots. Shape (B,); 0 for an episode with no masked token."""
    _check(student_logp, teacher_logp, mask)
    n = mask.sum(-1)
    return ((student_logp - teacher_logp) * mask).sum(-1) / n.clamp(min=1)


# ---- from episodes to tensors -------------------------------------------------------------------------------------
def pad(rows: Sequence[Sequence[float]], value: float = 0.0) -> torch.Tensor:
    """(B, T) float tensor from ragged rows, right-padded with `value`."""
    import torch

    t = max((len(r) for r in rows), default=0)
    out = torch.full((len(rows), t), float(value))
    for i, r in enumerate(rows):
        out[i, : len(r)] = torch.tensor(list(r), dtype=torch.float32)
    return out


def distill_advantages(
    episodes: Sequence[TokenEpisode],
    teacher: TokenScorer,
    method: str = "opd",
    lam: float | None = None,
    ref: TokenScorer | None = None,
    depth: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor, dict[str, Any]]:
    """Per-token distillation advantages for a batch of student episodes.

    The teacher (and π_ref if given) scores each episode's full token sequence; the signal goes to policy tokens,
    restricted by TCOD to turns < `depth` when `depth` is given (see `curricula.tcod_depth`). Returns the (B, T)
    advantages, the (B, T) mask, and a report: mean reverse KL over signalled tokens, over all policy tokens, and the
    number of signalled tokens.
    """
    if method not in DISTILL_ADVANTAGES:
        raise UnknownNameError(f"unknown distillation method {method!r}; known: {sorted(DISTILL_ADVANTAGES)}")
    if not episodes:
        raise ConfigError("distill_advantages: no episodes")
    seqs = [ep.input_ids for ep in episodes]
    t_lp = _scored(teacher, seqs, "teacher")
    r_lp = _scored(ref, seqs, "ref") if ref is not None else None
    policy = pad([ep.policy_mask for ep in episodes])
    if depth is not None:
        mask = pad([tcod_token_mask(ep.turn_index, depth) for ep in episodes]) * policy
    else:
        mask = policy
    s_lp = pad([ep.logprobs for ep in episodes])
    kwargs: dict[str, Any] = {} if lam is None else {"lam": lam}
    adv = DISTILL_ADVANTAGES[method](t_lp, s_lp, mask, ref_logp=r_lp, **kwargs)
    report = {
        "kl": float(reverse_kl(s_lp, t_lp, mask).mean()),
        "kl_all_turns": float(reverse_kl(s_lp, t_lp, policy).mean()),
        "signal_tokens": int(mask.sum()),
        "policy_tokens": int(policy.sum()),
        "depth": depth,
    }
    return adv, mask, report


def _scored(scorer: TokenScorer, seqs: list[list[int]], who: str) -> torch.Tensor:
    rows = scorer.token_logprobs(seqs)
    if len(rows) != len(seqs) or any(len(r) != len(s) for r, s in zip(rows, seqs)):
        raise ConfigError(
            f"the {who} scorer returned log-probs whose lengths do not match the token sequences"
        )
    return pad(rows)


# ---- a teacher from a causal LM ---------------------------------------------------------------------------------
class CausalLMScorer:
    """A `TokenScorer` over a torch causal LM (anything whose forward(input_ids=...) returns `.logits` (B, T, V)).

    `CausalLMScorer.from_pretrained(path)` loads a transformers checkpoint (needs the `train` extra): a larger model,
    or one the project trained itself. Sequences are scored in batches of `batch_size`, right-padded.
    """

    def __init__(self, model: Any, batch_size: int = 4, pad_id: int = 0):
        self.model = model
        self.batch_size = batch_size
        self.pad_id = pad_id

    @classmethod
    def from_pretrained(cls, path: str, batch_size: int = 4, **kwargs: Any) -> CausalLMScorer:
        from turngym.optional import require

        transformers = require("transformers", "train")
        torch = require("torch", "train")
        model = transformers.AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32, **kwargs)
        model.eval()
        return cls(model, batch_size=batch_size)

    def token_logprobs(self, sequences: Sequence[Sequence[int]]) -> list[list[float]]:
        import torch

        out: list[list[float]] = []
        device = next(self.model.parameters()).device
        for b in range(0, len(sequences), self.batch_size):
            chunk = [list(s) for s in sequences[b : b + self.batch_size]]
            t = max(len(s) for s in chunk)
            ids = torch.full((len(chunk), t), self.pad_id, dtype=torch.long)
            att = torch.zeros((len(chunk), t), dtype=torch.long)
            for i, s in enumerate(chunk):
                ids[i, : len(s)] = torch.tensor(s, dtype=torch.long)
                att[i, : len(s)] = 1
            with torch.no_grad():
                logits = self.model(input_ids=ids.to(device), attention_mask=att.to(device)).logits.float()
            lp = torch.log_softmax(logits[:, :-1], dim=-1).gather(-1, ids[:, 1:, None].to(device))[..., 0]
            for i, s in enumerate(chunk):
                out.append([0.0] + lp[i, : len(s) - 1].cpu().tolist())
        return out


# ---- the trainer hook -------------------------------------------------------------------------------------------
def load_scorer(spec: str | TokenScorer, batch_size: int = 4) -> TokenScorer:
    """A teacher from a config string: `hf:PATH` or `PATH` (a transformers checkpoint folder), or an object that
    already has `token_logprobs` (Python API: a vLLM / OpenAI-compatible backend wrapped to score given tokens)."""
    if hasattr(spec, "token_logprobs"):
        return spec  # type: ignore[return-value]
    kind, sep, rest = str(spec).partition(":")
    if sep and kind == "hf":
        return CausalLMScorer.from_pretrained(rest, batch_size=batch_size)
    if sep and kind in ("vllm", "openai"):
        raise ConfigError(
            f"teacher {spec!r}: from a config file only transformers checkpoints (hf:PATH) load here; pass a "
            f"{kind} backend object with token_logprobs() through the Python API"
        )
    return CausalLMScorer.from_pretrained(str(spec), batch_size=batch_size)


def make_distill(
    teacher: str | TokenScorer,
    method: str = "opd",
    lam: float | None = None,
    ref: str | TokenScorer | None = None,
    tcod: dict[str, int] | None = None,
    batch_size: int = 4,
    log_file: str | None = "distill.jsonl",
) -> Callable[..., torch.Tensor]:
    """Hook factory for `extra_advantages` (config `{"name": "opd", "teacher": "hf:PATH", "coef": 1.0}`).

    Adds the OPD / G-OPD / ExOPD per-token advantage to the trainer's. `tcod: {"d0": 1, "every": 10, "d_max": 50}`
    applies TCOD: only turns < depth(step) get signal. Teacher (and π_ref) scores are cached for the step (the trainer
    calls the hook per micro-batch and per PPO epoch). Each call's report (reverse KL on signalled tokens and on all
    policy tokens, depth) is appended to `<output_dir>/<log_file>`: the KL curve (average the lines of a step).
    """
    from turngym.trainers.curricula import tcod_depth

    if method not in DISTILL_ADVANTAGES:
        raise UnknownNameError(f"unknown distillation method {method!r}; known: {sorted(DISTILL_ADVANTAGES)}")
    if tcod is not None:
        unknown = set(tcod) - {"d0", "every", "d_max"}
        if unknown:
            raise ConfigError(f"tcod: unknown keys {sorted(unknown)}; use d0, every, d_max")
        tcod_depth(0, **tcod)  # validates
    state: dict[str, Any] = {"step": None, "cache": {}}
    scorers: dict[str, TokenScorer | None] = {}

    def scorer(which: str, spec: Any) -> TokenScorer | None:
        if which not in scorers:
            scorers[which] = (
                None if spec is None else _CachedScorer(load_scorer(spec, batch_size), state, which)
            )
        return scorers[which]

    def extra(episodes: Sequence[TokenEpisode], batch: Any, ctx: Any) -> torch.Tensor:
        import json
        from pathlib import Path

        import torch

        step = int(getattr(ctx, "step", 0))
        if state["step"] != step:
            state["step"], state["cache"] = step, {}
        depth = tcod_depth(step, **tcod) if tcod is not None else None
        adv, _, rep = distill_advantages(
            episodes, scorer("teacher", teacher), method, lam, scorer("ref", ref), depth
        )
        length = int(batch.input_ids.shape[1]) if batch is not None else adv.shape[1]
        out = torch.zeros((adv.shape[0], length))
        out[:, : min(length, adv.shape[1])] = adv[:, :length]
        out_dir = getattr(getattr(ctx, "config", None), "output_dir", None)
        if (
            log_file and out_dir
        ):  # one line per micro-batch call; average by step (PPO epochs repeat equal lines)
            Path(out_dir).mkdir(parents=True, exist_ok=True)
            with open(Path(out_dir) / log_file, "a", encoding="utf-8") as f:
                f.write(json.dumps({"step": step, "method": method, "episodes": len(episodes), **rep}) + "\n")
        return out

    return extra


class _CachedScorer:
    """Scores each distinct token sequence once per training step."""

    def __init__(self, inner: TokenScorer, state: dict[str, Any], which: str):
        self.inner, self.state, self.which = inner, state, which

    def token_logprobs(self, sequences: Sequence[Sequence[int]]) -> list[list[float]]:
        cache = self.state["cache"]
        keys = [(self.which, tuple(s)) for s in sequences]
        todo = [i for i, k in enumerate(keys) if k not in cache]
        if todo:
            for i, lp in zip(todo, self.inner.token_logprobs([sequences[i] for i in todo])):
                cache[keys[i]] = lp
        return [cache[k] for k in keys]


def _register() -> None:
    import functools

    from turngym.trainers import hooks

    for name in DISTILL_ADVANTAGES:
        hooks.register_extra_advantage(name, functools.partial(make_distill, method=name))


_register()
