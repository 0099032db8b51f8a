"""Weights from one process to many over a torch.distributed process group of their own (gloo on CPU, NCCL on GPU).

The group is *stateless*: it is built from a `TCPStore` and the process group class directly, not with
`torch.distributed.init_process_group`, so it lives beside any default group a trainer already has (DDP under
torchrun) and can be built again, with other members, after a member died (each build is a new `generation`, its
keys under their own prefix of the same store). This is how vLLM and OpenRLHF sync a trainer with rollout workers.

A broadcast sends a state dict as one flat buffer per dtype (`broadcast_state`): each member knows the names, shapes
and dtypes in advance (`state_meta`, sent beside the call), so only the tensor bytes cross the group.
"""

from __future__ import annotations

import datetime
import hashlib
from dataclasses import dataclass
from typing import Any

from turngym.errors import ConfigError
from turngym.optional import require

BACKENDS = ("gloo", "nccl")


@dataclass(frozen=True)
class GroupAddress:
    """Where a group's members meet: the store's host and port, the group's size and its generation."""

    host: str
    port: int
    world: int
    generation: int
    backend: str = "gloo"


def master_store(host: str, timeout_s: float) -> Any:
    """The `TCPStore` server every group of this sender meets in (port chosen by the OS: read `store.port`)."""
    dist = require("torch", extra="train").distributed
    return dist.TCPStore(
        host, 0, is_master=True, wait_for_workers=False, timeout=datetime.timedelta(seconds=timeout_s)
    )


def join_group(addr: GroupAddress, rank: int, timeout_s: float, store: Any = None) -> Any:
    """This process's member of the group at `addr` (blocks until all `addr.world` members joined). Rank 0 passes
    the `master_store` it hosts; the others connect to it."""
    torch = require("torch", extra="train")
    dist = torch.distributed
    if addr.backend not in BACKENDS:
        raise ConfigError(f"weight sync backend must be one of {', '.join(BACKENDS)}, got {addr.backend!r}")
    timeout = datetime.timedelta(seconds=timeout_s)
    if store is None:
        store = dist.TCPStore(addr.host, addr.port, is_master=False, wait_for_workers=False, timeout=timeout)
    prefixed = dist.PrefixStore(f"turngym-weights/{addr.generation}/", store)
    if addr.backend == "nccl":
        return dist.ProcessGroupNCCL(prefixed, rank, addr.world)
    return dist.ProcessGroupGloo(prefixed, rank, addr.world, timeout)


def state_meta(state: dict[str, Any]) -> list[tuple[str, tuple[int, ...], str]]:
    """(name, shape, dtype name) of every tensor of a state dict, in its order."""
    return [(k, tuple(v.shape), str(v.dtype).removeprefix("torch.")) for k, v in state.items()]


def broadcast_state(
    group: Any,
    meta: list[tuple[str, tuple[int, ...], str]],
    src: int,
    state: dict[str, Any] | None,
    device: str,
) -> dict[str, Any] | None:
    """Broadcast the tensors named by `meta` from rank `src`, one flat buffer per dtype. The sender passes its
    `state` and gets None back; the others pass None and get the received state dict (tensors on `device`)."""
    torch = require("torch", extra="train")
    by_dtype: dict[str, list[tuple[str, tuple[int, ...]]]] = {}
    for name, shape, dtype in meta:
        by_dtype.setdefault(dtype, []).append((name, tuple(shape)))
    out: dict[str, Any] = {}
    for dtype, items in by_dtype.items():
        if state is not None:
            flat = torch.cat([state[n].detach().reshape(-1).to(device) for n, _ in items])
        else:
            numel = sum(int(torch.Size(s).numel()) for _, s in items)
            flat = torch.empty(numel, dtype=getattr(torch, dtype), device=device)
        group.broadcast([flat], _options(src)).wait()
        if state is None:
            for (name, shape), part in zip(items, flat.split([int(torch.Size(s).numel()) for _, s in items])):
                out[name] = part.view(shape)
    return None if state is not None else {name: out[name] for name, _, _ in meta}


def _options(src: int) -> Any:
    dist = require("torch", extra="train").distributed
    opts = dist.BroadcastOptions()
    opts.rootRank = src
    opts.rootTensor = 0
    return opts


def checksum(state: dict[str, Any]) -> str:
    """SHA-256 over a state dict's names and tensor bytes (in key order): equal weights, equal checksums."""
    torch = require("torch", extra="train")
    h = hashlib.sha256()
    for name, t in state.items():
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()
