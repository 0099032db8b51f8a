"""Behaviour cloning on expert trajectories: cross-entropy on the policy (action) tokens only, same masking as RL.

    trainer = SFTTrainer(model, episodes, SFTConfig(epochs=3), tokenizer=tok); trainer.train()

`episodes` are TokenEpisodes whose policy_mask marks the expert's action tokens (the rollout engine renders expert
Episodes that way). The loss is the mean negative log-likelihood over all action tokens of a mini-batch.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

from turngym.agents.trajectory import TokenEpisode
from turngym.errors import ConfigError
from turngym.trainers.batch import collate, shift_logprobs
from turngym.trainers.checkpoint import load_checkpoint, resume_checkpoint, save_checkpoint
from turngym.trainers.config import SFTConfig, save_interval, to_dict
from turngym.trainers.grpo import forward_logits, lr_lambda, policy_module, prepare_model
from turngym.trainers.logging import MetricsLogger, plot_curves

log = logging.getLogger(__name__)


def sft_loss(logp: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Token-mean NLL over policy tokens: −Σ mask·logp / Σ mask. logp, mask: [B, L] -> scalar."""
    return -(logp * mask).sum() / mask.sum().clamp(min=1.0)


def context_mask(batch: Any) -> torch.Tensor:
    """1 on the real (non-padding) tokens that are not policy tokens, except each row's first token (nothing
    predicts it): the context an auxiliary language-modelling loss trains on. [B, L] float."""
    mask = batch.attention_mask.float() * (1.0 - batch.policy_mask)
    mask[:, 0] = 0.0
    return mask


class SFTTrainer:
    def __init__(
        self,
        model: Any,
        episodes: list[TokenEpisode],
        config: SFTConfig | None = None,
        tokenizer: Any = None,
    ):
        self.config = cfg = config or SFTConfig()
        if not episodes:
            raise ConfigError("SFTTrainer needs at least one expert episode")
        if not any(e.num_policy_tokens for e in episodes):
            raise ConfigError("SFT episodes have no policy tokens (policy_mask is all 0): nothing to learn")
        self.policy = model
        self.model: torch.nn.Module = prepare_model(policy_module(model), cfg)
        self.tokenizer = tokenizer or getattr(model, "tokenizer", None)
        self.episodes = episodes
        self.pad_id = int(getattr(self.tokenizer, "pad_token_id", None) or 0)
        params = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.steps_per_epoch = math.ceil(len(episodes) / cfg.mini_batch_size)
        self.total_steps = cfg.epochs * self.steps_per_epoch
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lr_lambda(cfg.lr_schedule, cfg.warmup_steps, self.total_steps)
        )
        self.step = 0
        self.out = Path(cfg.output_dir)

    def _order(self, epoch: int) -> np.ndarray:
        return np.random.default_rng([self.config.seed, epoch]).permutation(len(self.episodes))

    def train_step(self) -> dict[str, float]:
        """One optimizer step on mini-batch `self.step` (position in the seeded epoch order: resumable)."""
        cfg = self.config
        epoch, k = divmod(self.step, self.steps_per_epoch)
        idx = self._order(epoch)[k * cfg.mini_batch_size : (k + 1) * cfg.mini_batch_size]
        mini = [self.episodes[i] for i in idx]
        total_tok = sum(e.num_policy_tokens for e in mini) or 1
        self.model.train()
        self.optimizer.zero_grad(set_to_none=True)
        loss_sum, correct, n, ctx_sum = 0.0, 0.0, 0, 0.0
        # context tokens of the mini-batch (all but the first token of each episode, minus its policy tokens)
        total_ctx = sum(len(e.input_ids) - 1 - e.num_policy_tokens for e in mini) or 1
        for m0 in range(0, len(mini), cfg.micro_batch_size):
            micro = mini[m0 : m0 + cfg.micro_batch_size]
            batch = collate(micro, self.pad_id).to(next(self.model.parameters()).device)
            logits = forward_logits(self.model, batch, cfg.bf16)
            logp = shift_logprobs(logits, batch.input_ids)
            loss = sft_loss(logp, batch.policy_mask)
            w = float(batch.policy_mask.sum()) / total_tok
            total = loss * w
            if cfg.context_loss_coef > 0:
                cmask = context_mask(batch)
                ctx_loss = sft_loss(logp, cmask)
                cw = float(cmask.sum()) / total_ctx
                total = total + cfg.context_loss_coef * ctx_loss * cw
                ctx_sum += float(ctx_loss.detach()) * cw
            total.backward()
            loss_sum += float(loss.detach()) * w
            with torch.no_grad():
                pred = logits[:, :-1].argmax(-1)
                hit = (pred == batch.input_ids[:, 1:]).float() * batch.policy_mask[:, 1:]
                correct += float(hit.sum())
                n += int(batch.policy_mask.sum())
        gn = torch.nn.utils.clip_grad_norm_(
            [p for p in self.model.parameters() if p.requires_grad], cfg.max_grad_norm
        )
        self.optimizer.step()
        self.scheduler.step()
        self.step += 1
        out = {
            "loss": loss_sum,
            "token_accuracy": correct / max(n, 1),
            "grad_norm": float(gn),
            "lr": float(self.scheduler.get_last_lr()[0]),
            "epoch": epoch,
        }
        if cfg.context_loss_coef > 0:
            out["context_loss"] = ctx_sum
        return out

    def save(self) -> Path:
        return save_checkpoint(
            self.out, self.step, self.model, self.optimizer, self.scheduler, {}, self.config.keep_checkpoints
        )

    def train(self, resume: bool | str = False) -> list[dict[str, Any]]:
        cfg = self.config
        self.out.mkdir(parents=True, exist_ok=True)
        (self.out / "config.json").write_text(json.dumps(to_dict(cfg), indent=1, default=str))
        ckpt = resume_checkpoint(self.out, resume)
        if ckpt is not None:
            self.step = load_checkpoint(ckpt, self.model, self.optimizer, self.scheduler)["step"]
            log.info(
                "resumed at step %d of %d; continuing with step %d",
                self.step,
                self.total_steps,
                self.step + 1,
            )
        every = save_interval(cfg.save_every, self.total_steps)
        logger = MetricsLogger(
            self.out, self.total_steps, cfg.tensorboard, cfg.wandb, cfg.progress, to_dict(cfg), "sft"
        )
        logger.truncate_after(self.step)
        try:
            while self.step < self.total_steps:
                m = self.train_step()
                if self.step % cfg.log_every == 0 or self.step == self.total_steps:
                    logger.log(self.step, m)
                if every and self.step % every == 0:
                    self.save()
            if not every or self.step % every:
                self.save()
            records = logger.records()
            if cfg.plot:
                plot_curves(records, self.out / "learning_curve.png", keys=("loss", "token_accuracy"))
            return records
        finally:
            logger.close()


def expert_token_episode(
    policy: Any, episode: Any, system_prompt: str | None = None, group: int = 0
) -> TokenEpisode:
    """Render a text `Episode` (e.g. from the scripted expert) as a TokenEpisode, exactly as the rollout engine builds
    one: template prompt, then per step the action's ids + end-of-turn id (policy tokens), the template's closing ids
    and the next observation as a user turn (not after the last action). Needs `policy.chat` (a ChatFormat)."""
    from turngym.agents.prompting import first_user_message
    from turngym.agents.trajectory import clean_info

    chat = policy.chat
    msgs: list[dict[str, str]] = []
    if system_prompt:
        msgs.append({"role": "system", "content": system_prompt})
    msgs.append({"role": "user", "content": first_user_message(episode.instructions, episode.observation)})
    ids = list(chat.prompt_ids(msgs))
    mask, turn = [0] * len(ids), [-1] * len(ids)
    end = chat.end_ids[0]
    rewards, keys, infos = [], [], []
    prev_key = str(episode.meta.get("reset_obs_key", "")) if episode.meta else ""
    for t, step in enumerate(episode.steps):
        gen = chat.encode(step.action) + [end]
        ids += gen
        mask += [1] * len(gen)
        turn += [t] * len(gen)
        msgs.append({"role": "assistant", "content": step.action})
        close, _ = chat.close_assistant(msgs, gen)
        ids += close
        mask += [0] * len(close)
        turn += [-1] * len(close)
        if t + 1 < len(episode.steps):
            msgs.append({"role": "user", "content": step.observation})
            user, _ = chat.user_turn_ids(msgs)
            ids += user
            mask += [0] * len(user)
            turn += [-1] * len(user)
        rewards.append(float(step.reward))
        keys.append(prev_key)
        prev_key = str(step.info.get("obs_key", ""))
        infos.append(clean_info(step.info))
    return TokenEpisode(
        input_ids=ids,
        policy_mask=mask,
        logprobs=[0.0] * len(ids),
        turn_index=turn,
        rewards=rewards,
        obs_keys=keys,
        infos=infos,
        task_id=episode.task_id,
        group=group,
        episode=episode,
    )


def load_expert_token_episodes(
    path: str | Path, policy: Any, system_prompt: str | None = None
) -> list[TokenEpisode]:
    """Expert episodes from an `episodes.jsonl` (as `turngym eval --agent expert --out DIR` writes) as TokenEpisodes."""
    from turngym.agents.trajectory import read_episodes

    if not path or not Path(path).exists():
        raise ConfigError(
            f"SFT data {path!r} not found: point `data` at an episodes.jsonl of expert episodes"
        )
    return [
        expert_token_episode(policy, ep, system_prompt, group=i) for i, ep in enumerate(read_episodes(path))
    ]
