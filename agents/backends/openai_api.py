"""Any OpenAI-compatible chat-completions endpoint as an agent (`openai:http://host:port/v1`).

The live episodes of a batch are sent as concurrent requests (a server that batches, like vLLM or
`turngym.agents.server`, generates them together). With `tools` (OpenAI function specs), a reply's first tool call
becomes the canonical action `{"name": ..., "arguments": {...}}`; otherwise the reply text goes through `parser`.
Parse failures become invalid actions; a failing endpoint raises `EnvError` naming the URL and the status.

With `images=True` (`openai:URL?images=1`), observations that carry an `"image"` (MiniWoB/WebShop screenshots,
the embodied map) are sent to a vision model as OpenAI `image_url` content parts holding base64 PNG data URLs,
before the turn's text; only the last `keep_images` turns (default 1: the current observation) keep their image,
older turns are sent as text. Off, every message is text (a text-only endpoint never receives images).

`timeout` is per request (seconds). A request that times out is not retried (it would only make a slow server
slower); it raises `EnvError` naming the knob. Connection failures and 429/500/502/503 answers are retried
`retries` times. Requests run in daemon threads, so an interrupted evaluation exits without waiting for them.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from typing import Any

from turngym.agents.backends import flag
from turngym.agents.backends.images import kept_turns, png_data_url, record_turn_image
from turngym.agents.base import Agent, EpisodeContext
from turngym.agents.parsing import Parsed, invalid_action, parse_action, tool_call_json
from turngym.agents.prompting import context_messages
from turngym.errors import ConfigError, EnvError
from turngym.optional import require

log = logging.getLogger(__name__)

PYTHON_TOOL = {
    "type": "function",
    "function": {
        "name": "python",
        "description": "Run Python code and return its output.",
        "parameters": {
            "type": "object",
            "properties": {"code": {"type": "string", "description": "the code to run"}},
            "required": ["code"],
        },
    },
}


class OpenAIAgent(Agent):
    name = "openai"

    def __init__(
        self,
        base_url: str,
        model: str | None = None,
        api_key: str | None = None,
        max_tokens: int = 256,
        temperature: float = 0.7,
        top_p: float = 1.0,
        stop: list[str] | None = None,
        system_prompt: str | None = None,
        parser: str = "raw",
        tools: list[dict[str, Any]] | str | None = None,
        timeout: float = 120.0,
        max_concurrency: int = 32,
        seed: int | None = None,
        retries: int = 1,
        images: bool = False,
        keep_images: int | None = 1,
    ):
        openai = require("openai", extra="openai", purpose="the OpenAI-compatible endpoint backend")
        if not base_url.startswith(("http://", "https://")):
            raise ConfigError(
                f"openai agent needs an http(s) base URL like http://127.0.0.1:8000/v1, got {base_url!r}"
            )
        if not float(timeout) > 0:
            raise ConfigError(f"openai agent timeout must be > 0 seconds, got {timeout!r}")
        self._openai = openai
        self.base_url = base_url.rstrip("/")
        self.spec = f"openai:{self.base_url}"
        self.timeout = float(timeout)
        self.retries = max(0, int(retries))
        self.client = openai.OpenAI(
            base_url=self.base_url,
            api_key=api_key or os.environ.get("OPENAI_API_KEY") or "EMPTY",
            timeout=self.timeout,
            max_retries=0,
        )
        self._model = model
        self.max_tokens = int(max_tokens)
        self.temperature = float(temperature)
        self.top_p = float(top_p)
        self.stop = list(stop or [])
        self.system_prompt = system_prompt
        self.parser = parser
        if tools == "python":
            tools = [PYTHON_TOOL]
        elif isinstance(tools, str):
            tools = json.loads(tools)
        self.tools = tools
        self.seed = seed
        self.images = flag(images)
        if keep_images is not None and int(keep_images) < 0:
            raise ConfigError(f"keep_images must be >= 0 (or None for all), got {keep_images}")
        self.keep_images = None if keep_images is None else int(keep_images)
        self._slots = threading.BoundedSemaphore(max(1, int(max_concurrency)))

    @property
    def model(self) -> str:
        if self._model is None:
            try:
                models = self.client.models.list().data
            except Exception as exc:  # noqa: BLE001 - turned into one clear error
                raise EnvError(f"cannot list models at {self.base_url}: {exc}") from exc
            if not models:
                raise EnvError(f"the endpoint {self.base_url} serves no model; pass model=NAME")
            self._model = models[0].id
        return self._model

    def _request(self, ctx: EpisodeContext) -> tuple[str, Parsed]:
        kwargs: dict[str, Any] = dict(
            model=self.model,
            messages=self.messages_for(ctx),
            max_tokens=self.max_tokens,
            temperature=self.temperature,
            top_p=self.top_p,
        )
        if self.stop:
            kwargs["stop"] = self.stop
        if self.tools:
            kwargs["tools"] = self.tools
        if self.seed is not None:
            kwargs["seed"] = self.seed + 1000 * ctx.episode_index + len(ctx.history)
        resp = self._create(kwargs)
        msg = resp.choices[0].message
        text = msg.content or ""
        if msg.tool_calls:
            call = msg.tool_calls[0]
            try:
                args = json.loads(call.function.arguments or "{}")
            except json.JSONDecodeError as exc:
                err = f"tool call arguments are not JSON: {exc.msg}"
                return text, Parsed(invalid_action(err), err)
            if not isinstance(args, dict):
                err = "tool call arguments must be a JSON object"
                return text, Parsed(invalid_action(err), err)
            action = tool_call_json(call.function.name, args)
            return text or action, Parsed(action)
        return text, parse_action(text, self.parser)

    def messages_for(self, ctx: EpisodeContext) -> list[dict[str, Any]]:
        """The conversation so far; with `images`, the kept turns' images as `image_url` parts before their text."""
        msgs: list[dict[str, Any]] = context_messages(ctx, self.system_prompt)
        if not self.images:
            return msgs
        imgs = record_turn_image(ctx)
        urls: dict[int, str] = ctx.state.setdefault("image_urls", {})  # each image encoded once
        users = [i for i, m in enumerate(msgs) if m["role"] == "user"]
        for turn in kept_turns(len(users), self.keep_images):
            img = imgs[turn] if turn < len(imgs) else None
            if img is None:
                continue
            if turn not in urls:
                urls[turn] = png_data_url(img)
            i = users[turn]
            msgs[i] = {
                "role": "user",
                "content": [
                    {"type": "image_url", "image_url": {"url": urls[turn]}},
                    {"type": "text", "text": msgs[i]["content"]},
                ],
            }
        return msgs

    def _create(self, kwargs: dict[str, Any]) -> Any:
        """One chat completion; timeouts raise at once, transient failures are retried `retries` times."""
        oa = self._openai
        for attempt in range(self.retries + 1):
            try:
                return self.client.chat.completions.create(**kwargs)
            except oa.APITimeoutError as exc:
                raise EnvError(
                    f"chat completion at {self.base_url} timed out after {self.timeout:g} s (the per-request "
                    "limit; raise it with `turngym eval --request-timeout S` or `openai:URL?timeout=S`)"
                ) from exc
            except Exception as exc:  # noqa: BLE001 - turned into one clear error
                status = getattr(exc, "status_code", None)
                transient = isinstance(exc, oa.APIConnectionError) or status in (429, 500, 502, 503)
                if not transient or attempt == self.retries:
                    raise EnvError(f"chat completion at {self.base_url} failed: {exc}") from exc
                log.info("chat completion at %s failed (%s); retrying", self.base_url, exc)
                time.sleep(1.0)
        raise AssertionError("unreachable")

    def act(self, contexts: list[EpisodeContext]) -> list[str]:
        results: list[Any] = [None] * len(contexts)

        def run(i: int) -> None:
            with self._slots:
                try:
                    results[i] = self._request(contexts[i])
                except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
                    results[i] = exc

        threads = [
            threading.Thread(target=run, args=(i,), daemon=True, name="turngym-openai")
            for i in range(len(contexts))
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for r in results:
            if isinstance(r, BaseException):
                raise r
        actions = []
        for ctx, (raw, parsed) in zip(contexts, results):
            ctx.state.setdefault("raw_actions", []).append(raw)
            actions.append(parsed.action)
        return actions

    def close(self) -> None:
        self.client.close()
