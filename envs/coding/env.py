"""`turngym/Coding-v0`: a tool-integrated coding env. The agent's actions are tool calls run in a sandbox.

Tools: python(code), bash(cmd), read_file(path), write_file(path, content), run_tests(), submit(). The call format
is in `turngym.envs.coding.calls` (JSON object, optionally in `<tool_call>` tags, or `name("literal", ...)`).
Observations are the tool outputs, cut to `obs_chars` with a marker saying how much was cut.

Reward: 0 per tool call; on `submit()` the hidden tests run in the sandbox and reward = score = fraction passed,
success = all passed, and the episode ends. Each tool call costs `info["cost"]["tool"] = 1.0` and counts in
`info["tool_calls"]`; `info["cost"]["sandbox_s"]` is the sandbox time it took.

Task packs (records of family "coding"): `humaneval` (164 function-completion problems from OpenAI's HumanEval) and
`repo-repair` (small Python repositories with a bug and failing unittest tests). Choose with `task_pack=` at
construction or `reset(options={"task_pack": "repo-repair"})`.
"""

from __future__ import annotations

import hashlib
import logging
from typing import Any, ClassVar

from turngym.envs.coding.calls import TOOLS, CallError, ToolCall, format_call, parse_call
from turngym.envs.coding.grading import (
    DOCTEST_RUNNER,
    HUMANEVAL_RUNNER,
    UNITTEST_RUNNER,
    Report,
    run_runner,
)
from turngym.envs.coding.schema import CODING_SCHEMA
from turngym.envs.core import Outcome, TurnEnv
from turngym.errors import ConfigError
from turngym.sandboxes import ExecResult, Limits, Sandbox, make_sandbox
from turngym.tasks.pack import Field

log = logging.getLogger(__name__)

ACTION_FORMAT = """Act with exactly one tool call per turn, as JSON (optionally inside <tool_call>...</tool_call>):
  {"name": "python", "arguments": {"code": "print(1 + 1)"}}      run Python (fresh process; files persist)
  {"name": "bash", "arguments": {"cmd": "ls -la"}}                run a shell command
  {"name": "read_file", "arguments": {"path": "solution.py"}}     show a file
  {"name": "write_file", "arguments": {"path": "solution.py", "content": "..."}}  create/overwrite a file
  {"name": "run_tests", "arguments": {}}                          run the visible tests
  {"name": "submit", "arguments": {}}                             grade with the hidden tests and end the episode
The short form python("print(1)") / read_file("a.py") / submit() is also accepted."""


def _clip(text: str, limit: int) -> str:
    """Cut `text` to about `limit` characters, keeping head and tail, with a marker naming what was cut."""
    if len(text) <= limit:
        return text
    head = int(limit * 0.7)
    tail = limit - head
    cut = len(text) - head - tail
    return f"{text[:head]}\n...[output truncated: {cut} characters omitted]...\n{text[-tail:]}"


class CodingEnv(TurnEnv):
    family: ClassVar[str] = "coding"
    default_pack: ClassVar[str | None] = "humaneval"
    default_split: ClassVar[str] = "test"
    # HumanEval is a benchmark (one `test` split); training without a task_pack uses repo-repair's `train` split
    split_packs: ClassVar[dict[str, str]] = {"train": "repo-repair"}
    default_max_turns: ClassVar[int] = 30
    action_format: ClassVar[str] = ACTION_FORMAT
    task_fields: ClassVar[dict[str, Field]] = CODING_SCHEMA  # fields and checks (envs/coding/schema.py)

    def __init__(
        self,
        task_pack: str | None = None,
        split: str | None = None,
        max_turns: int | None = None,
        render_mode: str | None = None,
        sandbox: str | Sandbox = "auto",
        limits: Limits | None = None,
        obs_chars: int = 4000,
        test_timeout: float = 20.0,
    ):
        super().__init__(task_pack=task_pack, split=split, max_turns=max_turns, render_mode=render_mode)
        if not isinstance(obs_chars, int) or obs_chars < 200:
            raise ConfigError(f"obs_chars must be an integer >= 200, got {obs_chars!r}")
        self.obs_chars = obs_chars
        self.test_timeout = float(test_timeout)
        if isinstance(sandbox, Sandbox):
            self.sandbox, self._owns_sandbox = sandbox, False
        else:
            self.sandbox, self._owns_sandbox = make_sandbox(sandbox, limits=limits or Limits()), True
        self._plan: list[str] = []
        self._expert_i = 0
        self._history = ""

    # ---- episode -------------------------------------------------------------------------------------------------
    def _start(self, task: dict[str, Any]) -> Outcome:
        self.sandbox.reset(task["files"])  # a fresh sandbox: nothing of the previous episode is left in it
        self._history = hashlib.blake2b(str(task["task_id"]).encode(), digest_size=12).hexdigest()
        self._expert_i = 0
        self._plan = [
            format_call("write_file", path=p, content=c)
            for p, c in sorted(task["solution"].items())
            if task["files"].get(p) != c
        ]
        self._plan += [format_call("run_tests"), format_call("submit")]
        files = "\n".join(f"  {p}" for p in sorted(task["files"]))
        text = (
            f"{task['instruction'].rstrip()}\n\nFiles in your working directory ({self.sandbox.inner_workdir}):\n"
            f"{files}\n\nrun_tests() runs the visible tests; submit() grades your work with hidden tests."
        )
        return Outcome(text=text, state=self._history)

    def _act(self, action: str) -> Outcome:
        try:
            call = parse_call(action)
        except Exception as exc:  # CallError says what is wrong; anything else is a parser gap, logged
            if not isinstance(exc, CallError):
                log.warning("parse_call(%.80r) raised %s: %s", action, type(exc).__name__, exc)
                exc = CallError(f"the action could not be parsed ({type(exc).__name__}: {str(exc)[:200]})")
            return Outcome(
                text=f"Invalid tool call: {exc}\n\n{ACTION_FORMAT}",
                invalid_action=True,
                error=str(exc),
                state=self._history,
            )
        if self._expert_i < len(self._plan) and action == self._plan[self._expert_i]:
            self._expert_i += 1
        self._history = hashlib.blake2b(
            (self._history + repr((call.name, sorted(call.arguments.items())))).encode(), digest_size=12
        ).hexdigest()
        out = getattr(self, f"_tool_{call.name}")(call)
        out.tool_calls = 1
        out.cost = {"tool": 1.0, **out.cost}
        out.state = self._history
        inner = self.sandbox.inner_workdir
        if inner != "/workspace":  # the process backend's real path: show the same path on every backend
            out.text = out.text.replace(inner, "/workspace")
        out.text = _clip(out.text, self.obs_chars)
        return out

    # ---- tools ---------------------------------------------------------------------------------------------------
    def _exec_text(self, res: ExecResult) -> str:
        parts = []
        if res.stdout:
            parts.append(res.stdout.rstrip("\n"))
        if res.stderr:
            parts.append("[stderr]\n" + res.stderr.rstrip("\n"))
        notes = []
        if res.output_truncated:
            notes.append(
                f"output limit reached ({self.sandbox.limits.output_bytes} bytes per stream): stopped"
            )
        if res.timed_out:
            notes.append("time limit reached: the process was killed")
        if res.oom:
            notes.append("memory limit reached")
        if res.disk_full:
            notes.append(
                f"disk quota reached ({self.sandbox.limits.disk_mb} MiB for the workdir, /tmp and /dev/shm "
                "together): delete files to free space"
            )
        if res.killed_leftovers:
            notes.append(f"{res.killed_leftovers} leftover background process(es) killed")
        if res.error:
            notes.append(f"sandbox error: {res.error}")
        notes.append(f"exit code {res.exit_code}")
        parts.append("[" + "; ".join(notes) + "]")
        return "\n".join(parts)

    def _tool_python(self, call: ToolCall) -> Outcome:
        res = self.sandbox.run_python(call.arguments["code"])
        return Outcome(text=self._exec_text(res), cost={"sandbox_s": res.duration})

    def _tool_bash(self, call: ToolCall) -> Outcome:
        res = self.sandbox.run(["/bin/bash", "-c", call.arguments["cmd"]])
        return Outcome(text=self._exec_text(res), cost={"sandbox_s": res.duration})

    def _tool_read_file(self, call: ToolCall) -> Outcome:
        try:
            return Outcome(text=self.sandbox.read_file(call.arguments["path"]))
        except OSError as exc:
            return Outcome(text=f"read_file failed: {exc}")

    def _tool_write_file(self, call: ToolCall) -> Outcome:
        path, content = call.arguments["path"], call.arguments["content"]
        try:
            self.sandbox.write_file(path, content)
        except OSError as exc:
            return Outcome(text=f"write_file failed: {exc}")
        return Outcome(text=f"Wrote {len(content)} characters to {path}.")

    def _tool_run_tests(self, call: ToolCall) -> Outcome:
        task = self.task or {}
        if task["grader"] == "humaneval":
            rep = run_runner(self.sandbox, DOCTEST_RUNNER, {}, timeout=self.test_timeout)
            head = "Docstring examples of solution.py (doctest):\n"
            if not rep.tests and not rep.error:
                return Outcome(text=head + "solution.py runs; its docstrings have no >>> examples to check.")
        else:
            rep = run_runner(self.sandbox, UNITTEST_RUNNER, {"start": "tests"}, timeout=self.test_timeout)
            head = "Visible tests (unittest, tests/):\n"
        return Outcome(text=head + rep.summary(), cost=self._cost(rep))

    def _tool_submit(self, call: ToolCall) -> Outcome:
        rep = self.grade()
        success = rep.total > 0 and rep.passed == rep.total
        text = f"Submitted. Hidden tests: {rep.passed}/{rep.total} passed."
        if rep.error:
            text += f"\n{rep.error}"
        return Outcome(
            text=text,
            reward=rep.score,
            score=rep.score,
            success=success,
            terminated=True,
            cost=self._cost(rep),
            extra={"tests_passed": rep.passed, "tests_total": rep.total},
        )

    @staticmethod
    def _cost(rep: Report) -> dict[str, float]:
        return {"sandbox_s": rep.result.duration} if rep.result is not None else {}

    def grade(self) -> Report:
        """Run the hidden tests of the current task against the workdir as it is now."""
        task = self.task
        if task is None:
            raise ConfigError("call reset() before grade()")
        if task["grader"] == "humaneval":
            payload = {
                "test": "".join(task["hidden_tests"].values()),
                "entry_point": task.get("entry_point", ""),
            }
            return run_runner(self.sandbox, HUMANEVAL_RUNNER, payload, timeout=self.test_timeout)
        return run_runner(
            self.sandbox, UNITTEST_RUNNER, {"sources": task["hidden_tests"]}, timeout=self.test_timeout
        )

    # ---- expert and lifecycle --------------------------------------------------------------------------------------
    def expert_action(self) -> str:
        """Replays the reference solution through the tools: write each changed file, run the tests, submit."""
        if not self._plan:
            raise ConfigError("call reset() before expert_action()")
        return self._plan[min(self._expert_i, len(self._plan) - 1)]

    def _close(self) -> None:
        if self._owns_sandbox:
            self.sandbox.stop()


__all__ = ["CodingEnv", "TOOLS"]
