"""The escape suite: code that tries to get out of a sandbox, and host-side checks that it did not.

    python -m turngym.sandboxes.attacks [bwrap|process|docker ...]     prints the attack x backend table

Each attack runs inside a started sandbox and returns an `AttackResult`: `contained` (the host saw no effect and the
agent got a clear observation), `detail` (what happened), `observation` (what the code's caller saw). The host side
prepares the bait (a listening loopback port, secret files, a folder to write into) and checks afterwards: no file
written, no process left (found by a unique marker in its command line), the sandbox still answers.
Attacks are bounded even where they are not contained (the fork bomb stops itself after a few seconds).
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from turngym.sandboxes.base import Limits, Sandbox

ATTACK_LIMITS = Limits(
    wall_s=3.0, cpu_s=3, memory_mb=256, nprocs=48, output_bytes=32_768, total_memory_mb=384
)


@dataclass
class AttackResult:
    contained: bool
    detail: str
    observation: str = ""


def _obs(res) -> str:
    flags = [n for n in ("timed_out", "oom", "output_truncated") if getattr(res, n)]
    return f"exit={res.exit_code} flags={flags} error={res.error[:80]!r} stdout={res.stdout[:120]!r} stderr={res.stderr[-160:]!r}"


def marker_processes(marker: str) -> list[int]:
    """Host pids whose command line contains `marker`."""
    out = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/cmdline", "rb") as f:
                    if marker.encode() in f.read():
                        out.append(int(name))
            except OSError:
                continue
    return out


# A probe after an attack asks "does the sandbox still answer, and correctly?", not "within the attack's limit": on a
# loaded machine starting a container alone can take longer than ATTACK_LIMITS.wall_s.
ALIVE_TIMEOUT_S = 30.0


def _alive(sb: Sandbox) -> bool:
    r = sb.run_python("print('alive')", timeout=ALIVE_TIMEOUT_S)
    return r.stdout.strip() == "alive"


def network_loopback(sb: Sandbox) -> AttackResult:
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    port = srv.getsockname()[1]
    try:
        code = (
            "import socket\ntry:\n"
            f"    s = socket.create_connection(('127.0.0.1', {port}), timeout=2)\n    print('CONNECTED')\n"
            "except OSError as e:\n    print('refused:', e)\n"
        )
        res = sb.run_python(code)
        srv.settimeout(0.2)
        try:
            conn, _ = srv.accept()
            conn.close()
            got = True
        except OSError:
            got = False
    finally:
        srv.close()
    ok = "CONNECTED" not in res.stdout and not got
    return AttackResult(ok, "host listener was reached" if not ok else "connection refused", _obs(res))


def dns(sb: Sandbox) -> AttackResult:
    code = (
        "import socket\ntry:\n    print('RESOLVED', socket.getaddrinfo('example.com', 80)[0][4])\n"
        "except OSError as e:\n    print('no dns:', e)\n"
    )
    res = sb.run_python(code, timeout=6)
    ok = "RESOLVED" not in res.stdout
    return AttackResult(ok, "resolved a public name" if not ok else "name resolution failed", _obs(res))


def _bait(mode: int) -> tuple[Path, str]:
    d = Path(tempfile.mkdtemp(prefix="turngym-bait-"))
    os.chmod(d, 0o755)
    token = secrets.token_hex(12)
    f = d / "secret.txt"
    f.write_text(token)
    os.chmod(f, mode)
    return f, token


def _read_attack(sb: Sandbox, mode: int) -> AttackResult:
    f, token = _bait(mode)
    try:
        code = f"try:\n    print(open({str(f)!r}).read())\nexcept OSError as e:\n    print('denied:', e)\n"
        res = sb.run_python(code)
    finally:
        shutil.rmtree(f.parent, ignore_errors=True)
    ok = token not in res.stdout + res.stderr
    return AttackResult(ok, "read the host file" if not ok else "file not readable", _obs(res))


def secret_file(sb: Sandbox) -> AttackResult:
    """A file the host marked secret (mode 0600, owned by the host user) outside the workdir."""
    return _read_attack(sb, 0o600)


def host_file(sb: Sandbox) -> AttackResult:
    """An ordinary world-readable host file outside the workdir."""
    return _read_attack(sb, 0o644)


def write_outside(sb: Sandbox) -> AttackResult:
    d = Path(tempfile.mkdtemp(prefix="turngym-bait-"))
    os.chmod(d, 0o777)  # even a world-writable host folder must stay untouched
    target = d / "pwned.txt"
    tmp_target = Path(tempfile.gettempdir()) / f"turngym-pwned-{secrets.token_hex(6)}"
    try:
        code = (
            f"for p in ({str(target)!r}, {str(tmp_target)!r}, '/usr/turngym-pwned', '/etc/turngym-pwned'):\n"
            "    try:\n        open(p, 'w').write('x'); print('WROTE', p)\n"
            "    except OSError as e:\n        print('denied', p, e.strerror)\n"
        )
        res = sb.run_python(code)
        leaked = [
            p
            for p in (target, tmp_target, Path("/usr/turngym-pwned"), Path("/etc/turngym-pwned"))
            if p.exists()
        ]
    finally:
        shutil.rmtree(d, ignore_errors=True)
        for p in (tmp_target, Path("/usr/turngym-pwned"), Path("/etc/turngym-pwned")):
            if p.exists():
                p.unlink()
    ok = not leaked
    return AttackResult(
        ok, f"wrote {[str(p) for p in leaked]}" if leaked else "no host file written", _obs(res)
    )


def fork_bomb(sb: Sandbox) -> AttackResult:
    marker = f"{secrets.randbelow(10**6)}.{secrets.randbelow(1000)}7"
    # bounded: every process stops forking after 4 s; the limit (nprocs) should stop it long before
    code = (
        "import os, time\nt0 = time.time(); n = 0; fails = 0\n"
        "while time.time() - t0 < 4:\n"
        "    try:\n        pid = os.fork()\n        n += 1\n"
        "        if pid == 0:\n"
        f"            os.execv('/bin/sleep', ['/bin/sleep', '{marker}'])\n"
        "    except OSError:\n        fails += 1\n        if fails > 200: break\n"
        "print('forks', n, 'refused', fails)\n"
    )
    res = sb.run_python(code, timeout=2.0)
    time.sleep(0.2)
    left = marker_processes(marker)
    alive = _alive(sb)
    ok = not left and alive and (res.timed_out or "refused" in res.stdout and "refused 0" not in res.stdout)
    return AttackResult(
        ok,
        f"leftover={len(left)} sandbox_alive={alive} (process limit {sb.limits.nprocs})",
        _obs(res),
    )


def memory_bomb(sb: Sandbox) -> AttackResult:
    code = "x = []\nwhile True:\n    x.append(bytearray(32 << 20))\n"
    res = sb.run_python(code)
    ok = (res.oom or res.exit_code != 0) and _alive(sb)
    return AttackResult(ok, f"oom={res.oom} (limit {sb.limits.memory_mb} MiB)", _obs(res))


def fork_memory_bomb(sb: Sandbox) -> AttackResult:
    """8 processes each try to hold 100 MiB at once: within `memory_mb` each, far above `total_memory_mb` together."""
    chunk = 100
    code = (
        "import os, time\nr, w = os.pipe()\n"
        "for i in range(8):\n    if os.fork() == 0:\n        try:\n"
        f"            b = b'\\x01' * ({chunk} << 20)\n            os.write(w, b'%d,' % os.getpid())\n"
        "            time.sleep(6)\n        finally:\n            os._exit(0)\n"
        "os.close(w); os.set_blocking(r, False); got = b''; t0 = time.time()\n"
        "while time.time() - t0 < 5 and got.count(b',') < 8:\n    try:\n        got += os.read(r, 256)\n"
        "    except BlockingIOError:\n        time.sleep(0.05)\n"
        "alive = [p for p in map(int, got.decode().split(',')[:-1]) if os.waitpid(p, os.WNOHANG)[0] == 0]\n"
        "print('HELD', len(alive))\n"
    )
    res = sb.run_python(code, timeout=8)
    try:
        held = int(res.stdout.split("HELD", 1)[1].split()[0])
    except (IndexError, ValueError):
        held = 0
    alive = _alive(sb)
    ok = held * chunk <= sb.limits.total_memory_mb and alive
    return AttackResult(
        ok,
        f"{held} x {chunk} MiB held at once (total limit {sb.limits.total_memory_mb} MiB), oom={res.oom}",
        _obs(res),
    )


def infinite_loop(sb: Sandbox) -> AttackResult:
    t0 = time.monotonic()
    res = sb.run_python("while True:\n    pass\n", timeout=1.5)
    took = time.monotonic() - t0
    ok = res.timed_out and took < 6 and _alive(sb)
    return AttackResult(ok, f"stopped after {took:.1f}s", _obs(res))


def output_flood(sb: Sandbox) -> AttackResult:
    res = sb.run_python("import sys\nwhile True:\n    sys.stdout.write('x' * 4096)\n")
    ok = res.output_truncated and len(res.stdout.encode()) <= sb.limits.output_bytes and _alive(sb)
    return AttackResult(ok, f"kept {len(res.stdout)} bytes of stdout", _obs(res))


def sleep_past_limit(sb: Sandbox) -> AttackResult:
    t0 = time.monotonic()
    res = sb.run_python("import time\ntime.sleep(60)\n", timeout=1.0)
    took = time.monotonic() - t0
    ok = res.timed_out and took < 5
    return AttackResult(ok, f"stopped after {took:.1f}s", _obs(res))


def kill_parent(sb: Sandbox) -> AttackResult:
    """Kill the worker (the code's parent), then its process group, then every process it may signal."""
    res = sb.run_python("import os, signal\nos.kill(os.getppid(), signal.SIGKILL)\n")
    alive1 = _alive(sb)
    res2 = sb.run_python("import os, signal\nos.killpg(0, signal.SIGKILL)\n")
    alive2 = _alive(sb)
    details = f"after kill(ppid): alive={alive1}; after killpg(0): alive={alive2}"
    ok = alive1 and alive2 and bool(res.error or res.exit_code != 0) and res2.exit_code != 0
    if getattr(sb, "uid", None) is not None or sb.secure:  # kill(-1) is only safe where the sandbox is alone
        res3 = sb.run_python("import os, signal\nos.kill(-1, signal.SIGKILL)\n")
        alive3 = _alive(sb)
        details += f"; after kill(-1): alive={alive3}"
        ok = ok and alive3
        res = res3
    return AttackResult(ok, details, _obs(res))


def forge_reply(sb: Sandbox) -> AttackResult:
    """Write a fake reply into the worker's channel to the host through /proc/<worker>/fd/1."""
    code = (
        "import os, json\ntry:\n    f = open(f'/proc/{os.getppid()}/fd/1', 'w')\n"
        "    f.write(json.dumps({'stdout': 'FORGED', 'stderr': '', 'exit_code': 0}) + '\\n'); f.flush()\n"
        "    print('wrote')\nexcept OSError as e:\n    print('denied', e.strerror)\n"
    )
    res = sb.run_python(code)
    # a forged line the host took for a reply would shift every later reply by one
    nxt = sb.run_python("print('next')", timeout=ALIVE_TIMEOUT_S)
    if "FORGED" in res.stdout + nxt.stdout:
        detail = "the host read a forged reply"
    elif nxt.stdout != "next\n":
        detail = f"the next call did not get its own reply ({_obs(nxt)})"
    else:
        detail = "the worker's pipes are not reachable"
    return AttackResult(detail.startswith("the worker's"), detail, _obs(res))


def background_leftovers(sb: Sandbox) -> AttackResult:
    marker = f"{secrets.randbelow(10**6)}.{secrets.randbelow(1000)}3"
    code = (
        "import os, subprocess\n"
        f"subprocess.Popen(['/bin/sleep', '{marker}'], start_new_session=True)\n"
        "if os.fork() == 0:\n    os.setsid()\n    if os.fork() == 0:\n"
        f"        os.execv('/bin/sleep', ['/bin/sleep', '{marker}'])\n    os._exit(0)\n"
        "print('spawned')\n"
    )
    res = sb.run_python(code)
    time.sleep(0.3)
    left = marker_processes(marker)
    for pid in left:  # never leave them on the host, even when not contained
        try:
            os.kill(pid, 9)
        except OSError:
            pass
    ok = not left and "spawned" in res.stdout
    return AttackResult(ok, f"{len(left)} background processes survived the call", _obs(res))


ATTACKS: dict[str, Callable[[Sandbox], AttackResult]] = {
    "network: connect to a host loopback port": network_loopback,
    "network: DNS lookup": dns,
    "read a host file marked secret (0600)": secret_file,
    "read a world-readable host file": host_file,
    "write outside the workdir": write_outside,
    "fork bomb": fork_bomb,
    "memory bomb": memory_bomb,
    "fork + memory bomb (8 x 100 MiB)": fork_memory_bomb,
    "infinite loop": infinite_loop,
    "output flood": output_flood,
    "sleep past the limit": sleep_past_limit,
    "kill the parent / process group / all": kill_parent,
    "leave background processes": background_leftovers,
    "forge the worker's reply via /proc": forge_reply,
}


def run_suite(backend: str, limits: Limits = ATTACK_LIMITS) -> dict[str, AttackResult]:
    from turngym.sandboxes import make_sandbox

    out = {}
    with make_sandbox(backend, limits=limits) as sb:
        for name, attack in ATTACKS.items():
            out[name] = attack(sb)
    return out


def main(argv: list[str]) -> None:
    from turngym.sandboxes import AUTO_ORDER, available

    backends = argv or [b for b in AUTO_ORDER if available(b)[0]]
    table = {b: run_suite(b) for b in backends}
    print("| attack | " + " | ".join(backends) + " |")
    print("|---|" + "---|" * len(backends))
    for name in ATTACKS:
        cells = ["contained" if table[b][name].contained else "**not contained**" for b in backends]
        print(f"| {name} | " + " | ".join(cells) + " |")
    for b in backends:
        print(f"\n{b}:")
        for name, r in table[b].items():
            print(f"  {name}: {r.detail}")


if __name__ == "__main__":
    main(sys.argv[1:])
