"""The token-level policy contract: what the rollout engine, the trainers and `turngym serve` call on a model.

An `Agent` maps live episodes to action strings (enough for evaluation). Training needs more: the exact token ids
a model saw and generated, with their sampling log-probs, and a way to push new weights into the sampler. That is
`TokenPolicy`, a protocol the built-in backends implement:

    HFPolicy   (agents/backends/hf.py)    transformers causal LM, KV reuse across turns
    VLMPolicy  (agents/backends/vlm.py)   transformers vision-language model (`multimodal = True`)
    VLLMPolicy (agents/backends/vllm.py)  a vLLM offline engine

A backend of your own implements the same members; subclassing `TokenPolicyBase` gives the sampling settings,
their validation and the `Agent` side (`act` honours `system_prompt`, `prompt_hook` and `max_context_tokens` the
same way in every backend) for free, leaving `generate` and `load_weights` to write. `check_token_policy` is what
the engine and the trainer call on what they are given: it names every missing member instead of failing deep
inside a rollout.

A multimodal policy (`multimodal = True`) also implements `VisionTokenPolicy`: the engine asks it how a user turn
with an image is written (`user_content`), how a prompt's image placeholders expand (`expand_images`), and what the
trainer's forward pass needs (`image_inputs`, `mm_token_type_ids`).
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from turngym.agents.base import Agent, EpisodeContext
from turngym.agents.chat import ChatFormat
from turngym.agents.parsing import parse_action
from turngym.agents.prompting import context_messages, fit_history, system_text
from turngym.errors import ConfigError


@dataclass
class Generation:
    """One sampled continuation: its token ids, the sampling log-prob of each, the decoded assistant text, and why it
    stopped."""

    token_ids: list[int]
    logprobs: list[float]
    text: str
    finish_reason: str  # "stop" (end-of-turn id), "stop_string", "length" or "cancelled"
    # under a constraint (turngym.agents.constraints): per token, the ids it was sampled among (None: any id), and
    # `logprobs` are renormalised over them; None when the call was not constrained
    allowed: list[list[int] | None] | None = None


@runtime_checkable
class TokenPolicy(Protocol):
    """A batched sampler over token ids with a chat template (see the module docstring).

    `generate(prompts, max_new_tokens=None, temperature=None, top_p=None, stop=None, seed=None, cache_keys=None,
    cancel=None, **kw)` returns one `Generation` per prompt; `seed` is an int for the call or one per prompt;
    `cache_keys` may be ignored unless `kv_reuse`; `cancel` (one threading.Event per prompt) may be ignored by a
    backend that cannot stop a row early (its generations then never finish with "cancelled").
    """

    spec: str  # how `make_agent` would name it; recorded on every episode
    chat: ChatFormat  # the tokenizer's chat template, token by token
    tokenizer: Any
    max_new_tokens: int
    temperature: float
    top_p: float
    kv_reuse: bool  # generate() keeps each cache key's KV cache between calls
    multimodal: bool  # a VisionTokenPolicy

    def generate(self, prompts: list[list[int]], **kwargs: Any) -> list[Generation]: ...

    def release_cache(self, keys: list[Any] | None = None) -> None: ...

    def load_weights(self, model_or_state: Any) -> None: ...

    def replica(self) -> TokenPolicy: ...


@runtime_checkable
class VisionTokenPolicy(TokenPolicy, Protocol):
    """A `TokenPolicy` whose prompts carry images (`generate(..., images=[[img, ...] per prompt])`)."""

    use_images: bool  # False: the same model with every image left out (an ablation)
    keep_images: int | None  # evaluation only: how many of the last turns keep their images

    def user_content(self, text: str, image: Any) -> Any: ...

    def expand_images(self, ids: list[int], images: list[Any]) -> list[int]: ...

    def image_inputs(self, images: list[Any]) -> dict[str, Any]: ...

    def mm_token_type_ids(self, ids: list[int]) -> list[int]: ...

    def encode_conversation(self, messages: list[dict[str, Any]], images: list[Any]) -> list[int]: ...


def _members(proto: type) -> set[str]:
    """The public attributes and methods a protocol class declares (its own and its protocol bases')."""
    names: set[str] = set()
    for base in proto.__mro__:
        if getattr(base, "_is_protocol", False) and base is not Protocol:
            names |= {
                n for n in (*vars(base), *getattr(base, "__annotations__", {})) if not n.startswith("_")
            }
    return names


def _missing(obj: Any, proto: type) -> list[str]:
    return sorted(n for n in _members(proto) if not hasattr(obj, n))


def check_token_policy(policy: Any, where: str) -> None:
    """Raise a `ConfigError` naming every member of `TokenPolicy` (and, for a multimodal policy, of
    `VisionTokenPolicy`) that `policy` lacks."""
    missing = _missing(policy, TokenPolicy)
    if not missing and policy.multimodal:
        missing = _missing(policy, VisionTokenPolicy)
    if missing:
        raise ConfigError(
            f"{where} needs a token-level policy (turngym.agents.TokenPolicy: HFPolicy, VLMPolicy, VLLMPolicy, or "
            f"a subclass of TokenPolicyBase); {type(policy).__name__} lacks {', '.join(missing)}"
        )


class TokenPolicyBase(Agent):
    """Sampling settings, their validation and the `Agent` side shared by every token-level backend.

    Subclasses implement `generate` and `load_weights` (and `replica` where copying the model makes sense) and call
    `super().__init__(tokenizer, ...)`. `act` builds each episode's conversation (`messages_for`: the system prompt
    plus the `prompt_hook`'s text, the history trimmed to `max_context_tokens`), renders it with the chat template,
    generates, and parses the actions; a backend whose prompts carry more than token ids overrides `prompts_for`.
    """

    kv_reuse: bool = False
    multimodal: bool = False
    supports_constraints: bool = False  # generate() takes `constraints` (turngym.agents.constraints)

    def __init__(
        self,
        tokenizer: Any,
        *,
        spec: str,
        max_new_tokens: int = 128,
        temperature: float = 1.0,
        top_p: float = 1.0,
        stop: list[str] | None = None,
        system_prompt: str | None = None,
        parser: str = "raw",
        max_context_tokens: int | None = None,
        seed: int = 0,
        prompt_hook: Callable[[str], str | None] | None = None,
    ):
        if max_new_tokens < 1:
            raise ConfigError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
        if temperature < 0:
            raise ConfigError(f"temperature must be >= 0, got {temperature}")
        if not 0 < top_p <= 1:
            raise ConfigError(f"top_p must be in (0, 1], got {top_p}")
        if max_context_tokens is not None and max_context_tokens <= max_new_tokens:
            raise ConfigError(
                f"max_context_tokens ({max_context_tokens}) must exceed max_new_tokens ({max_new_tokens}): the "
                "prompt gets what is left of the context after the generation budget"
            )
        self.tokenizer = tokenizer
        self.chat = ChatFormat(tokenizer)
        self.spec = spec
        self.max_new_tokens = int(max_new_tokens)
        self.temperature = float(temperature)
        self.top_p = float(top_p)
        self.stop = list(stop or [])
        self.system_prompt = system_prompt
        self.parser = parser
        self.max_context_tokens = max_context_tokens
        self.seed = int(seed)
        self.prompt_hook = prompt_hook  # instructions -> extra system text (e.g. memory.PromptContext)
        # EpisodeContext -> constraint or None, called before each turn (turngym.agents.constraints; set by `constrain`)
        self.constraint: Callable[[EpisodeContext], Any] | None = None
        self.constraint_spec = ""

    def constrain(self, spec: str) -> None:
        """Decode under the named constraint from now on (`turngym.agents.constraints.make_constraint`: "admissible",
        "arguments:VERB,..."; "" lifts it): in `act`, in the rollout engine and in greedy evaluation alike."""
        from turngym.agents.constraints import make_constraint

        if spec and not self.supports_constraints:
            raise ConfigError(f"{type(self).__name__} cannot decode under a constraint ({spec!r})")
        self.constraint = make_constraint(spec, self)
        self.constraint_spec = spec if self.constraint is not None else ""

    def settings(self) -> dict[str, Any]:
        """The constructor's sampling settings as keyword arguments (what a replica copies)."""
        return {
            "max_new_tokens": self.max_new_tokens,
            "temperature": self.temperature,
            "top_p": self.top_p,
            "stop": self.stop,
            "system_prompt": self.system_prompt,
            "parser": self.parser,
            "max_context_tokens": self.max_context_tokens,
            "seed": self.seed,
            "spec": self.spec,
            "prompt_hook": self.prompt_hook,
        }

    # ---- the token contract ----------------------------------------------------------------------------------
    @abstractmethod
    def generate(self, prompts: list[list[int]], **kwargs: Any) -> list[Generation]:
        """One sampled continuation per prompt (see `TokenPolicy`)."""

    @abstractmethod
    def load_weights(self, model_or_state: Any) -> None:
        """Copy a trainer's weights (an nn.Module or a state dict) into the sampler."""

    def release_cache(self, keys: list[Any] | None = None) -> None:  # noqa: B027 - nothing kept by default
        """Forget the KV caches kept for `keys` (all with None). A policy without `kv_reuse` keeps none."""

    def replica(self) -> TokenPolicy:
        raise ConfigError(
            f"{type(self).__name__} cannot copy itself (replica()); pass the trainer a rollout_policy=... instead"
        )

    # ---- the Agent interface (evaluation) ---------------------------------------------------------------------
    def begin_episode(self, ctx: EpisodeContext) -> None:
        ctx.state["system_prompt"] = system_text(self.system_prompt, self.prompt_hook, ctx.instructions)

    def messages_for(self, ctx: EpisodeContext) -> list[dict[str, Any]]:
        """The episode's conversation: its system prompt (set by `begin_episode`), then the turns, the oldest
        dropped first when the prompt would not leave `max_new_tokens` of `max_context_tokens`."""
        msgs = context_messages(ctx, ctx.state.get("system_prompt", self.system_prompt))
        if self.max_context_tokens:
            budget = self.max_context_tokens - self.max_new_tokens
            msgs = fit_history(msgs, lambda m: len(self.chat.prompt_ids(m)), budget)
        return msgs

    def prompts_for(self, contexts: list[EpisodeContext]) -> tuple[list[list[int]], dict[str, Any]]:
        """Each live episode's prompt ids, and extra keyword arguments for `generate` (none for text policies)."""
        return [self.chat.prompt_ids(self.messages_for(ctx)) for ctx in contexts], {}

    def act(self, contexts: list[EpisodeContext]) -> list[str]:
        from turngym.agents.constraints import constraints_for

        prompts, extra = self.prompts_for(contexts)
        cons = constraints_for(self, contexts)
        if cons is not None:
            extra = {**extra, "constraints": cons}
        actions = []
        for ctx, g in zip(contexts, self.generate(prompts, **extra)):
            parsed = parse_action(g.text, self.parser)
            ctx.state.setdefault("raw_actions", []).append(g.text)
            if not parsed.ok:
                ctx.state.setdefault("parse_errors", {})[len(ctx.history)] = parsed.error
            actions.append(parsed.action)
        return actions
