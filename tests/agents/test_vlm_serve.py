"""Images over the OpenAI-compatible path: `openai:URL?images=1` sends base64-PNG `image_url` parts, and
`turngym serve` / `ChatServer` over a vision-language policy reads them (tested against the real local server)."""

from __future__ import annotations

import base64
import json
import re
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("openai")

import turngym  # noqa: E402,F401  (registers the env ids)
from tests.agents.test_vlm import tiny  # noqa: E402
from turngym.agents import make_agent  # noqa: E402
from turngym.agents.backends.images import decode_data_url, png_data_url  # noqa: E402
from turngym.agents.backends.vlm import VLMPolicy  # noqa: E402
from turngym.agents.evaluate import evaluate  # noqa: E402
from turngym.agents.server import ChatServer  # noqa: E402

ES = "turngym/EmbodiedSearch-v0"
IMG = np.random.default_rng(0).integers(0, 256, (90, 130, 3), dtype=np.uint8)


def post(url, body):
    req = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=120) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


class Seeing(VLMPolicy):
    """The real VLMPolicy, remembering the images of every prompt it generated for."""

    seen: list

    def generate(self, prompts, images=None, **kw):
        self.seen.extend([list(row) for row in images or [[] for _ in prompts]])
        return super().generate(prompts, images=images, **kw)


def vl_request(text="What is shown?", url=None, **kw):
    parts = [
        {"type": "image_url", "image_url": {"url": url or png_data_url(IMG)}},
        {"type": "text", "text": text},
    ]
    return {"messages": [{"role": "user", "content": parts}], "max_tokens": 5, **kw}


def test_png_data_urls_round_trip_exactly():
    assert np.array_equal(decode_data_url(png_data_url(IMG)), IMG)


def test_the_server_reads_the_image_parts():
    policy = tiny(max_new_tokens=5)
    with ChatServer(policy) as server:
        code, body = post(server.url + "/chat/completions", vl_request(seed=11, temperature=1.0))
        assert code == 200, body
        # exactly what the policy samples for that conversation, image included, with the same seed
        msgs = [{"role": "user", "content": policy.user_content("What is shown?", IMG)}]
        prompt = policy.encode_conversation(msgs, [IMG])
        want = policy.generate([prompt], images=[[IMG]], seed=[11], max_new_tokens=5, temperature=1.0)[0]
        assert body["choices"][0]["message"]["content"] == want.text
        assert body["usage"]["prompt_tokens"] == len(prompt) > sum(policy.mm_token_type_ids(prompt)) > 0
        # a text-only request still works on a VLM server
        code, body = post(server.url + "/chat/completions", {"messages": [{"role": "user", "content": "hi"}]})
        assert code == 200
        # bad image parts: 400 naming what was wrong, never a 500
        bad = {
            "http://example.com/a.png": "only base64 data URLs",
            "data:image/png;base64,@@@": "not valid base64",
            "data:image/png;base64,"
            + base64.b64encode(b"not a png").decode(): "does not hold a readable image",
        }
        for url, msg in bad.items():
            code, err = post(server.url + "/chat/completions", vl_request(url=url))
            assert code == 400 and msg in err["error"]["message"], err
        code, err = post(
            server.url + "/chat/completions",
            {"messages": [{"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]}]},
        )
        assert code == 400 and "unsupported part type 'input_audio'" in err["error"]["message"]


def test_a_text_model_refuses_images_instead_of_ignoring_them():
    from turngym.agents.backends.tiny import tiny_policy

    with ChatServer(tiny_policy(max_new_tokens=3)) as server:
        code, err = post(server.url + "/chat/completions", vl_request())
        assert code == 400 and "reads no images" in err["error"]["message"]
        code, _ = post(
            server.url + "/chat/completions",
            {"messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}], "max_tokens": 2},
        )
        assert code == 200


@pytest.mark.parametrize("images", [True, False])
def test_openai_agent_sends_the_observation_images(images):
    policy = tiny(Seeing, max_new_tokens=4)
    policy.seen = []
    with ChatServer(policy) as server:
        agent = make_agent(f"openai:{server.url}?max_tokens=4&seed=3&images={int(images)}")
        try:
            res = evaluate(ES, agent, episodes=2, num_envs=2, max_turns=2)
        finally:
            agent.close()
    assert res.summary["episodes"] == 2 and res.summary["mean_turns"] == 2.0
    assert len(policy.seen) == 4  # 2 episodes x 2 turns
    for imgs in policy.seen:
        if not images:
            assert imgs == []
            continue
        # keep_images=1 (the default): the current observation's map only, losslessly through PNG
        assert len(imgs) == 1 and imgs[0].shape == (256, 512, 3) and imgs[0].std() > 0


def test_keep_images_all_sends_every_turns_image():
    policy = tiny(Seeing, max_new_tokens=4)
    policy.seen = []
    with ChatServer(policy) as server:
        agent = make_agent(f"openai:{server.url}?max_tokens=4&images=1", keep_images=None)
        try:
            evaluate(ES, agent, episodes=1, num_envs=1, max_turns=3)
        finally:
            agent.close()
    assert [len(s) for s in policy.seen] == [1, 2, 3]
    from turngym.errors import ConfigError

    with pytest.raises(ConfigError, match="keep_images"):
        make_agent("openai:http://127.0.0.1:1/v1?images=1&keep_images=-2")
    with pytest.raises(ConfigError, match="boolean"):
        make_agent("openai:http://127.0.0.1:1/v1?images=maybe")


def test_turngym_serve_tiny_vl(tmp_path):
    """`turngym serve --model tiny-vl` in its own process answers a request with an image."""
    cmd = [str(Path(sys.executable).parent / "turngym"), "serve", "--model", "tiny-vl", "--port", "0"]
    log_path = tmp_path / "serve.log"
    with open(log_path, "w") as log_file:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log_file, text=True)
        try:
            line = proc.stdout.readline()
            url = re.search(r"at (http://\S+/v1)", line).group(1)
            with urllib.request.urlopen(url + "/models", timeout=30) as r:
                assert json.loads(r.read())["data"][0]["id"].startswith("hf-vlm:tiny-vl")
            code, body = post(url + "/chat/completions", vl_request())
            assert code == 200 and body["usage"]["prompt_tokens"] > 30
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    assert "Traceback" not in log_path.read_text()
