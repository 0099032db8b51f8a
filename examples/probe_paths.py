"""How well does a demo model carry out each way of finding the object? Force the first action, then let it act.

    .venv/bin/python examples/probe_paths.py runs/learn                  # a `turngym.experiments.demo` run's OUT (SFT weights)
    .venv/bin/python examples/probe_paths.py runs/learn --weights runs/learn/grpo/checkpoints/step-000030/model.pt

Rebuilds the run's tokenizer, model and held-out tasks from OUT/results.json (same options and seed give the same
ones), loads OUT/sft/model.pt (or --weights) and plays the held-out tasks greedily three times: as the model chooses
(`free`), with the first action forced to `get_memory(<noun>)` (`memory`: then it must read the place of the
requested colour from the recalled list, which may be stale) and forced to `ask(Where did you leave your <noun>?)`
(`ask`: then it copies the place from the person's answer). Prints the successes of each and the first action the
model chose. On stale-memory tasks (`--staleness` > 0) the scripted expert recalls when its memory is right and
asks when it is not, which the learner cannot see: docs/trainers.md, "The imitation gap".
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
from collections import Counter
from typing import Any


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", help="a demo run's OUT folder (with results.json)")
    p.add_argument("--weights", default="", help="a model.pt to probe instead of OUT/sft/model.pt")
    p.add_argument("--episodes", type=int, default=50, help="held-out tasks (the first N of the test split)")
    a = p.parse_args(argv)

    import torch

    from turngym.agents.base import Agent
    from turngym.agents.rollout import run_episodes
    from turngym.envs.embodied.experts import requested
    from turngym.experiments import demo

    opts = demo.run_options(a.run)
    torch.set_num_threads(opts.threads)
    policy_: Any = None

    class Forced(Agent):
        """The policy, greedy, with its first action replaced (verb "" keeps the policy's own)."""

        def __init__(self, verb: str):
            self.verb = verb

        def begin_episode(self, ctx):
            policy_.begin_episode(ctx)

        def act(self, contexts):
            out: list[str | None] = [None] * len(contexts)
            rest = []
            for i, ctx in enumerate(contexts):
                if self.verb and not ctx.history:
                    _, kind = requested(ctx.env.unwrapped.task["request"])
                    out[i] = (
                        f"get_memory({kind})"
                        if self.verb == "memory"
                        else f"ask(Where did you leave your {kind}?)"
                    )
                else:
                    rest.append(i)
            if rest:
                for i, action in zip(rest, policy_.act([contexts[i] for i in rest])):
                    out[i] = action
            return out

    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        _, env_kwargs, _, policy_ = demo.build(dataclasses.replace(opts, out=tmp))
        demo.load_weights(policy_.model, a.weights or a.run, "--weights")
        policy_.temperature = 0.0
        for verb in ("", "memory", "ask"):
            eps = run_episodes(
                demo.ENV_ID,
                Forced(verb),
                episodes=a.episodes,
                seed=10_000 + opts.seed,  # as the demo evaluates
                split="test",
                env_kwargs=env_kwargs,
                options={"max_turns": opts.max_turns},
            )
            name = verb or "free"
            results[name] = sum(e.success for e in eps)
            if not verb:
                results["first_actions"] = dict(
                    Counter(e.steps[0].action.split("(")[0] for e in eps if e.steps)
                )
    n = a.episodes
    print(f"held-out successes of {n} (greedy): as the model chooses {results['free']}/{n} "
          f"(first actions {results['first_actions']}); first action forced to get_memory {results['memory']}/{n}; "
          f"forced to ask where {results['ask']}/{n}")  # fmt: skip
    return results


if __name__ == "__main__":
    main()
