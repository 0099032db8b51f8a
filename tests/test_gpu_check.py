"""benchmarks/gpu_check.py on a CPU machine: every part skipped with its reason and valid JSON; its pure helpers on
hand-computed cases; and (slow) every part run on the CPU with a tiny shape, so the script itself keeps working."""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "gpu_check.py"


def _load():
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # its dataclass looks its module up
    spec.loader.exec_module(mod)
    return mod


gc = _load()


def _run(tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess, dict]:
    out = tmp_path / "gpu_check.json"
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--out", str(out), *args], capture_output=True, text=True, timeout=600
    )
    return proc, json.loads(out.read_text())


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA: the parts would run")
def test_without_cuda_every_part_is_skipped_with_the_reason_and_the_json_is_written(tmp_path):
    proc, report = _run(tmp_path, "--quick")
    assert proc.returncode == 0, proc.stderr
    assert report["mode"] == "quick" and report["environment"]["cuda"] is False
    assert list(report["parts"]) == list(gc.PARTS)
    for part in report["parts"].values():
        assert part["status"] == "skip"
        assert part["reason"].startswith("CUDA absent: torch.cuda.is_available() is False")
    for name in gc.PARTS:  # the printed table names every part and its status
        assert any(line.startswith(name) and " skip " in line for line in proc.stdout.splitlines())


def test_unknown_part_is_refused():
    with pytest.raises(SystemExit) as exc:
        gc.main(["--parts", "forward_backward,warp_drive"])
    assert exc.value.code == 2


def test_shapes_are_qwen25_sizes_and_the_lean_decoder_takes_them():
    """Built on the meta device (no memory): the parameter count of each shape equals the formula and the released
    models' (Qwen2.5-0.5B 494,032,768; 1.5B 1,543,714,304), and `fastdecode.supports` accepts the model."""
    import transformers

    from turngym.agents.backends import fastdecode

    released = {"qwen2.5-0.5b": 494_032_768, "qwen2.5-1.5b": 1_543_714_304}
    for name, count in released.items():
        assert gc.param_count(gc.SHAPES[name]) == count
        with torch.device("meta"):
            model = transformers.AutoModelForCausalLM.from_config(gc.qwen2_config(name), dtype=torch.bfloat16)
        assert sum(p.numel() for p in model.parameters()) == count
        assert type(model).__name__ == "Qwen2ForCausalLM" and fastdecode.supports(model)
    # tiny by hand: embed 512*64; per layer q 64*64+64, k and v 64*32+32 each, o 64*64, MLP 3*64*128, norms 128
    layer = 4160 + 2 * 2080 + 4096 + 24576 + 128
    assert gc.param_count(gc.SHAPES["tiny"], vocab=512) == 512 * 64 + 2 * layer + 64


def test_until_end_and_first_difference():
    assert gc.until_end([5, 6, 2, 0, 0], {2}) == [5, 6, 2]
    assert gc.until_end([5, 6, 7], [2]) == [5, 6, 7]
    assert gc.first_difference([1, 2, 3], [1, 2, 3]) is None
    assert gc.first_difference([1, 2, 3], [1, 9, 3]) == 1
    assert gc.first_difference([1, 2], [1, 2, 3]) == 2  # one row stopped earlier


def test_run_part_records_pass_fail_and_skip_without_raising():
    ok = gc.run_part("a", lambda: ({"x": 1}, "fine"))
    assert ok["status"] == "pass" and ok["numbers"] == {"x": 1} and ok["summary"] == "fine"

    def boom():
        raise RuntimeError("CUDA error: out of memory")

    bad = gc.run_part("b", boom)
    assert bad["status"] == "fail" and bad["error"] == "RuntimeError: CUDA error: out of memory"
    assert "boom" in bad["traceback"]

    def check_fails():
        raise gc.PartFailed({"rows_equal": 3}, "row 4 differs")

    failed = gc.run_part("c", check_fails)
    assert failed.pop("seconds") >= 0
    assert failed == {"status": "fail", "error": "row 4 differs", "numbers": {"rows_equal": 3}}

    def no_trl():
        raise gc.Skip("trl is not installed")

    assert gc.run_part("d", no_trl)["reason"] == "trl is not installed"


def test_format_table_has_one_row_per_part_with_the_first_line_of_its_text():
    report = {
        "parts": {
            "forward_backward": {"status": "pass", "seconds": 12.34, "summary": "0.5b: 9000 tok/s"},
            "fsdp": {"status": "fail", "seconds": 1.0, "error": "ValueError: bad\nmore"},
        }
    }
    lines = gc.format_table(report).splitlines()
    assert lines[0].split() == ["part", "status", "s", "result"] and set(lines[1]) == {"-"}
    assert lines[2].split() == ["forward_backward", "pass", "12.3", "0.5b:", "9000", "tok/s"]
    assert lines[3].split() == ["fsdp", "fail", "1.0", "ValueError:", "bad"]


@pytest.mark.slow
def test_cpu_smoke_runs_every_part(tmp_path):
    """Every part on the CPU (gloo instead of NCCL) with a tiny Qwen2 shape: the script's own logic end to end."""
    proc, report = _run(tmp_path, "--cpu-smoke")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    parts = report["parts"]
    for name in ("forward_backward", "fast_decode", "fsdp"):
        assert parts[name]["status"] == "pass", parts[name]
    trl_ok = importlib.util.find_spec("trl") is not None
    assert parts["trl_step"]["status"] == ("pass" if trl_ok else "skip"), parts["trl_step"]
    fb = parts["forward_backward"]["numbers"]["shapes"]["tiny"]
    assert fb["params"] == gc.param_count(gc.SHAPES["tiny"], vocab=512) and fb["grad_norm"] > 0
    dec = parts["fast_decode"]["numbers"]["shapes"]["tiny"]
    assert dec["fp32_rows_equal"] == gc.PLANS["cpu-smoke"].dec_batch and dec["fp32_differences"] == []
    fsdp = parts["fsdp"]["numbers"]
    assert fsdp["param_type"] == "DTensor" and fsdp["replica_max_abs_diff"] == 0.0 and fsdp["weights_changed"]
    if trl_ok:
        trl = parts["trl_step"]["numbers"]
        assert trl["ratio_time"] == pytest.approx(trl["turngym"]["step_s"] / trl["trl"]["step_s"], rel=1e-2)
