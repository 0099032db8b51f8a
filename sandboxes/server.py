"""The worker that runs *inside* a sandbox (stdlib only; started as `python3 -I -S server.py WORKDIR`).

It keeps one warm interpreter per sandbox so a tool call costs a `fork()` (about a millisecond), not an interpreter
start (15-75 ms). Protocol: one JSON request per line on stdin, one JSON reply per line on stdout.

Requests (`op`):
  exec   {"kind": "python", "code": str} or {"kind": "argv", "argv": [str, ...]}, with "timeout" (wall s),
         "cpu" (s), "memory" (bytes of address space), "output" (bytes kept per stream), "stdin" (str), "env" (dict),
         "disk" (bytes all files may take), "disk_paths" (where they are), "disk_enforce" (no size-limited mount
         holds them: measure while the call runs and stop it past the quota), "oom_cgroup" (the worker's own
         memory cgroup is the sandbox's, as in a container: report the kernel's OOM kills in it during the call,
         and the count after it as "oom_kills")
         -> {"stdout", "stderr", "exit_code", "timed_out", "oom", "output_truncated", "duration", "killed_leftovers",
             "disk_full"}
  read   {"path"} -> {"content"} (UTF-8, errors replaced) or {"error"}
  write  {"path", "content", "append" (optional)} -> {} or {"error"}
  clear  {} -> {} (empties the workdir)
  ping   {} -> {"pid"}

`server.py --once-b64 REQUEST WORKDIR` answers one request passed zlib+base64-encoded (the docker backend).

Each exec runs in a forked child in its own session (process group) with its rlimits. When it ends (or is killed at
its timeout or output limit), the whole group is killed; with `--sweep` every other process this worker may signal
is killed too (used where the worker runs under a dedicated uid or inside its own pid namespace, so that processes
which left the group with `setsid` do not survive the call). Without `--sweep` the worker is a child subreaper:
orphans of its calls (double forks, `setsid`) become its children and are killed after each call.
"""

from __future__ import annotations

import json
import os
import resource
import select
import shutil
import signal
import sys
import time

WORKDIR = "."
SWEEP = False


def _set_limits(req: dict) -> None:
    cpu = req.get("cpu")
    if cpu:
        resource.setrlimit(resource.RLIMIT_CPU, (int(cpu), int(cpu) + 1))
    mem = req.get("memory")
    if mem:
        resource.setrlimit(resource.RLIMIT_AS, (int(mem), int(mem)))
    fsize = req.get("file_size")
    if fsize:
        resource.setrlimit(resource.RLIMIT_FSIZE, (int(fsize), int(fsize)))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def _set_dumpable(flag: int) -> None:
    """prctl(PR_SET_DUMPABLE): 0 makes /proc/<worker>/fd unreachable for the code it runs (same uid otherwise)."""
    try:
        import ctypes

        ctypes.CDLL(None).prctl(4, flag, 0, 0, 0)
    except Exception:
        pass


def _set_subreaper() -> None:
    """prctl(PR_SET_CHILD_SUBREAPER): orphans of our calls are reparented to us, not to init."""
    try:
        import ctypes

        ctypes.CDLL(None).prctl(36, 1, 0, 0, 0)
    except Exception:
        pass


def _child(req: dict, out_w: int, err_w: int, in_r: int) -> None:
    os.setsid()
    _set_dumpable(1)  # the code's own /proc entries stay usable; the worker's are not
    os.dup2(in_r, 0)
    os.dup2(out_w, 1)
    os.dup2(err_w, 2)
    for fd in (in_r, out_w, err_w):
        if fd > 2:
            os.close(fd)
    os.chdir(WORKDIR)
    _set_limits(req)
    env = req.get("env") or {}
    if req["kind"] == "argv":
        os.execvpe(req["argv"][0], req["argv"], env)
    # python: a fresh __main__ namespace in this already-warm interpreter
    sys.stdin = open(0, closefd=False)  # noqa: SIM115
    sys.stdout = open(1, "w", closefd=False, buffering=1)  # noqa: SIM115
    sys.stderr = open(2, "w", closefd=False, buffering=1)  # noqa: SIM115
    sys.argv = ["main.py"]
    sys.dont_write_bytecode = True  # a stale .pyc with the same size and mtime would hide an edit
    if WORKDIR not in sys.path:
        sys.path.insert(0, WORKDIR)
    os.environ.clear()
    os.environ.update(env)
    code = 0
    try:
        exec(compile(req["code"], "main.py", "exec"), {"__name__": "__main__", "__builtins__": __builtins__})
    except SystemExit as exc:
        c = exc.code
        code = c if isinstance(c, int) else (0 if c is None else 1)
        if not isinstance(c, (int, type(None))):
            sys.stderr.write(f"{c}\n")
    except MemoryError:
        sys.stderr.write("MemoryError: the sandbox's memory limit was reached\n")
        code = 137
    except BaseException:  # the agent's error, reported like the interpreter would (without our frame)
        import traceback

        etype, exc, tb = sys.exc_info()
        traceback.print_exception(etype, exc, tb.tb_next if tb is not None else None)
        code = 1
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except Exception:
        pass
    os._exit(code)


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _others() -> list[int]:
    me, uid, out = os.getpid(), os.getuid(), []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) in (me, 1, os.getppid()):
            continue
        try:
            if os.stat(f"/proc/{name}").st_uid != uid:
                continue
            with open(f"/proc/{name}/stat") as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
            if state != "Z":
                out.append(int(name))
        except (OSError, IndexError):
            continue
    return out


def _sweep() -> int:
    """Kill every process of ours but this worker (and its parent, e.g. bwrap's init). Returns how many were found."""
    found = 0
    for _ in range(50):
        pids = _others()
        if not pids:
            break
        found = max(found, len(pids))
        try:
            os.kill(-1, signal.SIGKILL)  # everything we may signal except ourselves (and init)
        except (ProcessLookupError, PermissionError):
            pass
        _reap()
        time.sleep(0.005)
    return found


def _children() -> list[int]:
    me, out = os.getpid(), []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            if int(fields[1]) == me and fields[0] != "Z":
                out.append(int(name))
        except (OSError, IndexError, ValueError):
            continue
    return out


def _kill_descendants() -> int:
    """Kill what is left of this worker's calls. As a subreaper, every orphan of theirs is reparented to us."""
    found = 0
    for _ in range(50):
        pids = _children()
        if not pids:
            break
        found += len(pids)
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        time.sleep(0.005)
        _reap()
    return found


def _disk_used(paths: list) -> int:
    """Bytes the files under `paths` take (hard links counted once; folders it cannot read are not counted)."""
    seen, total, stack = set(), 0, [p for p in paths if p]
    while stack:
        try:
            it = os.scandir(stack.pop())
        except OSError:
            continue
        with it:
            for e in it:
                try:
                    st = e.stat(follow_symlinks=False)
                except OSError:
                    continue
                if (st.st_dev, st.st_ino) in seen:
                    continue
                seen.add((st.st_dev, st.st_ino))
                total += st.st_blocks * 512
                if e.is_dir(follow_symlinks=False):
                    stack.append(e.path)
    return total


def _disk_full(req: dict, errs: str) -> bool:
    """Did this call hit the disk quota (ENOSPC, or the files now fill it)?"""
    quota = int(req.get("disk") or 0)
    if not quota:
        return False
    if "No space left on device" in errs:
        return True
    paths = req.get("disk_paths") or []
    if req.get("disk_enforce"):
        return _disk_used(paths) >= quota
    try:
        st = os.statvfs(paths[0])
        return st.f_bavail * st.f_frsize < (1 << 20)
    except (OSError, IndexError):
        return False


def _reap() -> None:
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


OOM_COUNTERS = ("/sys/fs/cgroup/memory.events", "/sys/fs/cgroup/memory/memory.oom_control")  # cgroup v2, v1


def _oom_kills() -> int:
    """The kernel's OOM-kill count of the memory cgroup mounted at /sys/fs/cgroup (a container's own), -1 if none."""
    for path in OOM_COUNTERS:
        try:
            with open(path) as f:
                for line in f:
                    key, _, val = line.partition(" ")
                    if key == "oom_kill":
                        return int(val)
        except (OSError, ValueError):
            continue
    return -1


def _exec(req: dict) -> dict:
    oom_before = _oom_kills() if req.get("oom_cgroup") else -1
    timeout = float(req.get("timeout") or 10)
    limit = int(req.get("output") or 65536)
    in_r = os.memfd_create("stdin")  # any size, no writer to keep alive
    os.write(in_r, (req.get("stdin") or "").encode())
    os.lseek(in_r, 0, os.SEEK_SET)
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    t0 = time.monotonic()
    try:
        pid = os.fork()
    except OSError as exc:
        for fd in (in_r, out_r, out_w, err_r, err_w):
            os.close(fd)
        return {"error": f"could not start the process: {exc}"}
    if pid == 0:
        try:
            os.close(out_r)
            os.close(err_r)
            _child(req, out_w, err_w, in_r)
        except BaseException as exc:  # exec failed (no such command, ...)
            try:
                os.write(2, f"{type(exc).__name__}: {exc}\n".encode())
            finally:
                os._exit(127)
    os.close(in_r)
    os.close(out_w)
    os.close(err_w)
    bufs = {out_r: bytearray(), err_r: bytearray()}
    open_fds = [out_r, err_r]
    timed_out = truncated = over_disk = False
    status = None
    grace_end = 0.0
    quota = int(req.get("disk") or 0) if req.get("disk_enforce") else 0
    next_disk = t0 + 0.05
    while open_fds:
        now = time.monotonic()
        if quota and now >= next_disk:  # no size-limited mount: measure, and stop the call past the quota
            next_disk = now + 0.05
            if _disk_used(req.get("disk_paths") or []) > quota:
                over_disk = True
                break
        if status is None:
            done, st = os.waitpid(pid, os.WNOHANG)
            if done:  # exited; children that kept its stdout open get a moment, then the group is killed
                status, grace_end = st, now + 0.1
        elif now >= grace_end:
            break
        left = timeout - (now - t0)
        if left <= 0:
            timed_out = status is None
            break
        wait = min(left, 0.05) if status is None else max(0.0, grace_end - now)
        ready, _, _ = select.select(open_fds, [], [], wait)
        for fd in ready:
            chunk = os.read(fd, 65536)
            if not chunk:
                open_fds.remove(fd)
                continue
            buf = bufs[fd]
            room = limit - len(buf)
            if len(chunk) > room:
                truncated = True
            buf += chunk[: max(room, 0)]
        if truncated:
            break  # an output flood: stop it now
    if status is None and not (timed_out or truncated or over_disk):  # output closed: wait until the deadline
        while status is None:
            done, st = os.waitpid(pid, os.WNOHANG)
            now = time.monotonic()
            if done:
                status = st
            elif now - t0 >= timeout:
                timed_out = True
                break
            elif quota and now >= next_disk:
                next_disk = now + 0.05
                if _disk_used(req.get("disk_paths") or []) > quota:
                    over_disk = True
                    break
            else:
                time.sleep(0.001)
    _kill_group(pid)
    if status is None:
        try:
            _, status = os.waitpid(pid, 0)
        except ChildProcessError:
            status = 0
    duration = time.monotonic() - t0
    for fd in (out_r, err_r):
        os.close(fd)
    leftovers = _sweep() if SWEEP else _kill_descendants()
    _reap()
    sig = os.WTERMSIG(status) if os.WIFSIGNALED(status) else 0
    code = os.WEXITSTATUS(status) if os.WIFEXITED(status) else -sig
    err = bufs[err_r].decode("utf-8", "replace")
    if over_disk:
        err += f"\nthe sandbox's files passed the disk quota ({int(req['disk']) >> 20} MiB): the call was stopped\n"
    cpu_out = sig == signal.SIGXCPU
    return {
        "stdout": bufs[out_r].decode("utf-8", "replace"),
        "stderr": err,
        "exit_code": code,
        "timed_out": timed_out or cpu_out,
        "oom": "MemoryError" in err[-2000:]
        or "Cannot allocate memory" in err[-2000:]
        or (oom_before >= 0 and _oom_kills() > oom_before),
        "output_truncated": truncated,
        "duration": duration,
        "killed_leftovers": leftovers,
        "disk_full": over_disk
        or _disk_full(req, err[-4000:] + bufs[out_r][-4000:].decode("utf-8", "replace")),
        **({"oom_kills": _oom_kills()} if req.get("oom_cgroup") else {}),
    }


def _inside(path: str) -> str:
    full = os.path.realpath(os.path.join(WORKDIR, path))
    root = os.path.realpath(WORKDIR)
    if full != root and not full.startswith(root + os.sep):
        raise PermissionError(f"path {path!r} is outside the workdir")
    return full


def _read(req: dict) -> dict:
    try:
        with open(_inside(req["path"]), "rb") as f:
            data = f.read(int(req.get("max_bytes") or 1_000_000) + 1)
        return {
            "content": data.decode("utf-8", "replace"),
            "truncated": len(data) > int(req.get("max_bytes") or 1_000_000),
        }
    except OSError as exc:
        return {"error": f"{type(exc).__name__}: {exc.strerror or exc}"}


def _write(req: dict) -> dict:
    try:
        full = _inside(req["path"])
        os.makedirs(os.path.dirname(full), exist_ok=True)
        with open(full, "a" if req.get("append") else "w", encoding="utf-8") as f:
            f.write(req["content"])
        return {}
    except OSError as exc:
        return {"error": f"{type(exc).__name__}: {exc.strerror or exc}"}


def _clear(req: dict) -> dict:
    for name in os.listdir(WORKDIR):
        p = os.path.join(WORKDIR, name)
        if os.path.isdir(p) and not os.path.islink(p):
            shutil.rmtree(p, ignore_errors=True)
        else:
            try:
                os.unlink(p)
            except OSError:
                pass
    return {}


def handle(req: dict) -> dict:
    op = req.get("op")
    if op == "exec":
        return _exec(req)
    if op == "read":
        return _read(req)
    if op == "write":
        return _write(req)
    if op == "clear":
        return _clear(req)
    if op == "ping":
        return {"pid": os.getpid()}
    return {"error": f"unknown op {op!r}"}


PRELOAD = ("traceback", "unittest", "doctest", "contextlib", "io", "types", "re", "collections", "functools")


def _preload() -> None:
    """Import what test runners and typical snippets use once, so every forked call inherits it warm."""
    import importlib

    for name in PRELOAD:
        try:
            importlib.import_module(name)
        except Exception:
            pass


def main() -> None:
    global WORKDIR, SWEEP
    args = sys.argv[1:]
    SWEEP = "--sweep" in args
    args = [a for a in args if a != "--sweep"]
    if args and args[0] == "--once-b64":  # docker: one zlib+base64 request in argv, one reply on stdout
        import base64
        import zlib

        WORKDIR = args[2] if len(args) > 2 else "."
        _set_dumpable(0)
        req = json.loads(zlib.decompress(base64.b64decode(args[1])))
        sys.stdout.write(json.dumps(handle(req)) + "\n")
        return
    WORKDIR = args[0] if args else "."
    _set_dumpable(0)
    if not SWEEP:
        _set_subreaper()
    _preload()
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    inp = sys.stdin.buffer
    out = sys.stdout
    out.write(json.dumps({"ready": True, "pid": os.getpid()}) + "\n")
    out.flush()
    for line in inp:
        if not line.strip():
            continue
        req: dict = {}
        try:
            req = json.loads(line)
            reply = handle(req)
        except Exception as exc:  # a bad request must not kill the worker
            reply = {"error": f"{type(exc).__name__}: {exc}"}
        reply["id"] = req.get("id")
        out.write(json.dumps(reply) + "\n")
        out.flush()


if __name__ == "__main__":
    main()
