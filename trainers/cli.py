"""`turngym train`: run a trainer from a YAML config plus key=value overrides.

turngym train env_id=turngym/EmbodiedSearch-v0 model=tiny steps=6  # a small random model built locally: a quick try
turngym train --config cfg.yaml lr=1e-5 advantage=gigpo          # GRPO family (default)
turngym train --sft --config sft.yaml data=runs/expert/episodes.jsonl
turngym train --config cfg.yaml --resume                          # continue from output_dir's latest checkpoint
                                                                 # (none there: a warning, then step 1)
turngym train --print-config                                      # every field with its default (JSON)
turngym train --help-config                                       # every field with its help text, by group
turngym train --help-config --sft                                 # the same for SFT
torchrun --nproc_per_node 8 -m turngym.cli train --config cfg.yaml  # data-parallel GRPO (also `accelerate launch`)
turngym train --config cfg.yaml rollout_backend=vllm              # rollouts from a vLLM engine, weights synced per update
turngym train --config cfg.yaml rollout_backend=ray rollout_workers=4  # rollouts in 4 Ray actors (docs/scale-out.md)
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def _load_policy(path: str) -> Any:
    from turngym.errors import ConfigError

    if not path:
        raise ConfigError(
            "set `model` in the config or as model=...: a Hugging Face model folder, a .gguf file, 'smollm2', or "
            "'tiny' (a small random model built locally, for trying the pipeline)"
        )
    try:
        from turngym.agents.backends import make_hf_vlm
        from turngym.agents.backends.hf import HFPolicy
    except ImportError as exc:
        raise ConfigError(
            "the HF policy backend needs the `train` extra: pip install 'turngym[train]'"
        ) from exc
    if path.startswith("hf-vlm:") or path == "tiny-vl" or _is_vlm_folder(path):
        return make_hf_vlm(path.removeprefix("hf-vlm:"))  # options after '?', as for `turngym eval --agent`
    return HFPolicy.from_pretrained(path)


def _is_vlm_folder(path: str) -> bool:
    """A checkpoint folder of a vision-language model (its config.json has a `vision_config`)."""
    conf = Path(path) / "config.json"
    try:
        return conf.is_file() and "vision_config" in json.loads(conf.read_text())
    except (OSError, ValueError):
        return False


def _load_vllm_rollout(cfg: Any) -> Any:
    """A vLLM engine over the same checkpoint as the trained model (`rollout_backend: vllm`), one per process."""
    from turngym.errors import ConfigError
    from turngym.trainers.grpo import dist_info

    if dist_info()[1] > 1:
        raise ConfigError(
            "rollout_backend=vllm runs in a single process for now; with torchrun/accelerate launch use "
            "rollout_backend=hf (each rank generates with its own model copy)"
        )
    from turngym.agents.backends.vllm import VLLMPolicy

    max_len = 8192
    conf = Path(cfg.model) / "config.json"
    if conf.is_file():
        max_len = min(max_len, int(json.loads(conf.read_text()).get("max_position_embeddings") or max_len))
    return VLLMPolicy.from_pretrained(
        cfg.model,
        dtype=cfg.vllm_dtype,
        max_model_len=max_len,
        gpu_memory_utilization=cfg.vllm_gpu_memory_utilization,
        enforce_eager=cfg.vllm_enforce_eager,
        max_new_tokens=cfg.max_new_tokens,
        temperature=cfg.temperature,
        seed=cfg.seed,
    )


def cmd_train(args: argparse.Namespace) -> int:
    from turngym.trainers.config import GRPOConfig, SFTConfig, load_config, to_dict

    cls = SFTConfig if args.sft else GRPOConfig
    if args.help_config:
        from turngym.trainers.config import help_text

        print(help_text(cls), end="")
        return 0
    if args.print_config:
        print(json.dumps(to_dict(cls()), indent=1))
        return 0
    cfg = load_config(cls, args.config, args.overrides)
    from turngym.trainers.grpo import init_distributed

    init_distributed()  # a no-op unless launched by torchrun / accelerate launch (WORLD_SIZE > 1)
    policy = _load_policy(cfg.model)
    import torch

    if (
        torch.cuda.is_available()
    ):  # this process's GPU (init_distributed picked cuda:LOCAL_RANK under torchrun)
        policy.model.to(torch.cuda.current_device())
    if args.sft:
        from turngym.trainers.sft import SFTTrainer, load_expert_token_episodes

        episodes = load_expert_token_episodes(cfg.data, policy)
        SFTTrainer(policy, episodes, cfg).train(resume=args.resume)
    else:
        from turngym.trainers.grpo import GRPOTrainer

        rollout = _load_vllm_rollout(cfg) if cfg.rollout_backend == "vllm" else None
        GRPOTrainer(policy, config=cfg, rollout_policy=rollout).train(resume=args.resume)
    log.info("finished; metrics in %s/metrics.jsonl", cfg.output_dir)
    return 0


def register_cli(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "train",
        help="train a policy (GRPO family or SFT) from a YAML config",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--config", default=None, help="YAML file of config fields (plus `model:` and, for SFT, `data:`)"
    )
    p.add_argument("--sft", action="store_true", help="behaviour cloning on expert episodes instead of RL")
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue from the latest checkpoint in output_dir (none there: a warning, then step 1)",
    )
    p.add_argument("--print-config", action="store_true", help="print every config field and exit")
    p.add_argument(
        "--help-config",
        action="store_true",
        help="print every config field with its type, default and help text, grouped per method, and exit",
    )
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="config overrides (JSON values)")
    p.set_defaults(fn=cmd_train)
