"""On-policy distillation for multi-turn agents: OPD, G-OPD / ExOPD, AlignDistil, with TCOD's depth curriculum on top.

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
AlignDistil's teacher (`AlignDistilTeacher`) is a `TokenScorer` built from the full next-token logits of two or three
models (`LogitScorer`: `batch_logits`), so AlignDistil is OPD with that teacher.
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
TV_EPS = 1e-6


class TokenScorer(Protocol):
    """A policy that returns log π(token_k | tokens_<k) for every token of given sequences (0.0 at position 0)."""

    def token_logprobs(self, sequences: Sequence[Sequence[int]]) -> list[list[float]]: ...


class LogitScorer(Protocol):
    """A model that returns the next-token logits (B, T, V) of right-padded sequences: row k predicts token k + 1."""

    def batch_logits(self, sequences: Sequence[Sequence[int]]) -> torch.Tensor: ...


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
    # AlignDistil (arXiv 2503.02832) is OPD's advantage with the AlignDistil teacher (`AlignDistilTeacher`): the
    # extrapolation λ_t lives in the teacher's logits, so the advantage itself is log π_T − log π_S
    "aligndistil": opd_advantages,
}


def total_variation(logits_a: torch.Tensor, logits_b: torch.Tensor) -> torch.Tensor:
    """TV(softmax(a), softmax(b)) = ½ Σ_v |p_a(v) − p_b(v)| over the last (vocabulary) axis: (..., V) -> (...)."""
    import torch

    return 0.5 * (torch.softmax(logits_a, -1) - torch.softmax(logits_b, -1)).abs().sum(-1)


def aligndistil_lambda(
    ref_logits: torch.Tensor, shift: torch.Tensor, delta: float = 0.1, lam_max: float = 3.0
) -> torch.Tensor:
    """AlignDistil's token-adaptive extrapolation (turngym choice of the rule): λ_t = min(λ_max, δ / (TV_t + 1e-6)),
    TV_t = TV(softmax(z_ref + d), softmax(z_ref)) the distribution shift that one unit of the logit step d makes at
    token t (d = z_DPO − z_ref: TV(π_DPO,t, π_ref,t)). Tokens where the DPO model barely moved get up to λ_max, tokens
    where it moved a lot get λ_t < 1, so the teacher moves every token by about δ. (..., V) -> (...)."""
    if not delta > 0 or not lam_max > 0:
        raise ConfigError(f"aligndistil: delta and lam_max must be > 0, got {delta}, {lam_max}")
    tv = total_variation(ref_logits + shift, ref_logits)
    return (delta / (tv + TV_EPS)).clamp(max=lam_max)


def aligndistil_logits(
    dpo_logits: torch.Tensor,
    ref_logits: torch.Tensor,
    reverse_logits: torch.Tensor | None = None,
    token_adaptive: bool = True,
    lam: float = 1.0,
    delta: float = 0.1,
    lam_max: float = 3.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """AlignDistil's teacher logits z_T = z_ref + λ_t·d (arXiv 2503.02832), with d = z_DPO − z_ref, or the contrastive
    d = z_DPO − z_revDPO when `reverse_logits` (a reverse DPO model: trained with chosen and rejected swapped) is given.
    λ_t = `aligndistil_lambda` per token when `token_adaptive`, else the constant `lam` (λ > 1 extrapolates, as ExOPD
    does with log-probs). Shapes (..., V); returns (z_T, λ_t of shape (...))."""
    import torch

    if dpo_logits.shape != ref_logits.shape or (
        reverse_logits is not None and reverse_logits.shape != ref_logits.shape
    ):
        raise ConfigError("aligndistil: the DPO, reference and reverse models' logits differ in shape")
    shift = dpo_logits - (ref_logits if reverse_logits is None else reverse_logits)
    if token_adaptive:
        lam_t = aligndistil_lambda(ref_logits, shift, delta, lam_max)
    else:
        lam_t = torch.full(ref_logits.shape[:-1], float(lam), device=ref_logits.device)
    return ref_logits + lam_t[..., None] * shift, lam_t


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

    def batch_logits(self, sequences: Sequence[Sequence[int]]) -> torch.Tensor:
        """Next-token logits (B, T, V) of the right-padded sequences, in one forward pass (float32, on the model's
        device)."""
        import torch

        device = next(self.model.parameters()).device
        ids = _padded_ids(sequences, self.pad_id)
        att = (torch.arange(ids.shape[1])[None] < torch.tensor([len(s) for s in sequences])[:, None]).long()
        with torch.no_grad():
            return self.model(input_ids=ids.to(device), attention_mask=att.to(device)).logits.float()

    def token_logprobs(self, sequences: Sequence[Sequence[int]]) -> list[list[float]]:
        out: list[list[float]] = []
        for b in range(0, len(sequences), self.batch_size):
            chunk = [list(s) for s in sequences[b : b + self.batch_size]]
            out += _gathered(self.batch_logits(chunk), chunk, self.pad_id)
        return out


def _padded_ids(sequences: Sequence[Sequence[int]], pad_id: int) -> torch.Tensor:
    import torch

    ids = torch.full((len(sequences), max(len(s) for s in sequences)), pad_id, dtype=torch.long)
    for i, s in enumerate(sequences):
        ids[i, : len(s)] = torch.tensor(list(s), dtype=torch.long)
    return ids


def _gathered(logits: torch.Tensor, sequences: Sequence[Sequence[int]], pad_id: int = 0) -> list[list[float]]:
    """Per-sequence log-probs of each token under next-token `logits` (B, T, V): [0.0, log p(s_1|s_0), ...]."""
    import torch

    ids = _padded_ids(sequences, pad_id).to(logits.device)
    lp = torch.log_softmax(logits[:, :-1], dim=-1).gather(-1, ids[:, 1:, None])[..., 0].cpu()
    return [[0.0] + lp[i, : len(s) - 1].tolist() for i, s in enumerate(sequences)]


class AlignDistilTeacher:
    """AlignDistil's teacher as a `TokenScorer`: log π_T(token) with π_T = softmax(`aligndistil_logits`(...)) from the
    next-token logits of the DPO model (`dpo`), the reference (`ref`) and optionally a reverse DPO model (`reverse`),
    each a `LogitScorer` (`CausalLMScorer`). The λ_t of every scored token is kept (`lambdas`) until `clear()`."""

    def __init__(
        self,
        dpo: Any,
        ref: Any,
        reverse: Any = None,
        token_adaptive: bool = True,
        lam: float = 1.0,
        delta: float = 0.1,
        lam_max: float = 3.0,
        batch_size: int = 4,
    ):
        for who, m in (("teacher", dpo), ("ref", ref), ("reverse_teacher", reverse)):
            if m is not None and not callable(getattr(m, "batch_logits", None)):
                raise ConfigError(
                    f"aligndistil: the {who} needs next-token logits (batch_logits(), e.g. a CausalLMScorer or an "
                    f"hf:PATH checkpoint); {type(m).__name__} has none"
                )
        self.dpo, self.ref, self.reverse = dpo, ref, reverse
        self.kw = {"token_adaptive": token_adaptive, "lam": lam, "delta": delta, "lam_max": lam_max}
        self.batch_size = batch_size
        self._lams: dict[tuple[int, ...], list[float]] = {}

    def token_logprobs(self, sequences: Sequence[Sequence[int]]) -> list[list[float]]:
        out: list[list[float]] = []
        for b in range(0, len(sequences), self.batch_size):
            chunk = [list(s) for s in sequences[b : b + self.batch_size]]
            rev = self.reverse.batch_logits(chunk) if self.reverse is not None else None
            z, lam = aligndistil_logits(
                self.dpo.batch_logits(chunk), self.ref.batch_logits(chunk), rev, **self.kw
            )
            out += _gathered(z, chunk)
            lam = lam.cpu()
            for i, s in enumerate(
                chunk
            ):  # λ of the position that predicts token k, aligned like the log-probs
                self._lams[tuple(s)] = [0.0] + lam[i, : len(s) - 1].tolist()
        return out

    def lambdas(self, sequences: Sequence[Sequence[int]]) -> list[list[float]]:
        """λ_t per token of sequences scored since the last `clear()` (0.0 at position 0)."""
        return [self._lams[tuple(s)] for s in sequences]

    def clear(self) -> None:
        self._lams.clear()


# ---- the trainer hook -------------------------------------------------------------------------------------------
def load_scorer(spec: str | TokenScorer, batch_size: int = 4) -> TokenScorer:
    """A teacher from a config string: `hf:PATH` or `PATH` (a transformers checkpoint folder), or an object that
    already has `token_logprobs` (Python API: a vLLM / OpenAI-compatible backend wrapped to score given tokens) or
    `batch_logits` (a `LogitScorer`, for AlignDistil)."""
    if hasattr(spec, "token_logprobs") or hasattr(spec, "batch_logits"):
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
    reverse_teacher: str | Any | None = None,
    token_adaptive: bool | None = None,
) -> Callable[..., torch.Tensor]:
    """Hook factory for `extra_advantages` (config `{"name": "opd", "teacher": "hf:PATH", "coef": 1.0}`).

    Adds the OPD / G-OPD / ExOPD / AlignDistil per-token advantage to the trainer's. `tcod: {"d0": 1, "every": 10,
    "d_max": 50}` applies TCOD: only turns < depth(step) get signal. Teacher (and π_ref) scores are cached for the step
    (the trainer calls the hook per micro-batch and per PPO epoch). Each call's report (reverse KL on signalled tokens
    and on all policy tokens, depth) is appended to `<output_dir>/<log_file>`: the KL curve (average the lines of a step).

    AlignDistil (`method="aligndistil"`): `teacher` is the DPO model, `ref` (required) the reference, `reverse_teacher`
    an optional reverse DPO model (contrastive teacher), `token_adaptive` (default True) picks λ_t per token with the
    config's `aligndistil_delta` and `aligndistil_lam_max`; False uses the constant `lam` (default 1). The mean λ_t over
    signalled tokens is logged as `aligndistil_lam` (step metrics, over the step's hook calls) and `lam_mean` (each line
    of the log file).
    """
    from turngym.trainers.curricula import tcod_depth

    if method not in DISTILL_ADVANTAGES:
        raise UnknownNameError(f"unknown distillation method {method!r}; known: {sorted(DISTILL_ADVANTAGES)}")
    align = method == "aligndistil"
    if align and ref is None:
        raise ConfigError(
            "aligndistil needs `ref`: the reference model whose logits the teacher extrapolates from (ref: hf:PATH)"
        )
    if not align and (reverse_teacher is not None or token_adaptive is not None):
        raise ConfigError(
            f"{method}: reverse_teacher and token_adaptive are options of 'aligndistil' only (name: aligndistil)"
        )
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

    def align_teacher(ctx: Any) -> AlignDistilTeacher:
        if "align" not in state:
            from turngym.trainers.config import default_grpo_config

            cfg = getattr(ctx, "config", None)
            defaults = default_grpo_config()
            state["align"] = AlignDistilTeacher(
                load_scorer(teacher, batch_size),
                load_scorer(ref, batch_size),  # type: ignore[arg-type]
                load_scorer(reverse_teacher, batch_size) if reverse_teacher is not None else None,
                token_adaptive=True if token_adaptive is None else bool(token_adaptive),
                lam=1.0 if lam is None else float(lam),
                delta=float(getattr(cfg, "aligndistil_delta", defaults.aligndistil_delta)),
                lam_max=float(getattr(cfg, "aligndistil_lam_max", defaults.aligndistil_lam_max)),
                batch_size=batch_size,
            )
            scorers["teacher"] = _CachedScorer(state["align"], state, "teacher")
        return state["align"]

    def extra(episodes: Sequence[TokenEpisode], batch: Any, ctx: Any) -> torch.Tensor:
        import json
        from pathlib import Path

        import torch

        step = int(getattr(ctx, "step", 0))
        at = align_teacher(ctx) if align else None
        if state["step"] != step:
            state["step"], state["cache"], state["lam"] = step, {}, [0.0, 0]
            if at is not None:
                at.clear()
        depth = tcod_depth(step, **tcod) if tcod is not None else None
        if at is None:
            adv, mask, rep = distill_advantages(
                episodes, scorer("teacher", teacher), method, lam, scorer("ref", ref), depth
            )
        else:  # π_ref and λ live inside the AlignDistil teacher
            adv, mask, rep = distill_advantages(episodes, scorers["teacher"], method, None, None, depth)  # type: ignore[arg-type]
            lams = pad(at.lambdas([ep.input_ids for ep in episodes])) * mask
            rep["lam_mean"] = float(lams.sum() / mask.sum().clamp(min=1))
            state["lam"][0] += float(lams.sum())
            state["lam"][1] += int(mask.sum())
            extra_metrics = getattr(ctx, "extra", None)
            if isinstance(extra_metrics, dict):  # the step's mean λ_t over every signalled token so far
                extra_metrics["aligndistil_lam"] = state["lam"][0] / max(state["lam"][1], 1)
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
