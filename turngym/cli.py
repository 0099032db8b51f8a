"""The `turngym` command: list envs, evaluate agents, play an env by hand, manage task packs.

turngym list
turngym eval --env turngym/ALFWorld-v0 --agent expert --episodes 20 --split valid_unseen --out runs/eval
turngym play turngym/ALFWorld-v0
turngym tasks list
turngym tasks validate PATH
turngym tasks import webshop --products items_shuffle.json --attributes items_ins_v2.json --out PACK
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from collections.abc import Callable
from typing import Any

from turngym.errors import TurngymError

# Subcommands other modules add: name -> (module, function registering the subparser). Kept lazy.
EXTRA_COMMANDS: dict[str, str] = {"train": "turngym.trainers.cli", "serve": "turngym.agents.server"}


def _parse_kv(items: list[str]) -> dict[str, Any]:
    out = {}
    for item in items or []:
        if "=" not in item:
            raise TurngymError(f"expected KEY=VALUE, got {item!r}")
        k, v = item.split("=", 1)
        try:
            out[k] = json.loads(v)
        except json.JSONDecodeError:
            out[k] = v
    return out


def env_table() -> Any:
    """The `turngym list` table: ids never wrap or shorten; the other columns wrap between words."""
    from rich.markup import escape
    from rich.table import Table

    from turngym.registration import ENVS
    from turngym.tasks.pack import find_packs, read_manifest

    packs: dict[str, list[str]] = {}
    for name, path in find_packs().items():
        try:
            packs.setdefault(read_manifest(path)["family"], []).append(name)
        except TurngymError:
            continue
    header = ("id", "family", "modality", "task packs", "extra", "installed")
    rows = [
        (
            e.id,
            e.family,
            e.modality,
            ", ".join(sorted(packs.get(e.family, []))) or "-",
            f"turngym[{e.extra}]",
            "yes" if e.installed() else "no",
        )
        for e in ENVS
    ]
    table = Table(title="turngym environments")
    for c, name in enumerate(header):
        longest = max(len(w) for r in [header, *rows] for w in (r[c].split() if c else [r[c]]))
        table.add_column(name, no_wrap=c == 0, min_width=longest)
    for r in rows:
        table.add_row(*(escape(x) for x in r))
    return table


def print_env_table(console: Any = None) -> None:
    """Print `env_table()`. Not to a terminal (a pipe, a file) the table gets the width it needs; in a terminal too
    narrow for it, it gets its narrowest layout and the terminal wraps the lines (nothing is cut)."""
    from rich.console import Console
    from rich.measure import Measurement

    console = console or Console()
    table = env_table()
    wide = Measurement.get(console, console.options.update(width=10**6), table)
    need = wide.maximum if not console.is_terminal else wide.minimum
    width = console.width
    if need > width or not console.is_terminal:
        console.width = need
    try:
        console.print(table)
    finally:
        console.width = width


def cmd_list(args: argparse.Namespace) -> int:
    print_env_table()
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from turngym.agents.evaluate import evaluate

    agent_kwargs = {}
    if args.request_timeout is not None:
        if not args.agent.startswith("openai:"):
            raise TurngymError(
                f"--request-timeout applies to openai:URL agents (HTTP requests); --agent is {args.agent!r}"
            )
        agent_kwargs["timeout"] = args.request_timeout
    if args.resume and not args.out:
        raise TurngymError("--resume needs --out: the folder of the evaluation to continue")
    res = evaluate(
        args.env,
        args.agent,
        episodes=args.episodes,
        split=args.split,
        seed=args.seed,
        out=args.out,
        env_kwargs=_parse_kv(args.env_arg),
        max_turns=args.max_turns,
        task_pack=args.task_pack,
        num_envs=args.num_envs,
        progress=not args.quiet,
        resume=args.resume,
        agent_kwargs=agent_kwargs,
    )
    s = res.summary
    lo, hi = s["success_ci95"]
    print(
        f"{s['env_id']} · {s['agent']} · {s['episodes']} episodes: success {s['success_rate']:.3f} "
        f"(95% CI {lo:.3f}–{hi:.3f}), score {s['mean_score']:.3f}, turns {s['mean_turns']:.1f}, "
        f"invalid-action rate {s['invalid_action_rate']:.3f}, cost {s['mean_cost']}"
    )
    if res.report_path:
        print(f"report: {res.report_path}")
    return 0


def cmd_play(args: argparse.Namespace) -> int:
    import gymnasium as gym

    env = gym.make(args.env, **_parse_kv(args.env_arg))
    options = {k: v for k, v in (("split", args.split), ("task_id", args.task_id)) if v}
    try:
        obs, info = env.reset(seed=args.seed, options=options)
        print(info["instructions"], "\n")
        if info["instructions"].strip() != obs["text"].strip():
            print(obs["text"])
        while True:
            if info["admissible_actions"]:
                print(
                    f"[{len(info['admissible_actions'])} admissible] "
                    + " | ".join(info["admissible_actions"][:30])
                )
            try:
                action = input("> ")
            except EOFError:
                return 0
            if action.strip() in ("quit", "exit"):
                return 0
            if action.strip() == "expert":
                action = env.unwrapped.expert_action()
                print(f"(expert) {action}")
            obs, reward, term, trunc, info = env.step(action)
            print(obs["text"])
            print(
                f"[reward {reward:+.3f} · success {info['success']} · turn {info['turn']}"
                f"{' · INVALID: ' + info['error'] if info['invalid_action'] else ''}]"
            )
            if term or trunc:
                print("episode ended:", "terminated" if term else "truncated")
                return 0
    finally:
        env.close()


def cmd_tasks(args: argparse.Namespace) -> int:
    from turngym.tasks.pack import find_packs, load_pack, read_manifest, validate_pack

    if args.tasks_cmd == "list":
        for name, path in sorted(find_packs().items()):
            try:
                m = read_manifest(path)
                print(f"{name:32s} {m['family']:14s} v{m['version']:8s} splits={list(m['splits'])}  {path}")
            except TurngymError as exc:
                print(f"{name:32s} BROKEN: {exc}")
        return 0
    if args.tasks_cmd == "import":
        return int(args.import_fn(args) or 0)
    # the same loading an env does: manifest, the family's manifest fields, every record and the family's checks
    counts = validate_pack(args.path)
    pack = load_pack(args.path)
    print(
        f"ok: {pack.name} v{pack.version} ({pack.family}): "
        + ", ".join(f"{k}={v}" for k, v in counts.items())
    )
    return 0


def _add_plugin_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--plugin",
        action="append",
        default=[],
        metavar="MODULE_OR_FILE",
        help="import a module (name or .py path) first: your env family, model backend or task-pack family "
        "registers itself there (repeatable)",
    )


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="turngym", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("list", help="list every env id").set_defaults(fn=cmd_list)

    e = sub.add_parser("eval", help="evaluate an agent on an env")
    e.add_argument("--env", required=True)
    e.add_argument(
        "--agent",
        default="expert",
        help="expert | random | hf:PATH | hf-vlm:PATH (or hf-vlm:tiny-vl) | vllm:PATH | openai:URL",
    )
    e.add_argument("--episodes", type=int, default=10)
    e.add_argument("--split", default=None)
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--out", default=None, help="folder for episodes.jsonl, summary.json and report.html")
    e.add_argument("--max-turns", type=int, default=None)
    e.add_argument("--task-pack", default=None, help="pack name or folder path")
    e.add_argument("--num-envs", type=int, default=8, help="episodes run concurrently (batched agent calls)")
    e.add_argument(
        "--env-arg", action="append", default=[], metavar="KEY=VALUE", help="gym.make keyword argument"
    )
    e.add_argument(
        "--request-timeout",
        type=float,
        default=None,
        metavar="S",
        help="seconds one model request may take (openai:URL agents; default 120)",
    )
    e.add_argument(
        "--resume",
        action="store_true",
        help="continue the evaluation in --out: keep its finished episodes, play the missing ones",
    )
    e.add_argument("--quiet", action="store_true")
    _add_plugin_option(e)
    e.set_defaults(fn=cmd_eval)

    pl = sub.add_parser(
        "play", help="play an env in the terminal (type 'expert' for the expert's move, 'quit')"
    )
    pl.add_argument("env")
    pl.add_argument("--seed", type=int, default=0)
    pl.add_argument("--split", default=None)
    pl.add_argument("--task-id", default=None)
    pl.add_argument("--env-arg", action="append", default=[], metavar="KEY=VALUE")
    _add_plugin_option(pl)
    pl.set_defaults(fn=cmd_play)

    t = sub.add_parser("tasks", help="list or validate task packs")
    tsub = t.add_subparsers(dest="tasks_cmd", required=True)
    tsub.add_parser("list")
    v = tsub.add_parser(
        "validate", help="load every split as an env would: exit 0 and 'ok' only if the pack plays"
    )
    v.add_argument("path", help="pack name or folder")
    _add_plugin_option(v)
    imp = tsub.add_parser("import", help="convert another project's released data into a task pack")
    from turngym.envs.shopping.webshop_import import register_cli as register_webshop_import

    register_webshop_import(imp.add_subparsers(dest="import_source", required=True))
    t.set_defaults(fn=cmd_tasks)

    for module in EXTRA_COMMANDS.values():
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name == module:
                continue
            raise
        register: Callable[[Any], None] = mod.register_cli
        register(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    import logging

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    try:
        if getattr(args, "plugin", None):
            from turngym.registry import import_plugins

            import_plugins(args.plugin, field="--plugin")
        return int(args.fn(args) or 0)
    except TurngymError as exc:
        print(f"turngym: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("turngym: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
