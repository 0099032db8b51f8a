"""Model backends, registered in `AGENTS` when `make_agent` first needs a name it does not know.

  hf:PATH       transformers (a checkpoint folder, a .gguf file, or `smollm2` for the packaged SmolLM2 GGUF)
  hf-vlm:PATH   a transformers vision-language model reading image observations (a folder, or `tiny-vl`)
  vllm:PATH     vLLM offline engine (`turngym[vllm]`)
  openai:URL    any OpenAI-compatible chat-completions endpoint (`turngym[openai]`), e.g. `openai:http://127.0.0.1:8000/v1`;
                `?images=1` sends image observations as base64-PNG `image_url` parts (the last `keep_images`, default 1)

Options go after `?` as `key=value` pairs joined by `&`: `hf:smollm2?temperature=0&parser=react&max_new_tokens=64`.
Importing this package imports no backend library; each factory imports its module when called.
"""

from __future__ import annotations

import json
from typing import Any

from turngym.agents.base import AGENTS, Agent
from turngym.errors import ConfigError

_INT = {"max_new_tokens", "seed", "max_context_tokens", "max_tokens", "keep_images"}
_FLOAT = {"temperature", "top_p", "timeout"}
_BOOL = {"images", "use_images", "freeze_vision"}


def flag(v: Any) -> bool:
    """A boolean option, from Python or a spec string (`?images=1`, `true`/`false`, `yes`/`no`, `on`/`off`)."""
    if isinstance(v, str):
        s = v.strip().lower()
        if s in ("1", "true", "yes", "on"):
            return True
        if s in ("0", "false", "no", "off", ""):
            return False
        raise ConfigError(f"expected a boolean (1/0, true/false), got {v!r}")
    return bool(v)


def split_spec(arg: str | None) -> tuple[str, dict[str, Any]]:
    """`PATH?k=v&k2=v2` -> (PATH, {k: v, ...}) with numbers and JSON values decoded."""
    if not arg:
        return "", {}
    target, _, query = arg.partition("?")
    opts: dict[str, Any] = {}
    for item in filter(None, query.split("&")):
        if "=" not in item:
            raise ConfigError(f"agent option {item!r} must be written key=value (in {arg!r})")
        k, v = item.split("=", 1)
        try:
            if k in _INT:
                opts[k] = int(v)
            elif k in _FLOAT:
                opts[k] = float(v)
            elif k in _BOOL:
                opts[k] = flag(v)
            elif k == "stop":
                opts[k] = json.loads(v) if v.startswith("[") else [v]
            else:
                opts[k] = v
        except ValueError as exc:
            raise ConfigError(f"agent option {k}={v!r} is not a number ({exc})") from exc
    return target, opts


def _need_target(kind: str, target: str) -> None:
    if not target:
        raise ConfigError(f"agent '{kind}' needs a target: {kind}:PATH_OR_URL")


def make_hf(arg: str | None = None, **kwargs: Any) -> Agent:
    from turngym.agents.backends.hf import HFPolicy

    target, opts = split_spec(arg)
    _need_target("hf", target)
    return HFPolicy.from_pretrained(target, **{**opts, **kwargs})


def make_hf_vlm(arg: str | None = None, **kwargs: Any) -> Agent:
    from turngym.agents.backends.vlm import VLMPolicy

    target, opts = split_spec(arg)
    _need_target("hf-vlm", target)
    return VLMPolicy.from_pretrained(target, **{**opts, **kwargs})


def make_openai(arg: str | None = None, **kwargs: Any) -> Agent:
    from turngym.agents.backends.openai_api import OpenAIAgent

    target, opts = split_spec(arg)
    _need_target("openai", target)
    return OpenAIAgent(target, **{**opts, **kwargs})


def make_vllm(arg: str | None = None, **kwargs: Any) -> Agent:
    from turngym.agents.backends.vllm import VLLMPolicy

    target, opts = split_spec(arg)
    _need_target("vllm", target)
    return VLLMPolicy.from_pretrained(target, **{**opts, **kwargs})


for _name, _factory in (
    ("hf", make_hf),
    ("hf-vlm", make_hf_vlm),
    ("openai", make_openai),
    ("vllm", make_vllm),
):
    if _name not in AGENTS:  # a user's backend registered under the same name first keeps it
        AGENTS.register(_name, _factory)
