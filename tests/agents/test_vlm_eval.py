"""`turngym eval --agent hf-vlm:tiny-vl` on the visual envs: MiniWoB (screenshots) and EmbodiedSearch (the map)."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

import turngym  # noqa: E402
from tests.agents.test_vlm import RecordingVLM, tiny  # noqa: E402
from turngym.cli import main  # noqa: E402

ES = "turngym/EmbodiedSearch-v0"
MW = "turngym/MiniWoB-click-button-v0"


def need_browser() -> None:
    from turngym.envs.web.browser import BrowserConfig

    if not (
        turngym.registration.entry("MiniWoB-click-button-v0").installed()
        and BrowserConfig().resolved_executable()
    ):
        pytest.skip("needs playwright, the miniwob pack and chromium")


@pytest.mark.parametrize("env_id", [ES, MW])
def test_cli_eval_runs_the_tiny_vlm(tmp_path, env_id):
    if env_id == MW:
        need_browser()
    out = tmp_path / "eval"
    argv = ["eval", "--env", env_id, "--agent", "hf-vlm:tiny-vl?max_new_tokens=6&keep_images=2"]
    argv += ["--episodes", "2", "--max-turns", "2", "--num-envs", "2", "--out", str(out), "--quiet"]
    assert main(argv) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "complete" and summary["episodes"] == 2
    assert summary["agent"].startswith("hf-vlm:tiny-vl")
    lines = (out / "episodes.jsonl").read_text().splitlines()
    assert len(lines) == 2 and all(json.loads(x)["turns"] == 2 for x in lines)


@pytest.mark.parametrize("env_id", [ES, MW])
def test_every_prompt_holds_the_observation_image(env_id):
    """The agent is given the env's own image each turn (a real screenshot / map, not blank), as a placeholder run
    of the processor's size for it."""
    import gymnasium as gym

    from turngym.agents.evaluate import evaluate

    if env_id == MW:
        need_browser()
    env = gym.make(env_id)
    shape = env.unwrapped.image_shape
    env.close()

    class Seeing(RecordingVLM):
        def generate(self, prompts, images=None, **kw):
            for p, imgs in zip(prompts, images):
                self.seen.append((list(p), [im.copy() for im in imgs]))
            return super().generate(prompts, images=images, **kw)

    policy = tiny(Seeing, max_new_tokens=4)
    policy.seen = []
    res = evaluate(env_id, policy, episodes=1, max_turns=2, num_envs=1)
    assert len(res.episodes) == 1 and len(policy.seen) == 2
    for turn, (prompt, imgs) in enumerate(policy.seen):
        assert len(imgs) == turn + 1  # every turn so far keeps its image (keep_images=None)
        for im in imgs:
            assert im.shape == shape and im.dtype == np.uint8 and im.std() > 0
        grids = policy.image_inputs(imgs)["image_grid_thw"]
        assert sum(policy.mm_token_type_ids(prompt)) == sum(policy.num_image_tokens(g) for g in grids)
