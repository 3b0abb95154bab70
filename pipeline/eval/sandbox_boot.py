"""The sandbox's bootstrap: runs as a standalone script (`python -I -S`), stdlib only, never imported
for its side effects. It creates the namespaces, forks the program as PID 1 of the new PID namespace,
applies mounts, uid drop, rlimits and capability drop, execs the program, and reports to the parent
(`pipeline.eval.sandbox`, which documents the protections) over a pipe.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import resource
import signal
import sys
from typing import Any

NOBODY = 65534

# Linux constants the Python 3.11 stdlib lacks.
_NEWNS, _NEWIPC, _NEWUSER, _NEWPID, _NEWNET = 0x20000, 0x8000000, 0x10000000, 0x20000000, 0x40000000
_MS_NOSUID, _MS_NODEV, _MS_NOEXEC, _MS_BIND, _MS_REC, _MS_PRIVATE = 2, 4, 8, 4096, 16384, 1 << 18
_PR_SET_PDEATHSIG, _PR_SET_DUMPABLE, _PR_CAPBSET_READ, _PR_CAPBSET_DROP = 1, 4, 23, 24
_PR_SET_NO_NEW_PRIVS = 38
_SYS_MOUNT_SETATTR, _AT_FDCWD, _AT_RECURSIVE, _MOUNT_ATTR_RDONLY = 442, -100, 0x8000, 0x1

# Every protection `isolation_report` lists, with what its absence means (for the one-time warning).
PROTECTIONS = {
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
    flags = dict.fromkeys(PROTECTIONS, False)
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
    # A temp dir holding the interpreter itself (a Python installed under /tmp) stays visible: covering it
    # would leave nothing to exec (then private_tmp is reported False).
    targets = [
        t
        for t in ("/var/tmp", "/dev/shm", "/tmp")
        if os.path.isdir(t) and not os.path.islink(t) and not any(p.startswith(t + "/") for p in expose)
    ]
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
