"""ChatShopBuddy's Hierarchical Reward Modeling (HRM) and Dynamic Contrastive Policy Optimization (DCPO), from
"ChatShopBuddy: Towards Reliable Conversational Shopping Agents via Reinforcement Learning" (Cheng et al., arXiv
2603.06065), for `turngym/ShopAssistant-v0` (and any env with the same info schema).

HRM: product correctness gates the subjective terms; a process reward scores tool/question efficiency. Per episode i
of a group, on its last turn (0 on the others):

    R_i = c_i · (1 + w_q·q_i + w_e·e_i)              gate_process = True (default)
    R_i = c_i · (1 + w_q·q_i) + w_e·e_i              gate_process = False (efficiency earned even when wrong)

    c_i  product correctness: `info["success"]` (the customer accepted product and options), or `info["score"]`
    q_i  persuasiveness / response quality of the final assistant message in [0, 1]: the deterministic `rubric_score`
         (offline stand-in for the paper's LLM judge), or a judge callable (`judge`, e.g. `ModelJudge`). Computed only
         when the gate is open (c_i > 0): a judge model is never called for a wrong product.
    e_i  process efficiency: OTC's tool reward r_tool(m_i, n) (`rewards.otc_tool_reward`) with m_i the episode's
         questions + tool calls and n the fewest among the group's correct episodes: 1 at the group's optimum, less
         with more (or fewer) calls (turngym choice of the functional form; 1 when the group has no correct episode).

Defaults (turngym choice): w_q = 0.5, w_e = 0.5, gate_process = True.

DCPO (`callbacks: [{name: dcpo, keep: 2}]`): dynamic trajectory selection by reward and reasoning length. In each group
the episodes are ranked by (reward, then fewer policy tokens); the update trains on the `keep` best with a positive
advantage and the `keep` worst with a negative one (a contrastive subset; at equal reward the shorter reasoning is
the better positive and the longer the worse negative); the rest (and every zero-advantage sample) is dropped.
Logged: `dcpo_kept`, `dcpo_dropped`, `dcpo_len_kept_pos` / `dcpo_len_kept_neg` (mean policy tokens).

Config: `reward_shaping: [{name: chatshopbuddy, w_q: 0.5, w_e: 0.5, gate_process: true, judge: null}]`.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable, Sequence
from typing import Any

import torch

from turngym.agents.trajectory import TokenEpisode
from turngym.errors import ConfigError
from turngym.trainers.callbacks import Callback, register_callback
from turngym.trainers.rewards import _last_turn, episode_tool_calls, otc_tool_reward

Judge = Callable[[str, TokenEpisode], float]

# ---- what the episode says ----------------------------------------------------------------------------------------
_THINK = re.compile(r"<think>.*?</think>", re.S)
_COMMAND = re.compile(r"\b(?:ask|search|view|recommend)\s*\[.*?\]|\bend\b\s*$", re.S | re.I)
_WORD = re.compile(r"\$?\d+(?:\.\d+)?|[a-z][a-z\-]{2,}", re.I)
STOPWORDS = frozenset(
    "the and for you your are with this that have has was were what which would like please want need looking "
    "i'd i'm its it's not but any all one can could should does did don't doesn't hi hello thanks thank okay "
    "customer there here some more just also very really about into from them they then than".split()
)


def final_message(ep: TokenEpisode) -> str:
    """The last assistant message of the episode (the policy's raw text, `<think>` blocks removed): from
    `meta["messages"]` (the rollout engine's chat), else the last step's action; "" when there is none."""
    msgs = [m for m in (ep.meta or {}).get("messages", []) if m.get("role") == "assistant"]
    if msgs:
        text = msgs[-1].get("content", "")
        text = text if isinstance(text, str) else " ".join(str(x.get("text", "")) for x in text)
    elif ep.episode is not None and ep.episode.steps:
        text = ep.episode.steps[-1].action
    else:
        text = ""
    return _THINK.sub("", text).strip()


def customer_text(ep: TokenEpisode) -> str:
    """What the customer said: the user messages of the chat (the env's observations), else the text trajectory's."""
    msgs = [m for m in (ep.meta or {}).get("messages", []) if m.get("role") == "user"]
    if msgs:
        return "\n".join(m["content"] if isinstance(m.get("content"), str) else "" for m in msgs)
    if ep.episode is not None:
        return "\n".join([ep.episode.observation, *(s.observation for s in ep.episode.steps)])
    return ""


def content_words(text: str) -> set[str]:
    """Lower-cased words of ≥ 3 letters and numbers (with an optional $) of `text`, without common stopwords."""
    return {w.lower().lstrip("$") for w in _WORD.findall(text)} - STOPWORDS


def episode_questions(ep: TokenEpisode) -> int:
    """Questions asked: the steps whose `info["cost"]` names a `question` cost (ShopAssistant's ask[...])."""
    return sum(1 for info in ep.infos if "question" in (info.get("cost") or {}))


# ---- the rubric (offline judge) -----------------------------------------------------------------------------------
def rubric_checks(
    message: str, customer: str = "", min_words: int = 5, max_chars: int = 300
) -> dict[str, bool]:
    """The three checks of the offline judge on the final assistant message (text outside the env command is the
    part addressed to the customer):

    explains   persuasiveness: at least `min_words` words outside the command (it tells the customer why)
    grounded   persuasiveness: it repeats at least one content word the customer said (a need, an option value, the
               budget), so the pitch is about this customer's needs
    concise    response quality: at most `max_chars` characters in all
    """
    prose = _COMMAND.sub(" ", message)
    return {
        "explains": len(re.findall(r"[A-Za-z$\d][\w'$.\-]*", prose)) >= min_words,
        "grounded": bool(content_words(prose) & content_words(customer)),
        "concise": len(message) <= max_chars,
    }


def rubric_score(message: str, customer: str = "", min_words: int = 5, max_chars: int = 300) -> float:
    """The offline judge's score in [0, 1]: the share of `rubric_checks` passed (each weighs 1/3)."""
    checks = rubric_checks(message, customer, min_words, max_chars)
    return sum(checks.values()) / len(checks)


class ModelJudge:
    """A judge backed by a language model: `generate(prompt) -> str` is any text generator (a closure over a model
    backend, as `LLMCustomer` takes). The model rates the final message 0-10 for persuasiveness and response quality
    given what the customer said; the first number of its reply / 10 is the score. An unusable reply (no number, a
    failure) falls back to `rubric_score`."""

    PROMPT = (
        "You grade a shopping assistant's final message to a customer for persuasiveness (does it explain why the "
        "product fits this customer's stated needs?) and response quality (clear, concise, polite). Reply with one "
        "integer from 0 (poor) to 10 (excellent).\nThe customer said:\n{customer}\nThe assistant's final message:\n"
        "{message}\nScore:"
    )

    def __init__(self, generate: Callable[[str], str]):
        if not callable(generate):
            raise ConfigError(
                f"ModelJudge needs a callable generate(prompt) -> str, got {type(generate).__name__}"
            )
        self.generate = generate

    def __call__(self, message: str, ep: TokenEpisode) -> float:
        customer = customer_text(ep)
        try:
            reply = str(self.generate(self.PROMPT.format(customer=customer[-2000:], message=message)))
            m = re.search(r"\d+(?:\.\d+)?", reply)
        except Exception:  # a judge failure must not stop training
            m = None
        if m is None:
            return rubric_score(message, customer)
        return min(1.0, max(0.0, float(m.group()) / 10.0))


def rubric_judge(min_words: int = 5, max_chars: int = 300) -> Judge:
    """The offline judge as a `(message, episode) -> float` callable."""
    return lambda message, ep: rubric_score(message, customer_text(ep), min_words, max_chars)


def resolve_judge(judge: Judge | str | None, min_words: int = 5, max_chars: int = 300) -> Judge:
    """None or "rubric": the offline rubric; a callable: itself; "module:attr": that callable, imported (YAML)."""
    if judge is None or judge == "rubric":
        return rubric_judge(min_words, max_chars)
    if callable(judge):
        return judge
    if isinstance(judge, str) and ":" in judge:
        module, _, attr = judge.partition(":")
        try:
            obj = getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError) as exc:
            raise ConfigError(f"chatshopbuddy: cannot import judge {judge!r}: {exc}") from exc
        if not callable(obj):
            raise ConfigError(f"chatshopbuddy: judge {judge!r} is not callable")
        return obj
    raise ConfigError(
        f"chatshopbuddy: judge must be null/'rubric', a callable (message, episode) -> float, or 'module:attr'; "
        f"got {judge!r}"
    )


# ---- HRM ----------------------------------------------------------------------------------------------------------
def hrm_reward(
    c: float, q: float, e: float, w_q: float = 0.5, w_e: float = 0.5, gate_process: bool = True
) -> float:
    """ChatShopBuddy's gated episode reward: c·(1 + w_q·q + w_e·e), or c·(1 + w_q·q) + w_e·e without gating e."""
    if gate_process:
        return c * (1.0 + w_q * q + w_e * e)
    return c * (1.0 + w_q * q) + w_e * e


def chatshopbuddy(
    group: Sequence[TokenEpisode],
    w_q: float = 0.5,
    w_e: float = 0.5,
    gate_process: bool = True,
    judge: Judge | None = None,
    correct: str = "success",
    otc_c: float = 1.0,
) -> tuple[list[list[float]], list[dict[str, float]]]:
    """HRM rewards of one group (module docstring) and, per episode, its terms {c, q, e, m} (q is 0 when the gate is
    closed: the judge is not called)."""
    if correct not in ("success", "score"):
        raise ConfigError(f"chatshopbuddy: correct must be 'success' or 'score', got {correct!r}")
    judge = judge or rubric_judge()
    cs = [
        float(ep.success)
        if correct == "success"
        else float(ep.infos[-1].get("score", 0.0) if ep.infos else 0.0)
        for ep in group
    ]
    calls = [episode_questions(ep) + episode_tool_calls(ep) for ep in group]
    best = [m for m, c in zip(calls, cs) if c > 0]
    out, terms = [], []
    for ep, c, m in zip(group, cs, calls):
        q = min(1.0, max(0.0, float(judge(final_message(ep), ep)))) if c > 0 else 0.0
        e = otc_tool_reward(m, min(best), otc_c) if best else 1.0
        out.append(_last_turn(ep, hrm_reward(c, q, e, w_q, w_e, gate_process)))
        terms.append({"c": c, "q": q, "e": e, "m": float(m)})
    return out, terms


def make_chatshopbuddy(
    w_q: float = 0.5,
    w_e: float = 0.5,
    gate_process: bool = True,
    judge: Judge | str | None = None,
    correct: str = "success",
    otc_c: float = 1.0,
    min_words: int = 5,
    max_chars: int = 300,
) -> Callable[..., list[list[float]]]:
    """Hook factory (config `{"name": "chatshopbuddy", ...}`): shaper(group, ctx). Leaves the step's mean terms in
    `ctx.extra` (`hrm_gate_open`, `hrm_quality` over open gates, `hrm_efficiency`), which the trainer logs."""
    for name, v in (("w_q", w_q), ("w_e", w_e), ("otc_c", otc_c)):
        if not isinstance(v, (int, float)) or isinstance(v, bool) or v < 0 or (name == "otc_c" and v == 0):
            raise ConfigError(f"chatshopbuddy: {name} must be a number >= 0 (otc_c > 0), got {v!r}")
    if correct not in ("success", "score"):
        raise ConfigError(f"chatshopbuddy: correct must be 'success' or 'score', got {correct!r}")
    fn = resolve_judge(judge, min_words, max_chars)
    sums = {"n": 0, "open": 0, "q": 0.0, "e": 0.0, "step": None}

    def shaper(group: Sequence[TokenEpisode], ctx: Any = None) -> list[list[float]]:
        new, terms = chatshopbuddy(group, w_q, w_e, gate_process, fn, correct, otc_c)
        if ctx is not None:
            if sums["step"] != ctx.step:
                sums.update(n=0, open=0, q=0.0, e=0.0, step=ctx.step)
            sums["n"] += len(terms)
            sums["open"] += sum(t["c"] > 0 for t in terms)
            sums["q"] += sum(t["q"] for t in terms)
            sums["e"] += sum(t["e"] for t in terms)
            ctx.extra["hrm_gate_open"] = sums["open"] / max(1, sums["n"])
            ctx.extra["hrm_quality"] = sums["q"] / max(1, sums["open"])
            ctx.extra["hrm_efficiency"] = sums["e"] / max(1, sums["n"])
        return new

    return shaper


# ---- DCPO ---------------------------------------------------------------------------------------------------------
def dcpo_select(
    items: list[tuple[TokenEpisode, torch.Tensor]], keep: int = 2, zero_tol: float = 1e-6
) -> list[tuple[TokenEpisode, torch.Tensor]]:
    """DCPO's dynamic selection (ChatShopBuddy): per group (`ep.group`), rank by (reward desc, policy tokens asc);
    keep the first `keep` with a positive mean advantage and the last `keep` with a negative one. Order: the
    selected items in their input order."""
    if keep < 1:
        raise ConfigError(f"dcpo: keep must be >= 1, got {keep}")
    groups: dict[Any, list[int]] = {}
    for i, (ep, _) in enumerate(items):
        groups.setdefault(_group_key(ep.group), []).append(i)
    chosen: set[int] = set()
    for idx in groups.values():
        ranked = sorted(idx, key=lambda i: (-items[i][0].total_reward, items[i][0].num_policy_tokens, i))
        adv = {i: float(items[i][1].float().mean()) if items[i][1].numel() else 0.0 for i in idx}
        pos = [i for i in ranked if adv[i] > zero_tol][:keep]
        neg = [i for i in reversed(ranked) if adv[i] < -zero_tol][:keep]
        chosen.update(pos + neg)
    return [x for i, x in enumerate(items) if i in chosen]


def _group_key(group: Any) -> Any:
    return tuple(group) if isinstance(group, list) else group


@register_callback("dcpo")
class DCPOSelection(Callback):
    """DCPO's trajectory selection as an `on_batch` filter (ChatShopBuddy, arXiv 2603.06065): `dcpo_select` on every
    step's batch. `keep`: trajectories kept per group on each side (positive, negative); turngym choice 2."""

    def __init__(self, keep: int = 2, zero_tol: float = 1e-6):
        if isinstance(keep, bool) or int(keep) < 1:
            raise ConfigError(f"dcpo: keep must be >= 1, got {keep!r}")
        self.keep, self.zero_tol = int(keep), float(zero_tol)
        self.last: dict[str, float] = {}

    def on_batch(self, trainer: Any, items: list[tuple[Any, torch.Tensor]]) -> list[tuple[Any, torch.Tensor]]:
        kept = dcpo_select(items, self.keep, self.zero_tol)
        pos = [ep.num_policy_tokens for ep, a in kept if float(a.float().mean()) > 0]
        neg = [ep.num_policy_tokens for ep, a in kept if float(a.float().mean()) < 0]
        self.last = {
            "dcpo_kept": float(len(kept)),
            "dcpo_dropped": float(len(items) - len(kept)),
            "dcpo_len_kept_pos": sum(pos) / len(pos) if pos else 0.0,
            "dcpo_len_kept_neg": sum(neg) / len(neg) if neg else 0.0,
        }
        return kept

    def on_step_end(self, trainer: Any, metrics: dict[str, Any]) -> None:
        metrics.update(self.last)


def _register() -> None:
    from turngym.trainers import hooks

    hooks.register_shaper("chatshopbuddy", make_chatshopbuddy)


_register()
