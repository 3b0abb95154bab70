"""Run untrusted, model-written Python programs, one process per program, behind layered protections.

Each program starts through a *bootstrap* (`sandbox_boot.py` run as a script, `python -I -S`) that sets the
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
import functools
import json
import logging
import math
import os
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

from pipeline.eval import sandbox_boot
from pipeline.eval.sandbox_boot import NOBODY, PROTECTIONS

logger = logging.getLogger(__name__)

TMP_PREFIX = "intuitor-sandbox-"
_SETUP_TIMEOUT_S = 30.0  # for the bootstrap's setup, on top of wall_s: generous for busy hosts
_DRAIN_S = 0.5  # after the bootstrap exits, for leftover writers (possible only without a PID ns)


@functools.cache
def _base_python() -> str:
    """The interpreter the venv was made from (a venv's python is a symlink to it)."""
    return os.path.realpath(sys.executable)


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
            "uid": NOBODY if os.geteuid() == 0 else None,
            "fds": [info_w, go_r],
            "mode": mode,
            "limits": [limits.cpu_limit_s, limits.memory_mb, limits.file_size_mb, limits.max_processes],
            # The base interpreter, not the venv's: programs get the standard library only, and a venv
            # under /tmp (a checkout there) would be hidden by the private /tmp anyway.
            "python": _base_python(),
            "expose": [os.path.realpath(sys.base_prefix)],
            "env": {
                "PATH": os.pathsep.join([os.path.dirname(_base_python()), "/usr/local/bin:/usr/bin:/bin"]),
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
                [
                    sys.executable,
                    "-I",
                    "-S",
                    "-B",
                    os.path.abspath(sandbox_boot.__file__),
                    json.dumps(config),
                ],
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
        logger.warning("sandbox runs with reduced isolation: %s", "; ".join(PROTECTIONS[m] for m in missing))
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
    flags = {name: bool(info.get(name)) for name in PROTECTIONS}
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
