"""Which action tokens has a demo model learned? Teacher-forced accuracy on held-out expert episodes.

    .venv/bin/python examples/probe_actions.py runs/s4                 # a `turngym.experiments.demo` run's OUT
    .venv/bin/python examples/probe_actions.py runs/s4 --weights runs/r8/grpo/checkpoints/step-000030/model.pt

Rebuilds the run's tokenizer and model from OUT/results.json (same options and seed give the same ones), loads
OUT/sft/model.pt (or --weights), renders `--episodes` held-out expert episodes exactly as SFT renders them, and prints
for each action name and token position how often the model's most likely next token is the expert's: e.g.
`done[2]` is the colour in `done(<colour> <noun>)` (copied from what the agent sees), `navigate[2]` the first word of
the place (looked up in the memory by colour). Also prints the mean pairwise cosine similarity of the input
embeddings of the colour words and of the nouns: trained from scratch, same-role tokens can collapse onto one
direction, and then no head can copy which one it saw (docs/trainers.md, "the colour copy").
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
from collections import Counter

COLOURS = ["white", "red", "blue", "green", "yellow", "black", "purple", "orange"]
NOUNS = ["laptop", "book", "mug", "apple", "phone", "keys", "cup", "bowl", "watch"]


def main(argv: list[str] | None = None) -> dict[str, float]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", help="a demo run's OUT folder (with results.json)")
    p.add_argument("--weights", default="", help="a model.pt to probe instead of OUT/sft/model.pt")
    p.add_argument("--episodes", type=int, default=50)
    a = p.parse_args(argv)

    import torch

    from turngym.agents.base import ExpertAgent
    from turngym.agents.rollout import run_episodes
    from turngym.experiments import demo
    from turngym.trainers.sft import expert_token_episode

    opts = demo.run_options(a.run)
    torch.set_num_threads(opts.threads)
    with tempfile.TemporaryDirectory() as tmp:
        pack, env_kwargs, _, policy = demo.build(dataclasses.replace(opts, out=tmp))
        demo.load_weights(policy.model, a.weights or a.run, "--weights")
        held_out = run_episodes(
            demo.ENV_ID,
            ExpertAgent(),
            episodes=a.episodes,
            seed=1,
            split="test",
            env_kwargs=env_kwargs,
            options={"max_turns": opts.max_turns},
        )
    model, tok = policy.model.eval(), policy.tokenizer
    ok: Counter[str] = Counter()
    total: Counter[str] = Counter()
    for e in held_out:
        te = expert_token_episode(policy, e)
        with torch.no_grad():
            pred = model(torch.tensor([te.input_ids])).logits[0].argmax(-1)
        start = 0
        for i in range(1, len(te.input_ids)):
            if not te.policy_mask[i]:
                continue
            if not te.policy_mask[i - 1]:
                start = i
            key = f"{tok.decode([te.input_ids[start]]).strip()}[{i - start}]"
            total[key] += 1
            ok[key] += int(pred[i - 1] == te.input_ids[i])
    out = {k: ok[k] / total[k] for k in sorted(total)}
    print(
        f"teacher-forced accuracy on {len(held_out)} held-out expert episodes (action[token position]: accuracy, n)"
    )
    for k, v in out.items():
        print(f"  {k:14s} {v:.2f}  ({total[k]})")
    emb = model.get_input_embeddings().weight.detach()
    for name, words in (("colours", COLOURS), ("nouns", NOUNS)):
        ids = [tok.encode(w, add_special_tokens=False) for w in words]
        ids = [x[0] for x in ids if len(x) == 1]
        if len(ids) > 1:
            v = torch.nn.functional.normalize(emb[ids], dim=-1)
            n = len(ids)
            cos = float(((v @ v.T).sum() - n) / (n * n - n))
            out[f"cosine_{name}"] = cos
            print(f"  mean pairwise cosine of the {name}' input embeddings ({n} words): {cos:.2f}")
    return out


if __name__ == "__main__":
    main()
