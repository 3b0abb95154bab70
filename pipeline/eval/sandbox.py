"""Run untrusted, model-written Python programs, one process per program, behind layered protections.

Each program starts through a *bootstrap* (this file run as a script with `python -I -S`) that sets the
protections up, forks the program and reports its pid, exit status and CPU time to the parent over a
private pipe. The parent feeds stdin, reads stdout/stderr up to a byte cap and enforces the wall clock.

Always: a fresh `intuitor-sandbox-*` work dir holding `main.py`, removed after every run (also on
timeout or error); a minimal environment (PATH, locale, HOME/TMPDIR = work dir, one BLAS thread,
PYTHONHASHSEED=0) and `python -s -P -B -X utf8`; rlimits CPU (soft `cpu_s`, hard +1 s), AS, FSIZE,
NPROC and CORE=0; output caps
(past `max_output_bytes` on a stream the run is killed and marked truncated); on timeout a SIGKILL to
the program through a pidfd and to the bootstrap's process group.

Where available (each run reports what it got; `isolation_report()` lists it for this machine, and a
missing protection is logged once as a warning naming it):
- `unprivileged_uid`: as root, the program runs as nobody (65534), so RLIMIT_NPROC binds (root ignores
  it) and it cannot signal root processes or read their /proc/<pid>/environ. An interpreter under a
  root-only dir (pyenv in /root) is exposed read-only through the mount namespace; without one that
  cannot happen and the program stays root. A non-root parent's program keeps the parent's uid.
- `network_namespace`: no interface is up, so every connect fails, loopback included.
- `pid_namespace`: the program is the namespace's init; its death kills all it started, even children
  that left the process group with setsid(). Without it such children survive the timeout kill.
- `user_namespace`: RLIMIT_NPROC then counts this run's processes only, not all of the uid's. As root,
  namespaces are root-owned (the bootstrap stays root) and a user namespace is added after the drop;
  as non-root, a user namespace makes the others possible without privilege.
- `ipc_namespace`: no access to the host's SysV IPC / POSIX message queues.
- `no_capabilities`: no-new-privs and an empty capability bounding set before exec, so a program left
  as uid 0 (no uid drop possible) holds no capabilities and cannot undo the read-only remount.
- `private_proc`, `private_tmp`, `readonly_fs` (mount namespace): /proc shows only the sandbox; the work
  dir is bound over /tmp, /var/tmp and /dev/shm; everything else is remounted read-only.
`ExecResult.network_isolated` carries the network flag per run.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import json
import logging
import math
import os
import resource
import select
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

logger = logging.getLogger(__name__)

TMP_PREFIX = "intuitor-sandbox-"
_NOBODY = 65534
_SETUP_TIMEOUT_S = 30.0  # for the bootstrap's setup, on top of wall_s: generous for busy hosts
_DRAIN_S = 0.5  # after the bootstrap exits, for leftover writers (possible only without a PID ns)

# Linux constants the Python 3.11 stdlib lacks.
_NEWNS, _NEWIPC, _NEWUSER, _NEWPID, _NEWNET = 0x20000, 0x8000000, 0x10000000, 0x20000000, 0x40000000
_MS_NOSUID, _MS_NODEV, _MS_NOEXEC, _MS_BIND, _MS_REC, _MS_PRIVATE = 2, 4, 8, 4096, 16384, 1 << 18
_PR_SET_PDEATHSIG, _PR_SET_DUMPABLE, _PR_CAPBSET_READ, _PR_CAPBSET_DROP = 1, 4, 23, 24
_PR_SET_NO_NEW_PRIVS = 38
_SYS_MOUNT_SETATTR, _AT_FDCWD, _AT_RECURSIVE, _MOUNT_ATTR_RDONLY = 442, -100, 0x8000, 0x1

# Every protection `isolation_report` lists, with what its absence means (for the one-time warning).
_PROTECTIONS = {
    "unprivileged_uid": "the program runs as root: RLIMIT_NPROC does not bind, root processes are exposed",
    "no_capabilities": "the program keeps root capabilities: it could undo the read-only remount",
    "user_namespace": "no user namespace: RLIMIT_NPROC counts all processes of the uid, not per run",
    "network_namespace": "no network namespace: the program can open network connections",
    "pid_namespace": "no PID namespace: children that call setsid() survive the timeout kill",
    "private_proc": "no private /proc: the program can list the host's processes",
    "ipc_namespace": "no IPC namespace: the program can use the host's SysV IPC objects",
    "private_tmp": "no private /tmp: the program can write to the host's world-writable temp dirs",
    "readonly_fs": "no read-only root: the program can write wherever its uid may",
}


class SandboxError(RuntimeError):
    """The sandbox itself failed (not the program): raised, never graded as a wrong answer."""


@dataclass(frozen=True)
class SandboxLimits:
    wall_s: float = 10.0  # wall-clock timeout; kills the process group
    cpu_s: float | None = None  # RLIMIT_CPU; None = ceil(wall_s) + 1
    memory_mb: int = 2048  # RLIMIT_AS
    file_size_mb: int = 16  # RLIMIT_FSIZE
    max_processes: int = 64  # RLIMIT_NPROC (effective only for an unprivileged uid)
    max_output_bytes: int = 1_000_000  # per stream; beyond it the run is killed and marked truncated

    def __post_init__(self) -> None:
        if self.wall_s <= 0 or (self.cpu_s is not None and self.cpu_s <= 0):
            raise ValueError(f"time limits must be positive: {self}")
        if min(self.memory_mb, self.file_size_mb, self.max_processes, self.max_output_bytes) < 1:
            raise ValueError(f"size limits must be positive: {self}")

    @property
    def cpu_limit_s(self) -> int:
        return math.ceil(self.cpu_s) if self.cpu_s is not None else math.ceil(self.wall_s) + 1


@dataclass(frozen=True)
class ExecResult:
    status: str  # "ok" (exit 0) | "error" (nonzero exit / exception) | "timeout" | "output_limit" | "killed"
    returncode: int | None  # None when the sandbox killed the run (timeout / output limit)
    stdout: str
    stderr: str
    wall_s: float  # from the program's start (after sandbox setup) to its end
    truncated: bool
    network_isolated: bool

    @property
    def ok(self) -> bool:
        return self.status == "ok"


def run_python(source: str, stdin: str = "", limits: SandboxLimits = SandboxLimits()) -> ExecResult:
    """Run `source` as `main.py` in a fresh sandbox, feeding `stdin`; see the module docstring."""
    return _run(source, stdin, limits)[0]


def run_python_many(
    jobs: Sequence[tuple[str, str]],
    limits: SandboxLimits = SandboxLimits(),
    workers: int | None = None,
    show_progress: bool = False,
    desc: str = "sandbox",
) -> list[ExecResult]:
    """Run (source, stdin) pairs in parallel, one supervising thread per subprocess; input order kept."""
    from concurrent.futures import ThreadPoolExecutor

    from tqdm.auto import tqdm

    with ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 1) as pool:
        results = pool.map(lambda job: run_python(job[0], job[1], limits), jobs)
        return list(tqdm(results, total=len(jobs), desc=desc, disable=not show_progress))


@functools.cache
def isolation_report() -> dict[str, bool]:
    """Which protections a run actually gets on this machine (measured once, with a trivial program)."""
    return _run("pass", "", SandboxLimits(wall_s=30.0))[1]


# ---------------------------------------------------------------- parent side

_warned: set[str] = set()
_warn_lock = threading.Lock()


def _run(source: str, stdin: str, limits: SandboxLimits, mode: str = "auto") -> tuple[ExecResult, dict]:
    """`mode` (for tests): "auto" = best available, "userns" = the non-root path, "none" = no namespaces."""
    workdir = tempfile.mkdtemp(prefix=TMP_PREFIX)
    info_r, info_w = os.pipe()  # bootstrap and child -> parent: JSON lines (pid, flags, exit status)
    go_r, go_w = os.pipe()  # parent -> child: start, once the parent holds a pidfd on the child
    try:
        with open(os.path.join(workdir, "main.py"), "w", encoding="utf-8") as f:
            f.write(source)
        config = {
            "workdir": workdir,
            "uid": _NOBODY if os.geteuid() == 0 else None,
            "fds": [info_w, go_r],
            "mode": mode,
            "limits": [limits.cpu_limit_s, limits.memory_mb, limits.file_size_mb, limits.max_processes],
            "python": sys.executable,
            # What the interpreter reads (the bootstrap's own sys.prefix lacks the venv: it runs -S).
            "expose": sorted({os.path.realpath(p) for p in (sys.base_prefix, sys.prefix)}),
            "env": {
                "PATH": os.pathsep.join([os.path.dirname(sys.executable), "/usr/local/bin:/usr/bin:/bin"]),
                "LANG": "C.UTF-8",
                "LC_ALL": "C.UTF-8",
                # A fixed string-hash seed: set/dict iteration order of str is reproducible across runs
                # (CRUXEval outputs and printed sets depend on it).
                "PYTHONHASHSEED": "0",
                # Many sandboxes run in parallel: BLAS pools would oversubscribe and hit RLIMIT_NPROC.
                **dict.fromkeys(["OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"], "1"),
            },
        }
        try:
            proc = subprocess.Popen(
                [sys.executable, "-I", "-S", "-B", os.path.abspath(__file__), json.dumps(config)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                cwd=workdir,
                env=config["env"],
                start_new_session=True,  # a process group of its own: killpg reaches all of it, not us
                pass_fds=(info_w, go_r),
            )
        finally:  # our copies of the child's ends: closed, so the info pipe ends when the bootstrap does
            os.close(info_w)
            os.close(go_r)
        result, flags = _supervise(proc, info_r, go_w, stdin.encode("utf-8"), limits)
    finally:
        os.close(info_r)
        os.close(go_w)
        shutil.rmtree(workdir, onerror=_force_remove)
    with _warn_lock:
        missing = [name for name, on in flags.items() if not on and name not in _warned]
        _warned.update(missing)
    if missing:
        logger.warning("sandbox runs with reduced isolation: %s", "; ".join(_PROTECTIONS[m] for m in missing))
    return result, flags


def _supervise(
    proc: subprocess.Popen, info_r: int, go_w: int, stdin: bytes, limits: SandboxLimits
) -> tuple[ExecResult, dict[str, bool]]:
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    streams = {proc.stdout.fileno(): bytearray(), proc.stderr.fileno(): bytearray()}
    stdin_fd = proc.stdin.fileno()  # kept: proc.stdin is closed once everything is written
    info: dict[str, Any] = {}
    info_buf, pending = b"", memoryview(stdin)
    pidfd: int | None = None
    started: float | None = None
    timed_out = truncated = bootstrap_done = False
    deadline = time.monotonic() + _SETUP_TIMEOUT_S + limits.wall_s
    sel = selectors.DefaultSelector()
    try:
        for fd in (*streams, info_r):
            os.set_blocking(fd, False)
            sel.register(fd, selectors.EVENT_READ)
        while sel.get_map() and not truncated:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                timed_out = not bootstrap_done
                break
            for key, _ in sel.select(remaining):
                if key.fd == stdin_fd:
                    try:
                        pending = pending[os.write(stdin_fd, pending[:65536]) :]
                    except BrokenPipeError:  # the program stopped reading: fine
                        pending = pending[:0]
                    if not pending:
                        sel.unregister(stdin_fd)
                        proc.stdin.close()
                    continue
                data = os.read(key.fd, 65536)
                if not data:
                    sel.unregister(key.fd)
                    if key.fd == info_r:  # the bootstrap exited: only stragglers may still write
                        bootstrap_done = True
                        deadline = min(deadline, time.monotonic() + _DRAIN_S)
                elif key.fd == info_r:
                    *lines, info_buf = (info_buf + data).split(b"\n")
                    info.update(kv for line in lines for kv in json.loads(line).items())
                    if started is None and "pid" in info and info.get("ready"):
                        with contextlib.suppress(ProcessLookupError):
                            pidfd = os.pidfd_open(info["pid"])
                        os.write(go_w, b"g")
                        started, deadline = time.monotonic(), time.monotonic() + limits.wall_s
                        if pending:
                            os.set_blocking(stdin_fd, False)
                            sel.register(stdin_fd, selectors.EVENT_WRITE)
                        else:
                            proc.stdin.close()
                else:
                    streams[key.fd] += data
                    if len(streams[key.fd]) > limits.max_output_bytes:
                        del streams[key.fd][limits.max_output_bytes :]
                        truncated = True
                        break
        elapsed = time.monotonic() - started if started is not None else 0.0
    finally:
        sel.close()
        _kill_and_reap(proc, pidfd)
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            stream.close()
    out, err = (bytes(buf).decode("utf-8", "replace") for buf in streams.values())
    if "exec_error" in info or started is None:
        why = info.get("exec_error") or ("timed out" if timed_out else f"exit {proc.returncode}")
        raise SandboxError(f"sandbox setup failed ({why}); stderr: {err[-2000:]}")
    status, returncode = _classify(info, proc.returncode, timed_out, truncated, limits)
    flags = {name: bool(info.get(name)) for name in _PROTECTIONS}
    return ExecResult(status, returncode, out, err, elapsed, truncated, flags["network_namespace"]), flags


def _classify(
    info: dict, bootstrap_rc: int | None, timed_out: bool, truncated: bool, limits: SandboxLimits
) -> tuple[str, int | None]:
    if truncated or timed_out:
        return ("output_limit" if truncated else "timeout"), None
    if "wait_status" not in info:  # the program killed its own bootstrap (e.g. kill(0, SIGKILL))
        return "killed", bootstrap_rc
    rc = os.waitstatus_to_exitcode(info["wait_status"])
    if rc >= 0:
        return ("ok" if rc == 0 else "error"), rc
    # Past the soft CPU limit comes SIGXCPU (ignored by a namespace init), at the hard limit SIGKILL:
    # both mean a CPU timeout, not a crash.
    if -rc == signal.SIGXCPU or info.get("cpu_s", 0.0) >= limits.cpu_limit_s - 0.05:
        return "timeout", rc
    return "killed", rc


def _kill_and_reap(proc: subprocess.Popen, pidfd: int | None) -> None:
    # The pidfd reaches the program even if it left the process group, and as a PID-namespace init
    # its death ends the namespace. killpg covers the bootstrap and, without a PID ns, the children.
    try:
        if pidfd is not None:
            with contextlib.suppress(ProcessLookupError):
                signal.pidfd_send_signal(pidfd, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)  # not reaped yet, so the group id cannot be reused
        proc.wait(timeout=30)
        if pidfd is not None:  # readable once the program (and its namespace) is gone
            select.select([pidfd], [], [], 30)
    finally:
        if pidfd is not None:
            os.close(pidfd)


def _force_remove(func: Any, path: str, _exc: Any) -> None:
    # The program may have chmod-ed its own dirs to 000; a non-root parent must undo that to delete.
    with contextlib.suppress(OSError):
        os.chmod(os.path.dirname(path), 0o700)
        func(path)


# ---------------------------------------------------------------- bootstrap side (run as a script)


def _bootstrap(config: dict) -> None:
    """Make the namespaces, fork the program, report its pid and, once it exits, its status."""
    libc = ctypes.CDLL(None, use_errno=True)
    (info_w, go_r), mode, root = config["fds"], config["mode"], os.geteuid() == 0
    base = _NEWNS | _NEWNET | _NEWPID | _NEWIPC
    got = 0
    if root and mode == "auto":  # root-owned namespaces: the bootstrap stays root, unkillable by the program
        got = _unshare(libc, [base, _NEWNET])
    if not got and mode != "none":  # a user namespace makes the same possible without privilege
        got = _unshare(libc, [_NEWUSER | base, _NEWUSER | _NEWNET], user=True)
    flags = dict.fromkeys(_PROTECTIONS, False)
    flags["unprivileged_uid"] = not root
    for name, bit in (("user", _NEWUSER), ("network", _NEWNET), ("pid", _NEWPID), ("ipc", _NEWIPC)):
        flags[f"{name}_namespace"] = bool(got & bit)
    pid = os.fork()
    if pid == 0:
        try:
            _exec_program(libc, config, flags, got)
        except BaseException:
            import traceback

            traceback.print_exc()  # the parent raises SandboxError with this stderr
        os._exit(127)
    os.close(go_r)
    os.write(info_w, json.dumps({"pid": pid, **flags}).encode() + b"\n")
    _, status, usage = os.wait4(pid, 0)
    final = {"wait_status": status, "cpu_s": usage.ru_utime + usage.ru_stime}
    os.write(info_w, json.dumps(final).encode() + b"\n")
    os._exit(0)


def _exec_program(libc: Any, config: dict, flags: dict, got: int) -> None:
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)  # backstop if the bootstrap dies
    workdir, env, python, uid, expose = (config[k] for k in ("workdir", "env", "python", "uid", "expose"))
    if got & _NEWNS:
        flags.update(_private_mounts(libc, workdir, expose if uid is not None else []))
    home = "/tmp" if flags["private_tmp"] else workdir
    reachable = lambda: (_drop(uid), os.stat(os.path.realpath(python)), [os.listdir(p) for p in expose])  # noqa: E731
    if uid is not None and not got & _NEWUSER and _probe(reachable):
        os.chown(home, uid, uid)  # the work dir becomes the program's own
        _drop(uid)
        flags["unprivileged_uid"] = True
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)  # a uid change clears it
        libc.prctl(_PR_SET_DUMPABLE, 1, 0, 0, 0)  # else /proc/self/uid_map belongs to root
        # A user namespace of our own, only so that RLIMIT_NPROC counts this run's processes alone.
        flags["user_namespace"] = config["mode"] == "auto" and bool(_unshare(libc, [_NEWUSER], user=True))
    cpu, memory_mb, file_mb, nproc = config["limits"]
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
    resource.setrlimit(resource.RLIMIT_AS, (memory_mb << 20, memory_mb << 20))
    resource.setrlimit(resource.RLIMIT_FSIZE, (file_mb << 20, file_mb << 20))
    resource.setrlimit(resource.RLIMIT_NPROC, (nproc, nproc))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    os.chdir(home)
    env.update(HOME=home, TMPDIR=home)
    libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)  # setuid binaries (su, mount) grant nothing
    for cap in range(64):  # an empty bounding set: a program left as uid 0 execs without capabilities
        libc.prctl(_PR_CAPBSET_DROP, cap, 0, 0, 0)
    flags["no_capabilities"] = os.getuid() != 0 or all(
        libc.prctl(_PR_CAPBSET_READ, c, 0, 0, 0) != 1 for c in range(64)
    )
    info_w, go_r = config["fds"]
    os.write(info_w, json.dumps({"ready": True, **flags}).encode() + b"\n")
    if os.read(go_r, 1) != b"g":  # the parent went away: never run unsupervised
        os._exit(126)
    os.close(go_r)
    os.set_inheritable(info_w, False)  # closed by a successful exec, still open if exec fails
    try:
        # Not -I: its -E would ignore PYTHONHASHSEED. The environment is ours alone, so -s -P (no user
        # site, no script dir on sys.path) keep the isolation that matters.
        os.execve(python, [python, "-s", "-P", "-B", "-X", "utf8", "main.py"], env)
    except OSError as exc:
        os.write(info_w, json.dumps({"exec_error": repr(exc)}).encode() + b"\n")
        raise


def _private_mounts(libc: Any, workdir: str, expose: list[str]) -> dict[str, bool]:
    """In a new mount namespace: private /proc, the work dir over the temp dirs, the rest read-only."""
    got = {"private_proc": False, "private_tmp": False, "readonly_fs": False}
    try:  # without private propagation our mounts would leak to the host: then do nothing at all
        _mount(libc, None, "/", None, _MS_REC | _MS_PRIVATE)
    except OSError:
        return got
    with contextlib.suppress(OSError):
        _mount(libc, "proc", "/proc", "proc", _MS_NOSUID | _MS_NODEV | _MS_NOEXEC)
        got["private_proc"] = True
    # Root-only dirs on the way to the interpreter (pyenv under /root): cover the first one with a
    # tmpfs that leads only to the interpreter's tree, bound from a handle taken before covering.
    plan = []
    for path in expose:
        parts = path.split("/")
        hidden = [
            a for a in ("/".join(parts[:i]) for i in range(2, len(parts))) if not os.stat(a).st_mode & 1
        ]
        if hidden:
            plan.append((path, hidden[0], os.open(path, os.O_PATH)))
    covered: set[str] = set()
    for path, hidden, fd in plan:
        with contextlib.suppress(OSError):
            if hidden not in covered:
                _mount(libc, "tmpfs", hidden, "tmpfs", _MS_NOSUID | _MS_NODEV, "mode=755,size=64k")
                covered.add(hidden)
            os.makedirs(path, exist_ok=True)
            _mount(libc, f"/proc/self/fd/{fd}", path, None, _MS_BIND | _MS_REC)
        os.close(fd)
    # /tmp last: the work dir lives under it, and its path stops resolving once /tmp is covered.
    targets = [t for t in ("/var/tmp", "/dev/shm", "/tmp") if os.path.isdir(t) and not os.path.islink(t)]
    with contextlib.suppress(OSError):
        for target in targets:
            _mount(libc, workdir, target, None, _MS_BIND)
        got["private_tmp"] = "/tmp" in targets
    with contextlib.suppress(OSError):
        _mount_setattr(libc, "/", _AT_RECURSIVE, attr_set=_MOUNT_ATTR_RDONLY)
        # Writable: the work dir, and our own /proc (the uid map is written after the uid drop).
        for target in (targets if got["private_tmp"] else []) + ["/proc"] * got["private_proc"]:
            _mount_setattr(libc, target, 0, attr_clr=_MOUNT_ATTR_RDONLY)
        got["readonly_fs"] = True
    return got


def _unshare(libc: Any, candidates: list[int], user: bool = False) -> int:
    """The first flag set unshare() accepts (0 if none); with `user`, map our own uid/gid into it."""
    uid, gid = os.getuid(), os.getgid()  # read first: until mapped they read as the overflow id
    got = next((flags for flags in candidates if libc.unshare(flags) == 0), 0)
    for name, text in (("uid_map", f"{uid} {uid} 1"), ("setgroups", "deny"), ("gid_map", f"{gid} {gid} 1")):
        if got and user:  # an unprivileged process may map exactly its own ids
            with open(f"/proc/self/{name}", "w") as f:
                f.write(text)
    return got


def _drop(uid: int) -> None:
    os.setgroups([])
    os.setresgid(uid, uid, uid)
    os.setresuid(uid, uid, uid)


def _probe(step: Any) -> bool:
    """Whether `step` succeeds, tried in a throwaway fork (a uid drop cannot be undone)."""
    pid = os.fork()
    if pid == 0:
        try:
            step()
            os._exit(0)
        finally:
            os._exit(1)
    return os.waitpid(pid, 0)[1] == 0


def _mount(
    libc: Any, src: str | None, target: str, fs: str | None, flags: int, data: str | None = None
) -> None:
    args = [None if s is None else s.encode() for s in (src, target, fs, data)]
    _check(libc.mount(args[0], args[1], args[2], ctypes.c_ulong(flags), args[3]), f"mount {target}")


class _MountAttr(ctypes.Structure):
    _fields_ = [(n, ctypes.c_uint64) for n in ("attr_set", "attr_clr", "propagation", "userns_fd")]


def _mount_setattr(libc: Any, path: str, flags: int, attr_set: int = 0, attr_clr: int = 0) -> None:
    attr = _MountAttr(attr_set, attr_clr, 0, 0)
    args = (_AT_FDCWD, path.encode(), ctypes.c_uint(flags), ctypes.byref(attr), ctypes.sizeof(attr))
    _check(libc.syscall(ctypes.c_long(_SYS_MOUNT_SETATTR), *args), f"mount_setattr {path}")


def _check(rc: int, what: str) -> None:
    if rc != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"{what}: {os.strerror(errno)}")


if __name__ == "__main__":
    _bootstrap(json.loads(sys.argv[1]))
