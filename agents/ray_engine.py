"""Rollout engines as Ray actors: a rollout service of N workers, each a `RolloutEngine` over its own policy copy.

    engine = RayRolloutEngine(PolicySpec("tiny", {"max_new_tokens": 16}), "turngym/EmbodiedSearch-v0",
                              num_workers=2, num_envs=8)
    eps = engine.collect(4, group_size=4, seed=0)      # the episodes one RolloutEngine returns for seed 0
    engine.update_policy(trainer_model)               # weights to every worker; their policy_version + 1

Placement: this process (the trainer's) makes each call's plan once (`RolloutEngine.plan`, asked of worker 0:
which task each episode plays, its index and seed), splits it into one contiguous share per worker, and gathers the
episodes back in plan order. Each worker is a Ray actor holding a `RolloutEngine` with `num_envs` env slots in its
own process, and its own `HFPolicy` built there from a picklable `PolicySpec` (a checkpoint path or `tiny`, or the
trainer policy's model sent once through Ray's object store). An episode's env seed and sampling seeds follow from
the call's seed and its index, so the episodes are the ones a single engine returns, whichever worker played them
(tokens equal; log-probs equal up to float rounding of different batch compositions, ~1e-6).

Weights: `update_policy(model)` broadcasts the state dict over a torch.distributed process group of this process
(rank 0) and the workers (ranks 1..N), built without `init_process_group` on a `TCPStore` this process hosts
(`turngym.agents.weight_sync`): gloo with CPU tensors, NCCL with GPU tensors (`sync_backend`). Every worker loads
them and publishes the same new version, which its episodes record (`meta["policy_versions"]`).

Faults: workers are Ray actors with `max_restarts`. When one dies during `collect`, Ray restarts it (its
constructor runs again); once the call's other shares are back, the group is formed again with the new process,
the restarted worker receives the current weights from a surviving worker under the current version, and the dead
worker's whole share is played again; its episodes are seeded, so the re-run gives the same episodes, and each plan
index is filled exactly once. A worker that does not come back raises `WorkerError`; a death during `update_policy`
fails that call (its recovery is not written).
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from turngym.agents.remote import env_spec
from turngym.agents.trajectory import TokenEpisode
from turngym.agents.weight_sync import (
    GroupAddress,
    broadcast_state,
    checksum,
    join_group,
    master_store,
    state_meta,
)
from turngym.errors import ConfigError, WorkerError
from turngym.optional import require

log = logging.getLogger(__name__)

SYNC_BACKENDS = ("auto", "gloo", "nccl")


@dataclass
class PolicySpec:
    """How a worker builds its `HFPolicy`: `HFPolicy.from_pretrained(source, **settings)` (a checkpoint folder, a
    .gguf file, `smollm2`, `tiny`: a path must exist on every node), or, with `source=None`, `HFPolicy(model,
    tokenizer, **settings)` over a copy of `model` (sent once through the object store)."""

    source: str | None = None
    settings: dict[str, Any] = field(
        default_factory=dict
    )  # HFPolicy keyword arguments (sampling, kv_reuse, ...)
    model: Any = None  # source=None: the nn.Module to copy
    tokenizer: Any = None  # source=None: its tokenizer

    @classmethod
    def from_policy(cls, policy: Any, source: str | None = None) -> PolicySpec:
        """The spec of a policy like `policy` (an `HFPolicy`): its settings, and its model unless `source` names
        where the workers load the same architecture from."""
        from turngym.agents.backends.hf import HFPolicy

        if not isinstance(policy, HFPolicy) or policy.multimodal:
            raise ConfigError(
                f"RayRolloutEngine workers run text HFPolicy copies; got {type(policy).__name__} (vision-language and "
                "vLLM policies are not supported in Ray rollout workers yet)"
            )
        settings = policy.settings()
        if settings.pop("prompt_hook") is not None:
            raise ConfigError(
                "the policy has a prompt_hook; hooks run in the trainer's process and cannot go to Ray rollout workers"
            )
        settings.update(kv_reuse=policy.kv_reuse, fast_decode=policy.fast_decode)
        if source is not None:
            return cls(source, settings)
        return cls(None, settings, model=policy.model, tokenizer=policy.tokenizer)

    def build(self) -> Any:
        from turngym.agents.backends.hf import HFPolicy

        if self.source is not None:
            return HFPolicy.from_pretrained(self.source, **self.settings)
        if self.model is None:
            raise ConfigError("PolicySpec needs a source (checkpoint path, 'tiny') or a model")
        return HFPolicy(self.model, self.tokenizer, **self.settings)


class _RolloutWorker:
    """The actor: a `RolloutEngine` over its own policy, and its member of the weight-sync group."""

    def __init__(
        self,
        spec: PolicySpec,
        model: Any,
        tokenizer: Any,
        env: tuple[str, Any, dict],
        engine_kwargs: dict,
        device: str,
    ):
        from turngym.agents.engine import RolloutEngine
        from turngym.agents.remote import ensure_registered

        ensure_registered(*env)  # ids registered at run time in the driver work here too
        if model is not None:
            spec = dataclasses.replace(spec, model=model, tokenizer=tokenizer)
        policy = spec.build()
        policy.model.to(device)  # "cuda": the GPU Ray gave this actor (worker_gpus > 0)
        self.engine = RolloutEngine(policy, on_episode=self._count, **engine_kwargs)
        self.done = 0  # episodes finished in the running `run`
        self.group: Any = None
        self.rank = -1

    def _count(self, _ep: TokenEpisode) -> None:
        self.done += 1

    def info(self) -> dict[str, Any]:
        return {"pid": os.getpid(), "done": self.done, "version": self.engine.policy_version}

    def plan(self, *args: Any) -> tuple[list[tuple[int, int, str]], dict[str, Any]]:
        return self.engine.plan(*args)

    def run(self, plan: list[tuple[int, int, str]], seed: int, options: dict) -> tuple[list, dict]:
        self.done = 0
        return self.engine.run_plan(plan, seed, options), dict(self.engine.stats)

    def join(self, addr: GroupAddress, rank: int, timeout_s: float) -> None:
        self.group, self.rank = None, -1  # the previous generation's group goes first
        self.group, self.rank = join_group(addr, rank, timeout_s), rank

    def sync(self, meta: list, src: int, version: int, load: bool, device: str) -> int:
        """Take part in one broadcast from rank `src`: send this worker's weights when it is `src`, else receive
        them and, with `load`, load them and publish `version`. Returns this worker's version."""
        model = self.engine.policy.model
        if self.rank == src:
            broadcast_state(self.group, meta, src, model.state_dict(), device)
        else:
            state = broadcast_state(self.group, meta, src, None, device)
            if load:
                self.engine.update_policy(state, version=version)
        return self.engine.policy_version

    def bump(self, version: int) -> int:
        return self.engine.update_policy(version=version)

    def checksum(self) -> str:
        return checksum(self.engine.policy.model.state_dict())

    def close(self) -> None:
        self.engine.close()


class RayRolloutEngine:
    """`collect` / `update_policy` over `num_workers` Ray actors (see the module docstring).

    Args:
      policy: a `PolicySpec`, or an `HFPolicy` (its model and settings are copied: `PolicySpec.from_policy`).
      env_id, env_kwargs, num_envs, max_turns, system_prompt, parser, max_episode_tokens: each worker's
        `RolloutEngine` (`num_envs` env slots per worker).
      num_workers: Ray actors. address: None starts a local Ray cluster (when none runs in this process), "auto"
        joins the running one, or a cluster address. worker_cpus / worker_gpus: each actor's Ray resources.
      max_restarts: restarts per worker (Ray `max_restarts`) before a death raises `WorkerError`.
      sync_backend: the weight group's backend: "gloo" (CPU tensors), "nccl" (GPU tensors; needs worker_gpus > 0),
        "auto" (nccl when worker_gpus > 0 and this process has CUDA, else gloo).
      sync_timeout_s: how long the group's members wait for each other.
      runtime_env: Ray runtime_env of the workers (e.g. env_vars, working_dir) when this engine starts Ray.
    """

    def __init__(
        self,
        policy: Any,
        env_id: str,
        env_kwargs: dict[str, Any] | None = None,
        num_workers: int = 2,
        num_envs: int = 16,
        max_turns: int | None = None,
        system_prompt: str | None = None,
        parser: str = "raw",
        max_episode_tokens: int | None = None,
        address: str | None = None,
        worker_cpus: float = 1.0,
        worker_gpus: float = 0.0,
        max_restarts: int = 3,
        sync_backend: str = "auto",
        sync_timeout_s: float = 300.0,
        runtime_env: dict[str, Any] | None = None,
        on_episode: Callable[[TokenEpisode], None] | None = None,
    ):
        self._ray = require("ray", extra="distributed", purpose="rollout engines as Ray actors")
        if isinstance(num_workers, bool) or not isinstance(num_workers, int) or num_workers < 1:
            raise ConfigError(f"num_workers must be an integer >= 1, got {num_workers!r}")
        if max_restarts < 0:
            raise ConfigError(f"max_restarts must be >= 0, got {max_restarts}")
        if sync_backend not in SYNC_BACKENDS:
            raise ConfigError(f"sync_backend must be one of {', '.join(SYNC_BACKENDS)}, got {sync_backend!r}")
        spec = policy if isinstance(policy, PolicySpec) else PolicySpec.from_policy(policy)
        if sync_backend == "auto":
            cuda = require("torch", extra="train").cuda.is_available()
            sync_backend = "nccl" if worker_gpus > 0 and cuda else "gloo"
        self.sync_backend = sync_backend
        self.sync_timeout_s = float(sync_timeout_s)
        self.env_id, self.env_kwargs, self.max_turns = env_id, dict(env_kwargs or {}), max_turns
        self.num_workers, self.max_restarts = num_workers, int(max_restarts)
        self.on_episode = on_episode
        self._owns_ray = not self._ray.is_initialized()
        if self._owns_ray:
            self._ray.init(  # "local": a new local cluster, never one found on this machine
                address=address or "local",
                include_dashboard=False,
                log_to_driver=False,
                runtime_env=runtime_env,
            )
        engine_kwargs = {
            "env_id": env_id,
            "env_kwargs": self.env_kwargs,
            "num_envs": num_envs,
            "max_turns": max_turns,
            "system_prompt": system_prompt,
            "parser": parser,
            "max_episode_tokens": max_episode_tokens,
        }
        # the model (source=None) goes into the object store once; each worker reads it from there
        model = None
        if spec.model is not None:
            on_cpu = all(p.device.type == "cpu" for p in spec.model.parameters())
            model = self._ray.put(spec.model if on_cpu else copy.deepcopy(spec.model).cpu())
        bare = dataclasses.replace(spec, model=None, tokenizer=None)
        actor = self._ray.remote(
            num_cpus=worker_cpus, num_gpus=worker_gpus, max_restarts=self.max_restarts, max_concurrency=2
        )(_RolloutWorker)
        self._model_ref = model  # kept: a restarted worker reads its constructor arguments again
        env = env_spec(env_id)
        device = "cuda" if worker_gpus > 0 else "cpu"
        self.workers = [
            actor.remote(bare, model, spec.tokenizer, env, engine_kwargs, device) for _ in range(num_workers)
        ]
        self._version = 0
        self._store: Any = None
        self._group: Any = None
        self._generation = 0
        self._meta: list | None = None
        self.restarts = 0  # worker deaths recovered from
        self.stats: dict[str, float] = {}

    # ---- versions and weights --------------------------------------------------------------------------------
    @property
    def policy_version(self) -> int:
        """How many times `update_policy` ran (every worker's `policy_version` equals it between calls)."""
        return self._version

    @property
    def prompt_hook(self) -> None:
        return None

    @prompt_hook.setter
    def prompt_hook(self, hook: Any) -> None:
        if hook is not None:
            raise ConfigError(
                "RayRolloutEngine cannot take a prompt_hook (it runs in this process; the episodes start in Ray "
                "workers): use rollout_backend=hf with callbacks that set prompt hooks (skills, guidance)"
            )

    def update_policy(self, model: Any = None) -> int:
        """Publish version + 1 on every worker; with `model` (an nn.Module or a state dict), first broadcast its
        weights to every worker over the weight-sync group. Returns the new version."""
        version = self._version + 1
        if model is None:
            self._ray.get([w.bump.remote(version) for w in self.workers])
        else:
            state = model.state_dict() if hasattr(model, "state_dict") else dict(model)
            meta = state_meta(state)
            if self._group is None or meta != self._meta:
                self._form_group()
            self._meta = meta
            # a worker dying here fails the call (recovery is written for collect only; see docs/scale-out.md)
            self._broadcast(0, version, set(range(self.num_workers)), state)
        self._version = version
        return version

    def _form_group(self) -> None:
        """A new generation of the weight-sync group: this process (rank 0) and every worker (rank w + 1)."""
        util = self._ray.util
        if self._store is None:
            self._store = master_store(util.get_node_ip_address(), self.sync_timeout_s)
        self._generation += 1
        addr = GroupAddress(
            util.get_node_ip_address(),
            int(self._store.port),
            self.num_workers + 1,
            self._generation,
            self.sync_backend,
        )
        joins = [w.join.remote(addr, i + 1, self.sync_timeout_s) for i, w in enumerate(self.workers)]
        self._group = None
        self._group = join_group(addr, 0, self.sync_timeout_s, store=self._store)
        self._ray.get(joins)

    def _broadcast(self, src: int, version: int, load: set[int], state: dict[str, Any] | None = None) -> None:
        """One broadcast from rank `src` (0: this process, with `state`); workers in `load` load the weights and
        publish `version`."""
        device = "cuda" if self.sync_backend == "nccl" else "cpu"
        assert self._meta is not None
        refs = [
            w.sync.remote(self._meta, src, version, i in load, device) for i, w in enumerate(self.workers)
        ]
        broadcast_state(self._group, self._meta, src, state if src == 0 else None, device)
        got = self._ray.get(refs)
        stale = [i for i, v in enumerate(got) if v != version]
        if stale:
            raise WorkerError(
                f"rollout workers {stale} are at versions {[got[i] for i in stale]}, not {version}"
            )

    def checksums(self) -> list[str]:
        """Each worker's weight checksum (`weight_sync.checksum`), in worker order."""
        return self._ray.get([w.checksum.remote() for w in self.workers])

    def worker_info(self) -> list[dict[str, Any]]:
        """Each worker's process id, policy version and episodes finished in its running share."""
        return self._ray.get([w.info.remote() for w in self.workers])

    # ---- the rollout -----------------------------------------------------------------------------------------
    def collect(
        self,
        task_ids: list[str] | int,
        group_size: int = 1,
        seed: int = 0,
        split: str | None = None,
        options: dict[str, Any] | None = None,
    ) -> list[TokenEpisode]:
        """`RolloutEngine.collect` over the workers: the same plan, the same episodes in the same order."""
        t0 = time.perf_counter()
        plan, base = self._plan(task_ids, group_size, seed, split, options)
        n = self.num_workers
        cuts = [round(i * len(plan) / n) for i in range(n + 1)]
        todo = {w: plan[cuts[w] : cuts[w + 1]] for w in range(n) if cuts[w + 1] > cuts[w]}
        done: dict[int, TokenEpisode] = {}
        parts: list[dict[str, float]] = []
        reruns = 0
        while todo:
            refs = {w: self.workers[w].run.remote(share, seed, base) for w, share in todo.items()}
            failed = []
            for w, ref in refs.items():
                try:
                    eps, stats = self._ray.get(ref)
                except self._ray.exceptions.RayActorError as exc:
                    log.warning("rollout worker %d died during collect (%s); its share runs again", w, exc)
                    failed.append(w)
                    continue
                for ep in eps:
                    k = ep.meta["index"]
                    if k in done:
                        raise WorkerError(f"episode {k} came back twice (worker {w})")
                    done[k] = ep
                parts.append(stats)
            todo = {w: todo[w] for w in failed}
            if failed:
                reruns += sum(len(s) for s in todo.values())
                self._recover(failed)
        missing = [k for k, _, _ in plan if k not in done]
        if missing or len(done) != len(plan):
            raise WorkerError(f"episodes {missing[:10]} did not come back from the rollout workers")
        out = [done[k] for k, _, _ in plan]
        if self.on_episode:
            for ep in out:
                self.on_episode(ep)
        self.stats = self._merge(parts, time.perf_counter() - t0, len(out), reruns)
        return out

    def _plan(self, *args: Any) -> tuple[list[tuple[int, int, str]], dict[str, Any]]:
        for attempt in range(self.max_restarts + 1):
            try:
                return self._ray.get(self.workers[0].plan.remote(*args))
            except self._ray.exceptions.RayActorError:
                if attempt == self.max_restarts:
                    raise
                self._recover([0])
        raise AssertionError("unreachable")

    def _recover(self, failed: list[int]) -> None:
        """Wait for restarted workers; once weights were synced, give them the current weights and version from a
        surviving worker (the weights of this process may have moved on since)."""
        self.restarts += len(failed)
        self._wait_alive(failed)
        if self._version == 0:
            return  # the restarted workers built the same policy from the spec
        survivors = [w for w in range(self.num_workers) if w not in failed]
        if not survivors:
            raise WorkerError(
                "every rollout worker died after a weight update: no copy of the current weights is left to give "
                "them; call update_policy(model) again"
            )
        self._form_group()
        self._broadcast(survivors[0] + 1, self._version, set(failed))

    def _wait_alive(self, workers: Any, timeout_s: float = 300.0) -> None:
        deadline = time.monotonic() + timeout_s
        for w in workers:
            while True:
                try:
                    self._ray.get(
                        self.workers[w].info.remote(), timeout=max(1.0, deadline - time.monotonic())
                    )
                    break
                except (self._ray.exceptions.RayActorError, self._ray.exceptions.GetTimeoutError) as exc:
                    if time.monotonic() > deadline:
                        raise WorkerError(
                            f"rollout worker {w} did not come back (max_restarts={self.max_restarts}): {exc}"
                        ) from exc
                    time.sleep(0.5)

    @staticmethod
    def _merge(parts: list[dict[str, float]], wall: float, episodes: int, reruns: int) -> dict[str, float]:
        tokens = sum(p.get("generated_tokens", 0) for p in parts)
        steps = sum(p.get("env_steps", 0) for p in parts)
        return {
            "episodes": episodes,
            "wall_s": wall,
            "generated_tokens": tokens,
            "env_steps": steps,
            "env_steps_per_s": steps / wall if wall else 0.0,
            "generated_tokens_per_s": tokens / wall if wall else 0.0,
            "worker_generate_s": sum(p.get("generate_s", 0.0) for p in parts),
            "worker_env_wait_s": sum(p.get("env_wait_s", 0.0) for p in parts),
            "rerun_episodes": reruns,
        }

    # ---- lifecycle -------------------------------------------------------------------------------------------
    def close(self) -> None:
        """Stop the workers (and the Ray cluster this engine started)."""
        for w in self.workers:
            try:
                self._ray.get(w.close.remote(), timeout=30)
            except Exception as exc:  # a dead worker has nothing to close
                log.debug("closing a rollout worker: %s", exc)
            self._ray.kill(w, no_restart=True)
        self.workers = []
        self._group, self._store = None, None
        if self._owns_ray:
            self._ray.shutdown()

    def __enter__(self) -> RayRolloutEngine:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def from_config(policy: Any, cfg: Any) -> RayRolloutEngine:
    """The engine of `rollout_backend: ray` for a trainer config (reads env_id, env_kwargs, num_envs, model,
    rollout_workers, rollout_worker_gpus, ray_address): workers load `cfg.model` when it is set (each builds its own copy), else copy
    the policy's model through the object store."""
    dist = require("torch", extra="train").distributed
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        raise ConfigError(
            "rollout_backend=ray runs with one trainer process for now; with torchrun/accelerate launch use "
            "rollout_backend=hf"
        )
    return RayRolloutEngine(
        PolicySpec.from_policy(policy, source=cfg.model or None),
        cfg.env_id,
        env_kwargs=cfg.env_kwargs,
        num_envs=cfg.num_envs,
        num_workers=cfg.rollout_workers,
        worker_gpus=cfg.rollout_worker_gpus,
        address=cfg.ray_address,
    )
