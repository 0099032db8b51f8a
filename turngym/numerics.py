"""Numerics that travel: pin PyTorch's CPU kernels to one instruction set, and record what a run used.

PyTorch picks its CPU kernels per instruction set at start-up (`ATEN_CPU_CAPABILITY`: `default`, `avx2`, `avx512`;
unset = the best the CPU has). Kernels for different instruction sets round differently, so a run that trains a
small model from scratch can end in a different place on an AVX-512 machine than on an AVX2 one. The learning
scripts and benchmarks (`examples/learn_cpu.py`, `python -m turngym.experiments.demo`, `benchmarks/learning.py`) call
`pin_isa()` first, which sets `ATEN_CPU_CAPABILITY=avx2` unless told otherwise; every x86-64 CPU made since 2015 has
AVX2. On one machine a pinned run repeats bit for bit; across CPU vendors it does not always: MKL (PyTorch's
matmuls) ignores `MKL_ENABLE_INSTRUCTIONS` and `MKL_CBWR=AVX2` on an AMD EPYC (measured 2026-12-06), so the same
pinned 30-step SFT ends with different weights there than on an Intel Xeon (`benchmarks/learning_numerics.py`;
MKL's cross-vendor mode `MKL_CBWR=COMPATIBLE` changes its result on AMD and is slower; set it yourself to try it).
Override with `TURNGYM_ISA` (`native`: leave PyTorch's choice alone; `default`, `avx2`, `avx512`:
pin that one); an `ATEN_CPU_CAPABILITY` already set in the environment wins over both.

A pinned ISA makes a run repeatable, not representative: the benchmarks report means over seeds with confidence
intervals, and name the ISA they ran with (`numerics_info()` in every results file).
"""

from __future__ import annotations

import os
import platform
import sys
import warnings
from typing import Any

ISA_ENV = "TURNGYM_ISA"
DEFAULT_ISA = "avx2"
# the values ATEN_CPU_CAPABILITY accepts on x86-64 (aten/src/ATen/native/DispatchStub.cpp)
ISAS = ("default", "avx2", "avx512")
# torch.backends.cpu.get_cpu_capability() names
_TORCH_NAMES = {"default": "DEFAULT", "avx2": "AVX2", "avx512": "AVX512"}


_REEXEC_ENV = "_TURNGYM_ISA_REEXEC"  # set by pin_isa's restart


class ISAError(ValueError):
    """A bad TURNGYM_ISA / ATEN_CPU_CAPABILITY value, or a pin asked for after torch chose other kernels."""


def is_x86() -> bool:
    """Whether this machine is x86-64 (the only architecture whose kernel ISAs `pin_isa` knows)."""
    return platform.machine().lower() in ("x86_64", "amd64", "x64")


def wanted_isa(default: str = DEFAULT_ISA) -> str | None:
    """The ISA a run should pin: `ATEN_CPU_CAPABILITY` if set, else `TURNGYM_ISA`, else `default`; None = native.

    An explicit setting the CPU cannot honour (no AVX2 / AVX-512, or not x86-64) raises ISAError; the built-in
    default on such a machine warns and leaves PyTorch's choice alone (its results are then per-machine)."""
    explicit = True
    if os.environ.get("ATEN_CPU_CAPABILITY", "").strip():
        isa, source = os.environ["ATEN_CPU_CAPABILITY"].strip().lower(), "ATEN_CPU_CAPABILITY"
    elif os.environ.get(ISA_ENV, "").strip():
        isa, source = os.environ[ISA_ENV].strip().lower(), ISA_ENV
    else:
        isa, source, explicit = default.strip().lower(), f"the default ({ISA_ENV} unset)", False
    if isa == "native" and source != "ATEN_CPU_CAPABILITY":
        return None
    if source == "ATEN_CPU_CAPABILITY" and not is_x86():
        return isa  # another architecture's kernel names (vsx, zvector, sve256): PyTorch's own business
    if isa not in ISAS:
        extra = "" if source == "ATEN_CPU_CAPABILITY" else ", native"
        raise ISAError(f"{source}={isa!r}: expected one of {', '.join(ISAS)}{extra}")
    if not is_x86():
        if explicit:
            raise ISAError(f"{source}={isa}: {platform.machine()} is not x86-64; use {ISA_ENV}=native")
        warnings.warn(f"{platform.machine()} is not x86-64: PyTorch's kernels left unpinned", stacklevel=3)
        return None
    need = {"avx2": "avx2", "avx512": "avx512f"}.get(isa)
    flags = cpu_flags()
    if need and flags and need not in flags:
        if explicit:
            raise ISAError(
                f"{source}={isa}: this CPU ({cpu_model()}) has no {need}; use {ISA_ENV}=native or default"
            )
        warnings.warn(
            f"this CPU ({cpu_model()}) has no {need}: PyTorch's kernels left unpinned", stacklevel=3
        )
        return None
    return isa


def pin_isa(default: str = DEFAULT_ISA, reexec: bool = True) -> str | None:
    """Pins PyTorch's CPU kernels to one ISA for this process (see the module docstring); returns it (None: native).

    Call it before torch is imported: it sets `ATEN_CPU_CAPABILITY` (and, for avx2, `MKL_ENABLE_INSTRUCTIONS=AVX2`
    unless set: MKL dispatches on its own, read when torch loads it), which torch reads once, at its first tensor
    operation (so an imported but unused torch still takes the pin). If torch already runs other kernels,
    `reexec=True` restarts the interpreter with the same command line and the variable set (only from a script's
    entry point: the caller's state is lost); `reexec=False` raises ISAError instead."""
    isa = wanted_isa(default)
    if isa is None:
        return None
    os.environ["ATEN_CPU_CAPABILITY"] = isa
    if (
        isa == "avx2"
    ):  # MKL's matmuls pick AVX-512 on their own where the CPU has it; an explicit setting wins
        os.environ.setdefault("MKL_ENABLE_INSTRUCTIONS", "AVX2")
    if "torch" in sys.modules:
        got = sys.modules["torch"].backends.cpu.get_cpu_capability()
        if got != _TORCH_NAMES[isa] and not (isa == "avx512" and got.startswith("AVX512")):
            msg = (
                f"torch already runs {got} kernels, not {isa} (fixed at its first tensor operation, which came "
                f"before pin_isa()): call pin_isa() before importing torch, or set ATEN_CPU_CAPABILITY={isa} "
                f"(or {ISA_ENV}=native) in the environment"
            )
            if not reexec or os.environ.get(_REEXEC_ENV):  # a restart that did not help must not loop
                raise ISAError(msg)
            warnings.warn(msg + "; restarting this command with it set", stacklevel=2)
            os.environ[_REEXEC_ENV] = "1"
            sys.stdout.flush()
            sys.stderr.flush()
            os.execv(sys.executable, [sys.executable, *sys.orig_argv[1:]])
    return isa


def cpu_model() -> str:
    """The CPU's model name (/proc/cpuinfo on Linux, platform.processor() elsewhere)."""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_flags() -> list[str]:
    """The vector-ISA flags of the CPU that matter to PyTorch's kernel choice (avx2, avx512f, ...)."""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("flags"):
                    return sorted(f for f in line.split(":", 1)[1].split() if f in ("avx2", "fma", "avx512f"))
    except OSError:
        pass
    return []


def numerics_info() -> dict[str, Any]:
    """What a results file records about the numerics of its run: the ISA setting and the kernels torch uses, the
    torch version, CPU model and flags, core count, torch threads and the MKL / OpenMP variables."""
    import torch

    return {
        "turngym_isa": os.environ.get(ISA_ENV) or f"unset (default {DEFAULT_ISA})",
        "aten_cpu_capability": os.environ.get("ATEN_CPU_CAPABILITY") or "native",
        "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "cpu_model": cpu_model(),
        "cpu_flags": cpu_flags(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "mkl_cbwr": os.environ.get("MKL_CBWR", ""),
        "mkl_enable_instructions": os.environ.get("MKL_ENABLE_INSTRUCTIONS", ""),
        "onednn_max_cpu_isa": os.environ.get("ONEDNN_MAX_CPU_ISA", ""),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS", ""),
    }
