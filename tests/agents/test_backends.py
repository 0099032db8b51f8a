"""Model backends on real models: HFPolicy as an eval agent, `hf:PATH` through the CLI, and the OpenAI-compatible
backend against the project's own chat-completions server on 127.0.0.1 (a real HTTP server, no mock)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("openai")

from tests.agents.fitting import fit_reply  # noqa: E402
from turngym.agents import make_agent  # noqa: E402
from turngym.agents.backends.hf import HFPolicy  # noqa: E402
from turngym.agents.backends.tiny import char_tokenizer, tiny_llama, tiny_policy  # noqa: E402
from turngym.agents.evaluate import evaluate  # noqa: E402
from turngym.agents.parsing import INVALID_PREFIX  # noqa: E402
from turngym.agents.server import ChatServer, reply_message  # noqa: E402
from turngym.errors import ConfigError, UnknownNameError  # noqa: E402

TOOL_REPLY = '<tool_call>{"name": "python", "arguments": {"code": "print(1)"}}</tool_call>'


def test_hf_policy_is_an_eval_agent(lock_id):
    policy = tiny_policy(max_new_tokens=6, system_prompt="Open the lock.")
    res = evaluate(lock_id, policy, episodes=4, num_envs=4, max_turns=2)
    assert res.summary["episodes"] == 4 and res.summary["mean_turns"] == 2.0
    for ep in res.episodes:
        assert len(ep.steps) == 2 and ep.agent == "hf:tiny-llama-64x2"


def test_generate_contract():
    policy = tiny_policy(max_new_tokens=5, stop=["xyz"])
    prompts = [[1, 40, 41], [1, 50]]
    a = policy.generate(prompts, seed=[3, 4])
    b = policy.generate(prompts[::-1], seed=[4, 3])
    assert [g.token_ids for g in a] == [
        g.token_ids for g in b[::-1]
    ]  # per-prompt seeds: batch order is irrelevant
    for g in a:
        assert len(g.token_ids) == len(g.logprobs) <= 5 and all(lp <= 0 for lp in g.logprobs)
        assert g.finish_reason in ("stop", "length", "stop_string")
    greedy = policy.generate(prompts, temperature=0.0)
    assert greedy[0].token_ids == policy.generate(prompts, temperature=0.0)[0].token_ids
    with pytest.raises(ConfigError, match="empty prompt"):
        policy.generate([[]])
    with pytest.raises(ConfigError, match="2 seeds for 1"):
        policy.generate([[1]], seed=[1, 2])
    with pytest.raises(ConfigError, match="top_p"):
        tiny_policy(top_p=0.0)


def test_stop_strings_end_generation():
    policy = tiny_policy(max_new_tokens=12, temperature=0.0)
    msgs = [{"role": "user", "content": "go"}]
    fit_reply(policy, msgs, "look\nObservation: x")
    g = policy.generate([policy.chat.prompt_ids(msgs)], stop=["\nObs"])[0]
    assert g.finish_reason == "stop_string" and g.text.endswith("\nObs") and g.text.startswith("look")


def test_hf_path_through_make_agent_and_cli(lock_id, tmp_path):
    from turngym.cli import main

    tok = char_tokenizer()
    model = tiny_llama(len(tok), seed=1)
    model.save_pretrained(tmp_path / "ckpt")
    tok.save_pretrained(tmp_path / "ckpt")
    agent = make_agent(f"hf:{tmp_path / 'ckpt'}?max_new_tokens=4&temperature=0&parser=react")
    assert isinstance(agent, HFPolicy) and agent.max_new_tokens == 4 and agent.temperature == 0.0
    assert agent.parser == "react"
    out = tmp_path / "eval"
    rc = main(
        [
            "eval",
            "--env",
            lock_id,
            "--agent",
            f"hf:{tmp_path / 'ckpt'}?max_new_tokens=4&parser=react",
            "--episodes",
            "2",
            "--max-turns",
            "2",
            "--quiet",
            "--out",
            str(out),
        ]
    )
    assert rc == 0
    summary = json.loads((out / "summary.json").read_text())
    assert (
        summary["episodes"] == 2 and summary["invalid_action_rate"] == 1.0
    )  # no `Action:` from a random model
    lines = [json.loads(x) for x in (out / "episodes.jsonl").read_text().splitlines()]
    assert all(s["action"].startswith(INVALID_PREFIX) for ep in lines for s in ep["steps"])
    with pytest.raises(ConfigError, match="does not exist"):
        make_agent(f"hf:{tmp_path / 'missing'}")
    with pytest.raises(ConfigError, match="key=value"):
        make_agent(f"hf:{tmp_path / 'ckpt'}?temperature")
    with pytest.raises(UnknownNameError, match="known agents"):
        make_agent("nope:x")


def _post(url, body):
    req = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_openai_agent_against_a_real_local_server(lock_id):
    policy = tiny_policy(max_new_tokens=6)
    with ChatServer(policy) as server:
        assert server.url.startswith("http://127.0.0.1:")
        with urllib.request.urlopen(server.url + "/models", timeout=30) as r:
            assert json.loads(r.read())["data"][0]["id"] == "hf:tiny-llama-64x2"
        code, body = _post(
            server.url + "/chat/completions",
            {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 3, "temperature": 0},
        )
        assert code == 200 and body["choices"][0]["message"]["role"] == "assistant"
        assert body["usage"]["completion_tokens"] <= 3
        assert _post(server.url + "/chat/completions", {"messages": []})[0] == 400
        code, err = _post(server.url + "/chat/completions", {"messages": [{"content": "x"}]})
        assert code == 400 and "role" in err["error"]["message"]
        agent = make_agent(f"openai:{server.url}?max_tokens=5&temperature=1.0&seed=7")
        try:
            res = evaluate(lock_id, agent, episodes=4, num_envs=4, max_turns=2)
        finally:
            agent.close()
        assert res.summary["episodes"] == 4 and res.summary["mean_turns"] == 2.0
        assert max(server.batches) > 1  # concurrent requests of one agent turn were generated as one batch
    # the server is stopped: its port no longer answers
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(server.url + "/models", timeout=5)


def test_tool_calls_round_trip_through_the_server():
    """A model that writes a `<tool_call>` gets an OpenAI `tool_calls` reply; the agent turns it into the canonical
    action the coding env accepts."""
    from turngym.agents.backends.openai_api import OpenAIAgent
    from turngym.agents.base import EpisodeContext

    policy = tiny_policy(max_new_tokens=len(TOOL_REPLY) + 2, temperature=0.0)
    msgs = [{"role": "user", "content": "Compute 1."}]
    fit_reply(policy, msgs, TOOL_REPLY)
    assert policy.generate([policy.chat.prompt_ids(msgs)])[0].text == TOOL_REPLY
    with ChatServer(policy) as server:
        agent = OpenAIAgent(server.url, tools="python", temperature=0.0, max_tokens=len(TOOL_REPLY) + 2)
        try:
            ctx = EpisodeContext(env=None, instructions="Compute 1.", observation={"text": ""}, info={})
            assert agent.act([ctx]) == ['{"name": "python", "arguments": {"code": "print(1)"}}']
            code, body = _post(
                server.url + "/chat/completions",
                {"messages": msgs, "tools": [{"type": "function"}], "temperature": 0},
            )
            choice = body["choices"][0]
            assert choice["finish_reason"] == "tool_calls"
            fn = choice["message"]["tool_calls"][0]["function"]
            assert fn["name"] == "python" and json.loads(fn["arguments"]) == {"code": "print(1)"}
        finally:
            agent.close()


def test_reply_message_only_makes_tool_calls_when_tools_were_offered():
    assert reply_message(TOOL_REPLY, False) == ({"role": "assistant", "content": TOOL_REPLY}, None)
    msg, reason = reply_message("I will run it. " + TOOL_REPLY, True)
    assert reason == "tool_calls" and msg["content"] == "I will run it."
    assert reply_message("just text", True)[1] is None
