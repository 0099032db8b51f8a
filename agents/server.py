"""A minimal OpenAI-compatible chat-completions server over a transformers policy (standard library only).

    turngym serve --model smollm2 --port 8000        (or python -m turngym.agents.server ...)
    curl http://127.0.0.1:8000/v1/chat/completions -d '{"messages": [{"role": "user", "content": "hi"}]}'

Endpoints: `GET /v1/models`, `POST /v1/chat/completions` (messages, max_tokens / max_completion_tokens,
temperature, top_p, stop, seed, tools; n=1; no streaming). Concurrent requests are micro-batched: a worker thread
takes every request waiting (up to `max_batch`), groups them by sampling parameters (a request's `seed`
seeds its own generator, so seeded requests still batch together) and runs one batched
`HFPolicy.generate` per group. A request that arrives while a batch is generating waits for that batch to end (no
continuous batching). When the request offers `tools` and the reply holds a tool call (bare JSON or
`<tool_call>...</tool_call>`), the reply carries `tool_calls` (arguments as a JSON string) and
`finish_reason="tool_calls"`.

A vision-language policy (`--model tiny-vl` or `hf-vlm:FOLDER`) also reads `image_url` content parts holding
base64 data URLs (`data:image/png;base64,...`; remote URLs are refused); a text model answers a request with an
image with HTTP 400 instead of ignoring the image.

Abandoned requests stop generating: while a request waits, its handler checks every 0.25 s whether the client
closed the connection (a client-side timeout does) and whether `request_timeout` has passed; either sets the
request's cancel event, which `HFPolicy.generate` reads before every decode step, so that row stops within one
token while the rest of its batch goes on. Each aborted request is logged as one line; a timed-out one is answered
with HTTP 504.
"""

from __future__ import annotations

import argparse
import json
import logging
import queue
import select
import socket
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np

from turngym.agents.parsing import parse_tool_call, strip_thinking
from turngym.agents.policy import TokenPolicy, check_token_policy
from turngym.errors import ConfigError

log = logging.getLogger(__name__)


def _parts(content: Any, where: str) -> list[dict[str, Any]]:
    """A message's content as parts: [{"type": "text", "text"}] / [{"type": "image_url", "image_url": {"url"}}]."""
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if not isinstance(content, list):
        raise ConfigError(
            f"{where}: content must be a string or a list of parts, got {type(content).__name__}"
        )
    out = []
    for j, p in enumerate(content):
        if not isinstance(p, dict):
            raise ConfigError(f"{where}.content[{j}] must be an object")
        kind = p.get("type", "text")
        if kind == "text":
            if not isinstance(p.get("text", ""), str):
                raise ConfigError(f"{where}.content[{j}].text must be a string")
            out.append({"type": "text", "text": p.get("text", "")})
        elif kind == "image_url":
            url = p.get("image_url")
            url = url.get("url") if isinstance(url, dict) else url
            out.append({"type": "image_url", "url": url, "where": f"{where}.content[{j}].image_url"})
        else:
            raise ConfigError(f"{where}.content[{j}]: unsupported part type {kind!r} (text, image_url)")
    return out


def to_template_messages(
    messages: Any, images: bool = False, model: str = "this model"
) -> tuple[list[dict[str, Any]], list[np.ndarray]]:
    """OpenAI request messages -> ({role, content} messages for a chat template, the decoded images in order).

    Text-only (`images=False`): content is a string; a request with an `image_url` part is refused (a text model
    would silently answer without seeing it). With `images=True` (a vision-language policy), a message with images
    gets content parts `{"type": "image"}` / `{"type": "text"}` in the request's order, each image a base64 data
    URL decoded to HxWx3 uint8, and vision-token spellings in the text are defused (only real images make image
    placeholders)."""
    from turngym.agents.backends.images import decode_data_url

    if not isinstance(messages, list) or not messages:
        raise ConfigError('"messages" must be a non-empty list')
    out: list[dict[str, Any]] = []
    imgs: list[np.ndarray] = []
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or "role" not in m:
            raise ConfigError(f"messages[{i}] must be an object with a 'role'")
        parts = _parts(m.get("content"), f"messages[{i}]")
        for call in m.get("tool_calls") or []:
            fn = call.get("function", {})
            args = fn.get("arguments", "{}")
            args = json.loads(args) if isinstance(args, str) and args.strip() else (args or {})
            payload = json.dumps({"name": fn.get("name"), "arguments": args}, ensure_ascii=False)
            parts.append({"type": "text", "text": f"<tool_call>{payload}</tool_call>"})
        has_image = any(p["type"] == "image_url" for p in parts)
        if has_image and not images:
            raise ConfigError(
                f"messages[{i}] holds an image_url part but {model} reads no images; serve a vision-language "
                "model (turngym serve --model tiny-vl or hf-vlm:PATH) or send text only"
            )
        if not has_image:
            text = "".join(p["text"] for p in parts)
            out.append({"role": str(m["role"]), "content": _defuse(text) if images else text})
            continue
        content: list[dict[str, str]] = []
        for p in parts:
            if p["type"] == "image_url":
                imgs.append(decode_data_url(p["url"], p["where"]))
                content.append({"type": "image"})
            else:
                content.append({"type": "text", "text": _defuse(p["text"])})
        out.append({"role": str(m["role"]), "content": content})
    return out, imgs


def _defuse(text: str) -> str:
    from turngym.agents.backends.vlm import defuse_vision_tokens

    return defuse_vision_tokens(text)


def reply_message(text: str, tools_offered: bool) -> tuple[dict[str, Any], str | None]:
    """The assistant message for a generated text: a tool call when tools were offered and one was written."""
    if tools_offered and ("<tool_call>" in text or strip_thinking(text).lstrip().startswith("{")):
        parsed = parse_tool_call(text)
        if parsed.ok:
            call = json.loads(parsed.action)
            before = text.split("<tool_call>", 1)[0].strip() if "<tool_call>" in text else ""
            return {
                "role": "assistant",
                "content": before or None,
                "tool_calls": [
                    {
                        "id": f"call_{uuid.uuid4().hex[:12]}",
                        "type": "function",
                        "function": {"name": call["name"], "arguments": json.dumps(call["arguments"])},
                    }
                ],
            }, "tool_calls"
    return {"role": "assistant", "content": text}, None


@dataclass
class _Request:
    prompt: list[int]
    params: tuple[int, float, float, tuple[str, ...]]
    seed: int | None = None
    images: list[np.ndarray] = field(default_factory=list)  # a vision-language policy's images, in order
    future: Future = field(default_factory=Future)
    cancel: threading.Event = field(default_factory=threading.Event)
    why: str = ""  # why it was cancelled
    id: str = field(default_factory=lambda: f"chatcmpl-{uuid.uuid4().hex}")


class ClientGone(Exception):
    """The client closed the connection before its reply was ready."""


class GenerationTimeout(Exception):
    """Generation took longer than the server's `request_timeout`."""


def peer_closed(sock: socket.socket) -> bool:
    """True when the other end of `sock` has closed it (readable with nothing to read) or it is broken."""
    try:
        readable, _, _ = select.select([sock], [], [], 0)
        return bool(readable) and sock.recv(1, socket.MSG_PEEK) == b""
    except (OSError, ValueError):
        return True


class ChatServer:
    """Serve `policy` (a `TokenPolicy`: HFPolicy, VLMPolicy, VLLMPolicy) on `host:port` (port 0 picks a free one). Use as a context manager or
    call `start()`/`stop()`; `url` is the base URL a client needs (`http://host:port/v1`). A request still
    generating after `request_timeout` seconds is cancelled and answered with HTTP 504."""

    def __init__(
        self,
        policy: TokenPolicy,
        host: str = "127.0.0.1",
        port: int = 0,
        model_name: str | None = None,
        max_batch: int = 32,
        request_timeout: float = 600.0,
    ):
        if not request_timeout > 0:
            raise ConfigError(f"request_timeout must be > 0 seconds, got {request_timeout}")
        self.policy = policy
        check_token_policy(policy, "turngym serve")
        self.model_name = model_name or str(policy.spec)
        self.max_batch = max_batch
        self.request_timeout = float(request_timeout)
        self.multimodal = bool(policy.multimodal)  # VLMPolicy: requests may hold images
        self._queue: queue.Queue[_Request | None] = queue.Queue()
        self._httpd = ThreadingHTTPServer((host, port), self._handler())
        self._httpd.daemon_threads = True
        self._threads: list[threading.Thread] = []
        self._rng = np.random.default_rng(0)
        self.batches: list[int] = []  # sizes of the generation batches run (observability, tests)
        self.aborted: list[int] = []  # tokens generated by each aborted request before it stopped

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}/v1"

    def start(self) -> ChatServer:
        for target, name in ((self._httpd.serve_forever, "http"), (self._worker, "generate")):
            t = threading.Thread(target=target, name=f"turngym-server-{name}", daemon=True)
            t.start()
            self._threads.append(t)
        log.info("serving %s at %s", self.model_name, self.url)
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._queue.put(None)
        for t in self._threads:
            t.join(timeout=10)
        self._threads = []

    def __enter__(self) -> ChatServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # ---- generation worker -----------------------------------------------------------------------------------
    def _worker(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            reqs = [first]
            time.sleep(0.005)  # let concurrent requests arrive
            while len(reqs) < self.max_batch:
                try:
                    r = self._queue.get_nowait()
                except queue.Empty:
                    break
                if r is None:
                    self._queue.put(None)
                    break
                reqs.append(r)
            groups: dict[tuple, list[_Request]] = {}
            for r in reqs:
                if r.cancel.is_set():  # its client left while it was queued
                    self._log_abort(r, 0)
                    r.future.cancel()
                    continue
                groups.setdefault(r.params, []).append(r)
            for (max_tokens, temp, top_p, stop), group in groups.items():
                # requests with a seed get their own generator; the others continue the policy's generator
                seed = None
                if any(r.seed is not None for r in group):
                    seed = [r.seed if r.seed is not None else int(self._rng.integers(2**62)) for r in group]
                extra: dict[str, Any] = {"cancel": [r.cancel for r in group]}
                if self.multimodal:
                    extra["images"] = [r.images for r in group]
                try:
                    gens = self.policy.generate(
                        [r.prompt for r in group],
                        max_new_tokens=max_tokens,
                        temperature=temp,
                        top_p=top_p,
                        stop=list(stop),
                        seed=seed,
                        **extra,
                    )
                    self.batches.append(len(group))
                    for r, g in zip(group, gens):
                        if g.finish_reason == "cancelled" or r.cancel.is_set():
                            self._log_abort(r, len(g.token_ids))
                        r.future.set_result(g)
                except Exception as exc:  # noqa: BLE001 - reported to each waiting client as a 500
                    for r in group:
                        r.future.set_exception(exc)

    def _log_abort(self, r: _Request, tokens: int) -> None:
        self.aborted.append(tokens)
        log.info("aborted %s after %d of %d tokens: %s", r.id, tokens, r.params[0], r.why or "cancelled")

    def _wait(self, req: _Request, gone: Callable[[], bool] | None) -> Any:
        """The request's generation; cancels it when `gone()` turns true or `request_timeout` passes."""
        deadline = time.monotonic() + self.request_timeout
        while True:
            try:
                return req.future.result(timeout=0.25)
            except FutureTimeout:
                pass
            if gone is not None and gone():
                req.why = "client disconnected"
                req.cancel.set()
                raise ClientGone(req.id)
            if time.monotonic() > deadline:
                req.why = f"timed out after {self.request_timeout:g} s"
                req.cancel.set()
                raise GenerationTimeout(
                    f"generation took longer than this server's request timeout of {self.request_timeout:g} s "
                    "(turngym serve --request-timeout S)"
                )

    # ---- HTTP ------------------------------------------------------------------------------------------------
    def complete(self, body: dict[str, Any], gone: Callable[[], bool] | None = None) -> dict[str, Any]:
        """Answer one chat-completions request body; `gone()` says whether the client has left (then the
        generation is cancelled and `ClientGone` raised)."""
        if body.get("stream"):
            raise ConfigError("streaming is not supported by this server")
        if int(body.get("n", 1)) != 1:
            raise ConfigError("only n=1 is supported")
        messages, images = to_template_messages(body.get("messages"), self.multimodal, self.model_name)
        max_tokens = body.get("max_completion_tokens") or body.get("max_tokens") or self.policy.max_new_tokens
        stop = body.get("stop") or []
        stop = [stop] if isinstance(stop, str) else list(stop)
        temp = body.get("temperature")
        top_p = body.get("top_p")
        params = (
            int(max_tokens),
            float(self.policy.temperature if temp is None else temp),
            float(self.policy.top_p if top_p is None else top_p),
            tuple(stop),
        )
        if params[0] < 1 or params[1] < 0 or not 0 < params[2] <= 1:
            raise ConfigError("max_tokens must be >= 1, temperature >= 0 and top_p in (0, 1]")
        if self.multimodal:
            prompt = self.policy.encode_conversation(messages, images)
        else:
            prompt = self.policy.chat.prompt_ids(messages)
        req = _Request(prompt, params, None if body.get("seed") is None else int(body["seed"]), images)
        self._queue.put(req)
        gen = self._wait(req, gone)
        message, reason = reply_message(gen.text, bool(body.get("tools")))
        finish = reason or {"stop": "stop", "stop_string": "stop", "length": "length"}[gen.finish_reason]
        return {
            "id": req.id,
            "object": "chat.completion",
            "created": int(time.time()),
            "model": self.model_name,
            "choices": [{"index": 0, "message": message, "finish_reason": finish, "logprobs": None}],
            "usage": {
                "prompt_tokens": len(prompt),
                "completion_tokens": len(gen.token_ids),
                "total_tokens": len(prompt) + len(gen.token_ids),
            },
        }

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, fmt: str, *args: Any) -> None:
                log.debug("%s " + fmt, self.address_string(), *args)

            def _send(self, code: int, payload: dict[str, Any]) -> None:
                data = json.dumps(payload).encode()
                try:
                    self.send_response(code)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    log.info("client %s left before its reply was sent", self.address_string())
                    self.close_connection = True

            def _error(self, code: int, msg: str, kind: str) -> None:
                self._send(code, {"error": {"message": msg, "type": kind, "code": code}})

            def do_GET(self) -> None:
                if self.path.rstrip("/") in ("/v1/models", "/models"):
                    self._send(
                        200,
                        {
                            "object": "list",
                            "data": [{"id": server.model_name, "object": "model", "owned_by": "turngym"}],
                        },
                    )
                else:
                    self._error(404, f"no route {self.path}", "not_found")

            def do_POST(self) -> None:
                if self.path.rstrip("/") not in ("/v1/chat/completions", "/chat/completions"):
                    self._error(404, f"no route {self.path}", "not_found")
                    return
                try:
                    n = int(self.headers.get("Content-Length") or 0)
                    body = json.loads(self.rfile.read(n) or b"{}")
                    if not isinstance(body, dict):
                        raise ConfigError("the request body must be a JSON object")
                    self._send(200, server.complete(body, gone=lambda: peer_closed(self.connection)))
                except ClientGone:
                    self.close_connection = True  # nobody to answer; the worker logged the abort
                except GenerationTimeout as exc:
                    self._error(504, str(exc), "timeout")
                except (ConfigError, json.JSONDecodeError, ValueError, TypeError) as exc:
                    self._error(400, str(exc), "invalid_request_error")
                except Exception as exc:  # noqa: BLE001 - a server must answer, not die
                    log.exception("chat completion failed")
                    self._error(500, f"{type(exc).__name__}: {exc}", "server_error")

        return Handler


def serve(
    policy: Any,
    host: str = "127.0.0.1",
    port: int = 8000,
    model_name: str | None = None,
    request_timeout: float = 600.0,
) -> ChatServer:
    """Start serving `policy` in background threads; returns the running server (call `.stop()`)."""
    return ChatServer(policy, host, port, model_name, request_timeout=request_timeout).start()


def register_cli(sub: Any) -> None:
    """`turngym serve --model PATH` (for `turngym.cli.EXTRA_COMMANDS`)."""
    p = sub.add_parser("serve", help="serve a model over an OpenAI-compatible chat-completions API")
    _add_args(p)
    p.set_defaults(fn=_run)


def _add_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--model",
        default="smollm2",
        help="checkpoint folder, .gguf file, 'smollm2', or 'tiny' (random, local); a vision-language model "
        "that reads image_url parts: 'hf-vlm:FOLDER' or 'tiny-vl' (random, local)",
    )
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000, help="0 picks a free port (printed at start)")
    p.add_argument("--max-new-tokens", type=int, default=256)
    p.add_argument("--temperature", type=float, default=0.7)
    p.add_argument(
        "--request-timeout",
        type=float,
        default=600.0,
        metavar="S",
        help="cancel a generation still running after S seconds and answer 504 (default 600)",
    )


def _run(args: argparse.Namespace) -> int:
    from turngym.agents.backends.hf import HFPolicy

    opts = {"max_new_tokens": args.max_new_tokens, "temperature": args.temperature}
    if args.model == "tiny-vl" or args.model.startswith("hf-vlm:"):
        from turngym.agents.backends import make_hf_vlm

        policy = make_hf_vlm(args.model.removeprefix("hf-vlm:"), **opts)
    else:
        policy = HFPolicy.from_pretrained(args.model, **opts)
    server = serve(policy, args.host, args.port, request_timeout=args.request_timeout)
    print(f"serving {server.model_name} at {server.url} (Ctrl-C stops)", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        return 0
    finally:
        server.stop()


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    parser = argparse.ArgumentParser(prog="python -m turngym.agents.server", description=__doc__)
    _add_args(parser)
    raise SystemExit(_run(parser.parse_args()))
