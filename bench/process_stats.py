"""Measuring a benchmark's subject as a child process: wall and CPU seconds, and peak memory, its
own and its descendants' (Beam worker processes), from /proc. Linux only."""

from __future__ import annotations

import os
import pathlib
import subprocess
import time

REPO = pathlib.Path(__file__).resolve().parent.parent


def _children(pid: int) -> list[int]:
    """Every live descendant of ``pid`` (from /proc)."""
    parents: dict[int, list[int]] = {}
    for stat in pathlib.Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    out, todo = [], [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def _hwm_mib(pid: int) -> float:
    try:
        for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def measure(cmd: list[str], env: dict[str, str] | None = None, repeat: int = 1, limit_s: float = 0.0,
            log: str = "") -> tuple[float, float, float, float]:
    """Wall seconds, CPU seconds (user+sys, with the descendants it waited for) and peak RSS (MiB) of
    a child process, and its descendants' peak RSS; with ``repeat`` runs, the one with the least CPU
    time (start-up cost varies by seconds on a busy machine). With ``limit_s`` the subject is killed
    at that wall time and counts as finished: a time-boxed subject leaves what it got done on disk. With
    ``log`` its stdout and stderr go to that file (a subject that logs a lot would fill the pipe and stall)."""
    return min((_measure_once(cmd, env, limit_s, log) for _ in range(max(1, repeat))), key=lambda r: r[1])


def _measure_once(cmd: list[str], env: dict[str, str] | None, limit_s: float,
                  log: str) -> tuple[float, float, float, float]:
    """Also samples the peak RSS of the process's descendants (Beam worker processes) twice a second."""
    start = time.perf_counter()
    killed = False
    with open(log or os.devnull, "wb") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out if log else subprocess.DEVNULL,
                                stderr=out if log else subprocess.PIPE, cwd=REPO)
    worker_peak = 0.0
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        worker_peak = max([worker_peak, *(_hwm_mib(c) for c in _children(proc.pid))])
        if limit_s and not killed and time.perf_counter() - start > limit_s:
            proc.kill()
            killed = True
        time.sleep(0.5)
    wall = time.perf_counter() - start
    err = proc.stderr.read() if proc.stderr else pathlib.Path(log).read_bytes()[-3000:]
    err = err.decode(errors="replace")
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0 and not killed:
        raise SystemExit(f"failed ({proc.returncode}): {' '.join(cmd)}\n{err[-3000:]}")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, worker_peak


def own_peak(cpu_file: str, fallback: float) -> float:
    """The subject's peak RSS (MiB) as it read it from its own /proc/self/status (VmHWM) at the end.
    ``ru_maxrss`` of a child is not used when this exists: subprocess starts children with vfork,
    and Linux carries the parent's high-water mark into the child's at exec, so once this bench
    has compared two large outputs every later subject would report the bench's own peak."""
    path = pathlib.Path(cpu_file + ".hwm")
    return int(path.read_text()) / 1024 if path.exists() else fallback
