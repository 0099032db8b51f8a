"""SPA-RL (Stepwise Progress Attribution): a learned progress estimator turns a sparse episode reward into dense
per-step rewards.

    estimator = ProgressEstimator(backbone, hidden_size)     a scalar head on a small model's hidden states
    spa = SpaRL(estimator, alpha=1.0, beta=0.5)
    each training step:  spa.update(episodes)                collect → fit  (loss (Σ_t c_t − R)², replay buffer)
                         spa_shaper(group, spa)               → r_t = α·c_t + β·g_t per turn
    in a run:            reward_shaping: [{"name": "spa", "alpha": 1.0, "beta": 0.5}]   (`SpaCallback`: a trainer
                         callback fits on each rollout round and logs `spa_loss`; its call is the shaper)
    checkpoint:          spa.state_dict() / spa.load_state_dict(...)   (in the trainer's checkpoints)

The contribution c_t of step t is the head applied to the backbone's hidden state at the last policy token of turn t.
The backbone is causal, so that state has read the whole history and the action: c_t = P_φ(history, a_t), one forward
pass per episode gives every step's contribution.

Backbone choice (turngym choice): by default a separate small causal LM, *frozen*, with a trainable MLP head; in
practice a frozen snapshot of the initial policy (the same checkpoint loaded again), or any smaller model. Why:
(1) frozen features do not drift, so the replay buffer caches them and refitting costs only the head (cheap on CPU);
(2) the estimator's regression loss never touches the policy's weights; (3) a snapshot of the policy already reads the
env's text. `train_backbone=True` fine-tunes the backbone as well (the paper's full estimator), at a forward+backward
per episode per fit epoch.

With GiGPO: SPA replaces the per-turn rewards, GiGPO's step level consumes them. Both GiGPO levels then read the SPA rewards:
the episode level uses R_i = Σ_t r_t = α·Σ_t c_t + β·(valid steps) ≈ α·R_env + β·(valid steps) (the estimator is fitted
so that Σ_t c_t ≈ R_env), the step level normalises the discounted return Σ_k γ^{k−t} r_k within each anchor-state group:
A_{i,t} = A^E_i + ω·A^S_{i,t}. SPA densifies the reward, GiGPO compares equal states: they compose. With plain GRPO
the SPA rewards enter only as the episode return Σ_t r_t. See docs/algorithms.md.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from turngym.errors import ConfigError
from turngym.optional import require
from turngym.trainers.callbacks import Callback
from turngym.trainers.hooks import register_shaper

if TYPE_CHECKING:
    import torch

    from turngym.agents.trajectory import TokenEpisode

log = logging.getLogger(__name__)


# ---- the formulas -----------------------------------------------------------------------------------------------
def progress_loss(contributions: Sequence[torch.Tensor], rewards: torch.Tensor) -> torch.Tensor:
    """SPA-RL estimator loss: mean over episodes of (Σ_t c_t − R)², `contributions[i]` the (T_i,) step contributions
    of episode i, `rewards` the (B,) episode rewards."""
    import torch

    sums = torch.stack([c.sum() for c in contributions])
    return ((sums - rewards) ** 2).mean()


def spa_step_rewards(
    contributions: Sequence[float], valid: Sequence[bool | int], alpha: float = 1.0, beta: float = 0.5
) -> list[float]:
    """SPA-RL step reward: r_t = α·c_t + β·g_t, g_t = 1 if the action was valid (executable) in the env, else 0.
    Defaults α = 1, β = 0.5 (turngym choice)."""
    if len(contributions) != len(valid):
        raise ConfigError(f"spa: {len(contributions)} contributions for {len(valid)} steps")
    return [alpha * float(c) + beta * float(bool(g)) for c, g in zip(contributions, valid)]


def grounding(ep: TokenEpisode) -> list[int]:
    """g_t per step from the env's info: 1 unless `info["invalid_action"]`."""
    return [0 if info.get("invalid_action") else 1 for info in ep.infos]


def episode_reward(ep: TokenEpisode) -> float:
    """The env's episode reward R the estimator is fitted to: `ep.env_rewards` (where the trainer keeps the
    env's rewards once a shaper has run), else the episode's rewards."""
    return float(sum(ep.env_rewards if ep.env_rewards is not None else ep.rewards))


def step_positions(ep: TokenEpisode) -> list[int]:
    """Index of the last policy token of each turn (where the causal backbone has read history + action)."""
    last = [-1] * len(ep.rewards)
    for k, (m, t) in enumerate(zip(ep.policy_mask, ep.turn_index)):
        if m and 0 <= t < len(last):
            last[t] = k
    missing = [t for t, k in enumerate(last) if k < 0]
    if missing:
        raise ConfigError(f"spa: episode of task {ep.task_id!r} has no policy tokens for turns {missing}")
    return last


# ---- the estimator ------------------------------------------------------------------------------------------------
def _hidden(out: Any) -> torch.Tensor:
    if getattr(out, "last_hidden_state", None) is not None:
        return out.last_hidden_state
    if getattr(out, "hidden_states", None) is not None:
        return out.hidden_states[-1]
    raise ConfigError("spa: the backbone returned neither last_hidden_state nor hidden_states")


def _module_base() -> type:
    torch = require("torch", "train", "the SPA-RL progress estimator")
    return torch.nn.Module


class ProgressEstimator(_module_base()):  # type: ignore[misc]
    """P_φ: a scalar head (Linear → tanh → Linear) on a causal backbone's hidden states.

    `backbone(input_ids=(1,T), attention_mask=(1,T))` must return `last_hidden_state` (a transformers base model) or
    `hidden_states` (a causal LM called with output_hidden_states). Frozen unless `train_backbone`.
    """

    def __init__(self, backbone: Any, hidden_size: int, head_hidden: int = 64, train_backbone: bool = False):
        import torch

        super().__init__()
        self.backbone = backbone
        self.train_backbone = train_backbone
        for p in backbone.parameters():
            p.requires_grad_(train_backbone)
        self.head = torch.nn.Sequential(
            torch.nn.Linear(hidden_size, head_hidden), torch.nn.Tanh(), torch.nn.Linear(head_hidden, 1)
        )

    @classmethod
    def from_pretrained(cls, path: str, **kwargs: Any) -> ProgressEstimator:
        """A checkpoint's base model (e.g. the initial policy's: `smollm2`, a folder, a .gguf) as the backbone."""
        backbone, hidden = _load_backbone(path)
        return cls(backbone, hidden, **kwargs)

    def features(self, ep: TokenEpisode) -> torch.Tensor:
        """(T_turns, H): the backbone's hidden state at the last policy token of each turn."""
        import torch

        ids = torch.tensor([ep.input_ids], dtype=torch.long)
        dev = next(self.backbone.parameters()).device
        with torch.set_grad_enabled(self.train_backbone and torch.is_grad_enabled()):
            kw: dict[str, Any] = {"input_ids": ids.to(dev), "attention_mask": torch.ones_like(ids).to(dev)}
            try:
                out = self.backbone(**kw, output_hidden_states=True)
            except TypeError:
                out = self.backbone(**kw)
            h = _hidden(out)[0]
        return h[torch.tensor(step_positions(ep), device=h.device)].float()

    def contributions_from_features(self, feats: torch.Tensor) -> torch.Tensor:
        return self.head(feats)[:, 0]

    def forward(self, ep: TokenEpisode) -> torch.Tensor:
        """(T_turns,) contributions c_t."""
        return self.contributions_from_features(self.features(ep))


def _check_fit(fit_epochs: int, batch_size: int, buffer_size: int) -> None:
    if fit_epochs < 0 or batch_size < 1 or buffer_size < 1:
        raise ConfigError(
            f"spa: fit_epochs >= 0, batch_size >= 1 and buffer_size >= 1 are required, got {fit_epochs}, "
            f"{batch_size}, {buffer_size}"
        )


class SpaRL:
    """SPA-RL's part of a training run: a replay buffer of (step features, R), the estimator fit, the shaping.

    `update(episodes)` adds the batch to the buffer (features cached when the backbone is frozen) and runs
    `fit_epochs` passes of Adam over the buffer in minibatches; `contributions(ep)` scores new episodes;
    `step_rewards(ep)` gives r_t = α·c_t + β·g_t. `state_dict` covers the head (and the backbone when trained), the
    optimizer and the buffer's size, so the estimator is checkpointed with the run.
    """

    def __init__(
        self,
        estimator: ProgressEstimator,
        alpha: float = 1.0,
        beta: float = 0.5,
        lr: float = 1e-3,
        fit_epochs: int = 4,
        batch_size: int = 32,
        buffer_size: int = 512,
        seed: int = 0,
    ):
        import torch

        _check_fit(fit_epochs, batch_size, buffer_size)
        self.estimator = estimator
        self.alpha, self.beta = alpha, beta
        self.fit_epochs, self.batch_size = fit_epochs, batch_size
        self.buffer: deque[tuple[Any, float]] = deque(maxlen=buffer_size)
        params = [p for p in estimator.parameters() if p.requires_grad]
        self.optimizer = torch.optim.Adam(params, lr=lr)
        self.gen = torch.Generator().manual_seed(seed)
        self.fitted_steps = 0
        self.last_loss = float("nan")

    def _item(self, ep: TokenEpisode) -> Any:
        if self.estimator.train_backbone:
            return ep
        import torch

        with torch.no_grad():
            return self.estimator.features(ep)

    def _contrib(self, item: Any) -> torch.Tensor:
        if self.estimator.train_backbone:
            return self.estimator(item)
        return self.estimator.contributions_from_features(item)

    def _batch_loss(self, chunk: list[tuple[Any, float]]) -> torch.Tensor:
        import torch

        rewards = torch.tensor([r for _, r in chunk], dtype=torch.float32)
        if self.estimator.train_backbone:
            return progress_loss([self._contrib(x) for x, _ in chunk], rewards)
        # frozen backbone: one head call over the cached step features of the whole minibatch
        feats = torch.cat([x for x, _ in chunk])
        seg = torch.repeat_interleave(torch.arange(len(chunk)), torch.tensor([len(x) for x, _ in chunk]))
        c = self.estimator.contributions_from_features(feats)
        sums = torch.zeros(len(chunk), dtype=c.dtype, device=c.device).index_add(0, seg.to(c.device), c)
        return ((sums - rewards.to(c.device)) ** 2).mean()

    def update(self, episodes: Sequence[TokenEpisode]) -> float:
        """Collect → fit. Returns the mean loss of the last epoch (nan when fit_epochs = 0)."""
        import torch

        for ep in episodes:
            self.buffer.append((self._item(ep), episode_reward(ep)))
        items = list(self.buffer)
        loss_val = float("nan")
        self.estimator.train()
        for _ in range(self.fit_epochs):
            order = torch.randperm(len(items), generator=self.gen).tolist()
            total = 0.0
            for b in range(0, len(order), self.batch_size):
                chunk = [items[i] for i in order[b : b + self.batch_size]]
                loss = self._batch_loss(chunk)
                self.optimizer.zero_grad()
                loss.backward()
                self.optimizer.step()
                total += float(loss.detach()) * len(chunk)
            loss_val = total / len(items)
        self.estimator.eval()
        self.fitted_steps += 1
        self.last_loss = loss_val
        log.debug("spa: fit %d on %d episodes, loss %.4f", self.fitted_steps, len(items), loss_val)
        return loss_val

    def contributions(self, ep: TokenEpisode) -> list[float]:
        import torch

        with torch.no_grad():
            return self.estimator(ep).tolist()

    def step_rewards(self, ep: TokenEpisode) -> list[float]:
        return spa_step_rewards(self.contributions(ep), grounding(ep), self.alpha, self.beta)

    def state_dict(self) -> dict[str, Any]:
        est = (
            self.estimator.state_dict() if self.estimator.train_backbone else self.estimator.head.state_dict()
        )
        return {
            "estimator": est,
            "optimizer": self.optimizer.state_dict(),
            "fitted_steps": self.fitted_steps,
            "alpha": self.alpha,
            "beta": self.beta,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if self.estimator.train_backbone:
            self.estimator.load_state_dict(state["estimator"])
        else:
            self.estimator.head.load_state_dict(state["estimator"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.fitted_steps = int(state["fitted_steps"])
        self.alpha, self.beta = float(state["alpha"]), float(state["beta"])


def spa_shaper(group: Sequence[TokenEpisode], spa: SpaRL) -> list[list[float]]:
    """Per-turn rewards r_t = α·c_t + β·g_t from a fitted `SpaRL` for every episode of a group."""
    return [spa.step_rewards(ep) for ep in group]


def _policy_backbone(model: Any, config: Any) -> tuple[Any, int]:
    """A frozen snapshot of the initial policy's backbone: loaded from `config.model` when the run has a checkpoint
    path (stable across resumes), else a deep copy of `model` (the trained policy when training begins)."""
    import copy

    path = getattr(config, "model", "") if config is not None else ""
    if path:
        return _load_backbone(str(path))
    if model is None:
        raise ConfigError("spa: backbone 'policy' needs the trainer's model or config.model")
    bb = getattr(model, "base_model", model)
    bb = copy.deepcopy(bb).eval()
    return bb, int(model.config.hidden_size)


def _load_backbone(spec: str) -> tuple[Any, int]:
    """A transformers base model from a model spec the agents' HF backend understands (`smollm2`, a checkpoint
    folder, a .gguf file)."""
    transformers = require("transformers", "train", "the SPA-RL progress estimator")
    torch = require("torch", "train")
    from turngym.agents.backends.hf import resolve_model_path

    folder, gguf = resolve_model_path(spec)
    extra = {"gguf_file": gguf} if gguf else {}
    bb = transformers.AutoModel.from_pretrained(folder, dtype=torch.float32, **extra).eval()
    return bb, int(bb.config.hidden_size)


class SpaCallback(Callback):
    """SPA-RL inside `GRPOTrainer`: a trainer callback that owns the estimator, and the step-reward shaper.

    on_train_begin   builds the estimator: `backbone` "policy" (a frozen snapshot of the initial policy, see
                     `_policy_backbone`) or a transformers checkpoint path, a fresh head seeded with `seed`
    on_rollouts      group by group: collect → fit (on the env rewards) → score the group's episodes with the
                     estimator just fitted (r_t = α·c_t + β·g_t); logs the last fit's `spa_loss`
    __call__         the reward shaper: the step rewards scored for each episode of the group (an episode not seen
                     by on_rollouts is scored with the current estimator); no fitting, no I/O
    state_dict       the estimator's head (and backbone when trained) and optimizer: saved in the trainer's
                     checkpoints, restored on resume

    Config: `reward_shaping: [{name: spa, alpha: 1, beta: 0.5, ...}]` (the shaper and its callback in one entry).
    """

    def __init__(
        self,
        alpha: float = 1.0,
        beta: float = 0.5,
        backbone: str = "policy",
        head_hidden: int = 64,
        train_backbone: bool = False,
        lr: float = 1e-3,
        fit_epochs: int = 4,
        batch_size: int = 32,
        buffer_size: int = 512,
        seed: int = 0,
    ):
        _check_fit(fit_epochs, batch_size, buffer_size)
        self.alpha, self.beta, self.backbone = alpha, beta, backbone
        self.head_hidden, self.train_backbone = head_hidden, train_backbone
        self.lr, self.fit_epochs, self.batch_size, self.buffer_size, self.seed = (
            lr,
            fit_epochs,
            batch_size,
            buffer_size,
            seed,
        )
        self.spa: SpaRL | None = None
        self._scored: dict[int, list[float]] = {}  # id(episode) -> its step rewards, this step

    def build(self, model: Any = None, config: Any = None) -> SpaRL:
        """The estimator and its `SpaRL` over the policy `model` (snapshot) or `config.model` / `backbone`."""
        import torch

        if self.backbone == "policy":
            bb, hidden = _policy_backbone(model, config)
        else:
            bb, hidden = _load_backbone(self.backbone)
        with torch.random.fork_rng(devices=[]):  # the head's init from `seed`, the run's RNG untouched
            torch.manual_seed(self.seed)
            est = ProgressEstimator(
                bb, hidden, head_hidden=self.head_hidden, train_backbone=self.train_backbone
            )
        est.head.to(next(bb.parameters()).device)
        self.spa = SpaRL(
            est, self.alpha, self.beta, self.lr, self.fit_epochs, self.batch_size, self.buffer_size, self.seed
        )
        return self.spa

    def _live(self) -> SpaRL:
        if self.spa is None:
            raise ConfigError(
                "spa: the estimator is not built yet (the trainer builds it in on_train_begin; outside a trainer "
                "call build(model, config))"
            )
        return self.spa

    def on_train_begin(self, trainer: Any) -> None:
        if self.spa is None:
            self.build(trainer.model, trainer.config)

    def on_step_begin(self, trainer: Any) -> None:
        self._scored.clear()

    def on_rollouts(self, trainer: Any, episodes: list[Any]) -> dict[str, float]:
        spa = self._live()
        groups: dict[Any, list[Any]] = {}
        for ep in episodes:
            groups.setdefault(ep.group, []).append(ep)
        loss = float("nan")
        for group in groups.values():
            loss = spa.update(group)
            for ep, rewards in zip(group, spa_shaper(group, spa)):
                self._scored[id(ep)] = rewards
        return {"spa_loss": loss}

    def __call__(self, group: Sequence[TokenEpisode], ctx: Any = None) -> list[list[float]]:
        spa = self._live()
        return [self._scored[id(ep)] if id(ep) in self._scored else spa.step_rewards(ep) for ep in group]

    def state_dict(self) -> dict[str, Any]:
        return self._live().state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._live().load_state_dict(state)


@register_shaper("spa")
def make_spa(**kwargs: Any) -> SpaCallback:
    """Config factory (`reward_shaping: [{"name": "spa", "alpha": 1, "beta": 0.5}]`): a `SpaCallback`."""
    return SpaCallback(**kwargs)
