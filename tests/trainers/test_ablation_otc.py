"""examples/ablation_otc.py's pieces on the real coding env: the minimal solutions pass the hidden tests, the wasteful
coder over-calls tools as specified, and OTC's reward ranks its episodes by tool calls."""

import importlib.util
import json
from pathlib import Path

import pytest

from turngym.envs.coding.calls import parse_call

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def otc_example():
    spec = importlib.util.spec_from_file_location("ablation_otc", ROOT / "examples" / "ablation_otc.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_minimal_solution_keeps_imports_header_and_body(otc_example):
    task = {
        "files": {
            "solution.py": 'from typing import List\n\n\ndef f(xs: List[int],\n      k: int) -> int:\n    """Doc."""\n'
        },
        "solution": {
            "solution.py": 'from typing import List\n\n\ndef f(xs: List[int],\n      k: int) -> int:\n    """Doc."""\n'
            "    return sum(xs) + k\n"
        },
    }
    assert otc_example.minimal_solution(task) == (
        "from typing import List\ndef f(xs: List[int],\n      k: int) -> int:\n    return sum(xs) + k\n"
    )
    two = {
        "files": {"solution.py": "def g():\n    pass\ndef f():\n"},
        "solution": {"solution.py": "def g():\n    pass\ndef f():\n    return 1\n"},
    }
    assert otc_example.minimal_solution(two) is None
    call = parse_call(otc_example.short_call("write_file", "solution.py", 'x = "a"\n'))
    assert call.name == "write_file" and call.arguments == {"path": "solution.py", "content": 'x = "a"\n'}


@pytest.mark.slow
def test_pack_and_wasteful_coder_on_the_real_env(otc_example, tmp_path):
    from turngym.agents.rollout import run_episodes

    pack = otc_example.build_pack(tmp_path, 3)
    rows = [json.loads(x) for x in (pack / "train.jsonl").read_text().splitlines()]
    assert len(rows) == 3 and all(
        r["solution"]["solution.py"].startswith(("def ", "from ", "import ")) for r in rows
    )

    def play():
        return run_episodes(
            otc_example.ENV_ID,
            otc_example.WastefulCoder(),
            episodes=12,
            seed=0,
            split="train",
            env_kwargs={"task_pack": str(pack.resolve()), "split": "train"},
            options={"max_turns": 5},
        )

    eps = play()
    assert all(e.success for e in eps)
    calls = [len(e.steps) for e in eps]
    assert min(calls) >= 2 and max(calls) <= 5 and len(set(calls)) > 1  # 2-5 calls where 2 suffice
    for e in eps:
        assert (
            e.steps[-1].action == "submit()" and sum(s.action.startswith("write_file(") for s in e.steps) == 1
        )
    # same seed, same episodes
    again = play()
    assert [[s.action for s in e.steps] for e in again] == [[s.action for s in e.steps] for e in eps]
