"""turngym.numerics: pin_isa sets PyTorch's kernel ISA before torch uses it (checked in fresh interpreters: torch reads
ATEN_CPU_CAPABILITY once, at its first kernel call), an explicit setting wins, a late pin restarts or fails clearly."""

import os
import subprocess
import sys
import textwrap
import warnings

import pytest

from turngym import numerics
from turngym.numerics import ISAError, numerics_info, pin_isa, wanted_isa

_VARS = ("ATEN_CPU_CAPABILITY", "TURNGYM_ISA", "_TURNGYM_ISA_REEXEC", "MKL_ENABLE_INSTRUCTIONS")
needs_avx2 = pytest.mark.skipif(
    not numerics.is_x86() or "avx2" not in numerics.cpu_flags(), reason="needs an x86-64 CPU with AVX2"
)


def run_py(code: str, tmp_path, **env: str) -> subprocess.CompletedProcess:
    """Runs `code` as a script in a fresh interpreter with only the given ISA variables set."""
    script = tmp_path / "script.py"
    script.write_text(textwrap.dedent(code))
    base = {k: v for k, v in os.environ.items() if k not in _VARS}
    return subprocess.run(
        [sys.executable, str(script)], env={**base, **env}, capture_output=True, text=True, timeout=120
    )


PIN_THEN_TORCH = """
    from turngym.numerics import pin_isa
    print("pinned", pin_isa())
    import torch
    print("kernels", torch.backends.cpu.get_cpu_capability())
"""


@needs_avx2
def test_pin_isa_sets_avx2_before_torch_loads(tmp_path):
    p = run_py(PIN_THEN_TORCH, tmp_path)
    assert p.returncode == 0, p.stderr
    assert p.stdout.split() == ["pinned", "avx2", "kernels", "AVX2"]


@needs_avx2
def test_turngym_isa_picks_another_and_native_leaves_torch_alone(tmp_path):
    p = run_py(PIN_THEN_TORCH, tmp_path, TURNGYM_ISA="default")
    assert p.returncode == 0, p.stderr
    assert p.stdout.split() == ["pinned", "default", "kernels", "DEFAULT"]
    native = run_py("import torch; print(torch.backends.cpu.get_cpu_capability())", tmp_path).stdout.strip()
    p = run_py(PIN_THEN_TORCH, tmp_path, TURNGYM_ISA="native")
    assert p.returncode == 0, p.stderr
    assert p.stdout.split() == ["pinned", "None", "kernels", native]


@needs_avx2
def test_an_explicit_aten_cpu_capability_wins_over_turngym_isa(tmp_path):
    p = run_py(PIN_THEN_TORCH, tmp_path, ATEN_CPU_CAPABILITY="default", TURNGYM_ISA="avx2")
    assert p.returncode == 0, p.stderr
    assert p.stdout.split() == ["pinned", "default", "kernels", "DEFAULT"]


LATE = """
    import torch
    torch.ones(8).sum()  # the first kernel call fixes torch's kernel ISA (reading ATEN_CPU_CAPABILITY once)
    print("start", torch.backends.cpu.get_cpu_capability() != "DEFAULT", flush=True)
    from turngym.numerics import pin_isa
    pin_isa(reexec={reexec})
    print("kernels", torch.backends.cpu.get_cpu_capability())
"""


@needs_avx2
def test_a_pin_after_torch_loaded_fails_clearly_without_restart(tmp_path):
    # torch loaded with its native kernels (AVX2 or AVX-512), then asked for the portable ones: too late
    p = run_py(LATE.format(reexec=False), tmp_path, TURNGYM_ISA="default")
    assert p.returncode != 0
    assert "ISAError" in p.stderr and "call pin_isa() before importing torch" in p.stderr, p.stderr
    assert "kernels" not in p.stdout


@needs_avx2
def test_a_pin_after_torch_loaded_restarts_the_command_with_the_pin(tmp_path):
    p = run_py(LATE.format(reexec=True), tmp_path, TURNGYM_ISA="default")
    assert p.returncode == 0, p.stderr
    # ran twice: first with torch's native kernels, then restarted with the pin
    assert p.stdout.split() == ["start", "True", "start", "False", "kernels", "DEFAULT"]
    assert "restarting this command" in p.stderr


def fix_this_process_kernels() -> str | None:
    """torch picks its kernels once per process, at its first kernel call, from the environment of that moment: make
    that happen now, under this process's own environment, so that an in-process test that clears the ISA variables
    cannot decide the kernels of every later test in this (xdist worker) process. Returns them (None: no torch)."""
    try:
        import torch
    except ImportError:
        return None
    return torch.backends.cpu.get_cpu_capability()


@pytest.fixture
def clean_env(monkeypatch):
    fix_this_process_kernels()
    for k in _VARS:
        monkeypatch.delenv(k, raising=False)
    return monkeypatch


@pytest.mark.parametrize(
    ("var", "value"), [("TURNGYM_ISA", "avx3"), ("TURNGYM_ISA", "sse"), ("ATEN_CPU_CAPABILITY", "native")]
)
def test_bad_values_name_the_variable_and_the_choices(clean_env, var, value):
    clean_env.setenv(var, value)
    with pytest.raises(ISAError, match=rf"{var}=.*expected one of default, avx2, avx512"):
        wanted_isa()


def test_values_are_case_insensitive_and_an_empty_variable_counts_as_unset(clean_env):
    clean_env.setenv("TURNGYM_ISA", " AVX2 ")
    clean_env.setattr(numerics, "cpu_flags", lambda: ["avx2", "fma"])
    clean_env.setattr(numerics, "is_x86", lambda: True)
    assert wanted_isa() == "avx2"
    clean_env.setenv("TURNGYM_ISA", "")
    clean_env.setenv("ATEN_CPU_CAPABILITY", "")
    assert wanted_isa() == "avx2"  # the built-in default


def test_a_cpu_without_the_isa_refuses_an_explicit_pin_and_warns_for_the_default(clean_env):
    clean_env.setattr(numerics, "is_x86", lambda: True)
    clean_env.setattr(numerics, "cpu_flags", lambda: ["fma"])  # an x86-64 CPU from before AVX2
    with pytest.warns(UserWarning, match="no avx2: PyTorch's kernels left unpinned"):
        assert wanted_isa() is None
    clean_env.setenv("TURNGYM_ISA", "avx512")
    with pytest.raises(ISAError, match="TURNGYM_ISA=avx512: this CPU .* has no avx512f"):
        wanted_isa()


def test_another_architecture_is_left_alone_unless_asked(clean_env):
    clean_env.setattr(numerics, "is_x86", lambda: False)
    with pytest.warns(UserWarning, match="not x86-64"):
        assert wanted_isa() is None
    clean_env.setenv("ATEN_CPU_CAPABILITY", "sve256")  # that architecture's own kernel name: torch's business
    assert wanted_isa() == "sve256"
    clean_env.delenv("ATEN_CPU_CAPABILITY")
    clean_env.setenv("TURNGYM_ISA", "avx2")
    with pytest.raises(ISAError, match="not x86-64"):
        wanted_isa()


def test_pin_isa_in_a_process_whose_torch_already_matches_is_a_no_op(clean_env):
    import torch

    have = torch.backends.cpu.get_cpu_capability()
    if have not in ("DEFAULT", "AVX2") and not have.startswith("AVX512"):
        pytest.skip(f"torch uses {have} kernels")
    clean_env.setenv("ATEN_CPU_CAPABILITY", "avx512" if have.startswith("AVX512") else have.lower())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert pin_isa(reexec=False) == os.environ["ATEN_CPU_CAPABILITY"]


def test_numerics_info_records_the_setting_and_the_kernels(clean_env):
    import torch

    clean_env.setenv("MKL_CBWR", "AVX2")
    info = numerics_info()
    assert info["torch_cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert info["aten_cpu_capability"] == "native" and info["turngym_isa"].startswith("unset")
    assert info["mkl_cbwr"] == "AVX2" and info["torch_threads"] == torch.get_num_threads()
    assert info["torch"] == torch.__version__ and info["cpu_count"] == os.cpu_count()


MKL_VAR = """
    import os
    from turngym.numerics import pin_isa
    pin_isa()
    print(os.environ.get("MKL_ENABLE_INSTRUCTIONS", "unset"))
"""


def test_pin_isa_caps_mkl_at_avx2_unless_set(tmp_path):
    """MKL dispatches its matmuls by itself (AVX-512 where the CPU has it) whatever ATen is pinned to."""
    assert run_py(MKL_VAR, tmp_path).stdout.split() == ["AVX2"]
    assert run_py(MKL_VAR, tmp_path, MKL_ENABLE_INSTRUCTIONS="AVX512").stdout.split() == ["AVX512"]
    assert run_py(MKL_VAR, tmp_path, TURNGYM_ISA="native").stdout.split() == ["unset"]


def test_this_process_runs_the_kernels_its_environment_names():
    """Runs after the in-process tests above: an ATEN_CPU_CAPABILITY set for the test run is still what torch runs
    (it was not decided while a test had cleared the variable)."""
    isa = os.environ.get("ATEN_CPU_CAPABILITY", "").strip().lower()
    if isa not in numerics.ISAS or not numerics.is_x86():
        pytest.skip("ATEN_CPU_CAPABILITY is not set to an x86-64 kernel ISA for this run")
    got = fix_this_process_kernels()
    if got is None:
        pytest.skip("needs torch")
    assert got == isa.upper() or (isa == "avx512" and got.startswith("AVX512")), (isa, got)


@needs_avx2
def test_the_in_process_tests_leave_the_run_s_kernels_alone(tmp_path):
    """This file alone under ATEN_CPU_CAPABILITY=default, torch's first kernel call inside a test that clears the
    ISA variables: the process still runs the portable kernels afterwards (before the fix it ran native ones)."""
    pytest.importorskip("torch")
    env = {**os.environ, "ATEN_CPU_CAPABILITY": "default"}
    p = subprocess.run(
        [
            sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist", __file__, "-k",
            "numerics_info_records or kernels_its_environment_names",
        ],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert p.returncode == 0 and "2 passed" in p.stdout, p.stdout[-3000:] + p.stderr[-2000:]
