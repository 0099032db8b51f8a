"""The chat server with slow generations: a client that leaves or a request that times out stops its generation
(one log line, no traceback) and the next request is served at once; waiting requests are batched. The OpenAI
client's timeout names its knob and is not retried. Real HTTP on 127.0.0.1 with the tiny model."""

import json
import logging
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

pytest.importorskip("transformers")

from turngym.agents.backends.hf import HFPolicy  # noqa: E402
from turngym.agents.server import ChatServer  # noqa: E402
from turngym.errors import EnvError  # noqa: E402

# greedy decoding of the tiny model never writes its end-of-turn id: a request runs to max_tokens (~3 ms a token
# on an idle core, so 6000 tokens take 15-40 s)
LONG = {
    "messages": [{"role": "user", "content": "tell me a long story"}],
    "max_tokens": 6000,
    "temperature": 0,
}
SHORT = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}


@pytest.fixture(scope="module")
def policy():
    return HFPolicy.from_pretrained("tiny")


def post(url: str, body: dict, timeout: float = 120) -> tuple[int, dict]:
    req = urllib.request.Request(
        url + "/chat/completions",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def send_and_leave(url: str, body: dict, after: float | threading.Event) -> None:
    """POST `body` on a raw socket, then close the connection without reading the reply: after `after` seconds,
    or once the event `after` is set."""
    host, port = re.match(r"http://([^:/]+):(\d+)", url).groups()
    data = json.dumps(body).encode()
    with socket.create_connection((host, int(port))) as s:
        s.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            + f"Content-Length: {len(data)}\r\n\r\n".encode()
            + data
        )
        if isinstance(after, threading.Event):
            after.wait(timeout=120)
        else:
            time.sleep(after)


def wait_for(cond, timeout: float) -> float:
    t0 = time.monotonic()
    while not cond():
        assert time.monotonic() - t0 < timeout, "timed out waiting"
        time.sleep(0.02)
    return time.monotonic() - t0


def test_a_client_that_disconnects_stops_its_generation(policy, caplog):
    with caplog.at_level(logging.INFO, logger="turngym.agents.server"), ChatServer(policy) as server:
        send_and_leave(server.url, LONG, after=1.0)
        waited = wait_for(lambda: server.aborted, timeout=10)
        assert waited < 5 and server.aborted[0] < 6000
        t0 = time.monotonic()
        code, reply = post(server.url, SHORT)
        assert code == 200 and reply["choices"][0]["finish_reason"] in ("stop", "length")
        assert time.monotonic() - t0 < 5  # not queued behind the abandoned 6000-token generation
    lines = [r.getMessage() for r in caplog.records if "aborted" in r.getMessage()]
    assert len(lines) == 1 and re.search(
        r"aborted chatcmpl-\w+ after \d+ of 6000 tokens: client disconnected", lines[0]
    )
    assert not any(r.exc_info for r in caplog.records)


def test_a_request_over_the_server_timeout_is_cancelled_with_a_504(policy):
    with ChatServer(policy, request_timeout=1.0) as server:
        t0 = time.monotonic()
        code, err = post(server.url, LONG)
        assert code == 504 and "--request-timeout" in err["error"]["message"]
        assert time.monotonic() - t0 < 5
        wait_for(lambda: server.aborted, timeout=5)
        assert server.aborted[0] < 6000
        assert post(server.url, SHORT)[0] == 200


def test_requests_waiting_behind_a_batch_are_generated_together(policy):
    # No timing assumption (a fast CPU generates 600 tokens in a fraction of a second): the first request runs
    # until its client leaves, which the test does only once the other three are queued behind it.
    with ChatServer(policy) as server:
        leave = threading.Event()
        prefilled = policy.prefill_tokens
        first = threading.Thread(target=send_and_leave, args=(server.url, LONG, leave))
        first.start()
        wait_for(lambda: policy.prefill_tokens > prefilled, timeout=30)  # the worker is generating it
        assert server.batches == []
        replies: list = []

        def ask(seed: int) -> None:
            replies.append(post(server.url, {**SHORT, "seed": seed}))

        rest = [threading.Thread(target=ask, args=(i,)) for i in range(3)]
        for t in rest:
            t.start()
        wait_for(lambda: server._queue.qsize() == 3, timeout=30)
        leave.set()
        for t in [first, *rest]:
            t.join(timeout=120)
        assert [c for c, _ in replies] == [200, 200, 200]
        assert server.batches[0] == 1 and 3 in server.batches[1:]


def test_openai_agent_timeout_names_the_knob_and_is_not_retried(policy):
    from turngym.agents.backends.openai_api import OpenAIAgent
    from turngym.agents.base import EpisodeContext

    with ChatServer(policy) as server:
        agent = OpenAIAgent(server.url, timeout=1.0, max_tokens=6000, temperature=0.0)
        ctx = EpisodeContext(env=None, instructions="say a lot", observation={"text": "go"}, info={})
        t0 = time.monotonic()
        with pytest.raises(EnvError, match=r"timed out after 1 s .*--request-timeout S.*timeout=S"):
            agent.act([ctx])
        assert time.monotonic() - t0 < 3  # one attempt, not a retry of the same 1 s wait
        wait_for(lambda: server.aborted, timeout=5)  # the server saw the client leave and stopped
        time.sleep(0.5)
        assert len(server.aborted) == 1 and len(server.batches) == 1
        agent.close()


@pytest.mark.slow
def test_turngym_serve_stops_abandoned_generations(tmp_path):
    """`turngym serve --model tiny` in its own process: a disconnected request is logged as one line, its generation
    stops, and the next request is answered promptly; no traceback in the server's log."""
    cmd = [str(Path(sys.executable).parent / "turngym"), "serve", "--model", "tiny", "--port", "0"]
    log_path = tmp_path / "serve.log"
    with open(log_path, "w") as log_file:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log_file, text=True)
        try:
            line = proc.stdout.readline()
            url = re.search(r"at (http://\S+/v1)", line).group(1)
            send_and_leave(url, {**LONG, "temperature": 0}, after=1.0)
            wait_for(lambda: "aborted" in log_path.read_text(), timeout=10)
            t0 = time.monotonic()
            assert post(url, SHORT)[0] == 200
            assert time.monotonic() - t0 < 5
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    text = log_path.read_text()
    assert "Traceback" not in text and "BrokenPipeError" not in text
    aborted = [ln for ln in text.splitlines() if "aborted" in ln]
    assert len(aborted) == 1 and "client disconnected" in aborted[0]
    assert int(re.search(r"after (\d+) of 6000 tokens", aborted[0]).group(1)) < 6000
