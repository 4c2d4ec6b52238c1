"""A watchdog for the local Ray instance a run starts: when the run is killed, nothing of Ray stays behind.

Why: ``ray.shutdown()`` stops a local instance when the run ends (normally, on an error, on Ctrl-C), but a
run killed with SIGKILL (an OOM killer, ``kill -9``, a CI job cancelled hard) never gets to call it. Ray's
head processes then go with their parent, but its dashboard and runtime-env agents (children of the
raylet) live on, reparented to init, and the instance's session folder stays in the temp directory.

So :func:`start` launches this module as a small process of its own session (a Ctrl-C to the terminal's
process group does not reach it) that, every half second, records the processes descending from the run
(pid and start time) and watches the run. When the run is gone it kills whatever it recorded that is
still alive (the start time guards against a reused pid) and removes the instance's folder. A run that
closes its Ray instance itself stops the watchdog first (:func:`stop`). Linux only (it reads ``/proc``);
elsewhere it exits at once and Ray's own shutdown is all there is.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

INTERVAL = 0.5  # seconds between looks at the run's process tree
PROC = Path("/proc")


def process_stat(pid: int) -> tuple[int, int] | None:
    """(parent pid, start time in clock ticks) of a live process, None when it is gone."""
    try:
        text = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()  # after "pid (comm) ": state, ppid, ...
    return int(fields[1]), int(fields[19])


def descendants(root: int) -> dict[int, int]:
    """Every process below ``root`` in the process tree: pid -> start time."""
    children: dict[int, list[int]] = {}
    starts: dict[int, int] = {}
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        st = process_stat(int(entry.name))
        if st is not None:
            children.setdefault(st[0], []).append(int(entry.name))
            starts[int(entry.name)] = st[1]
    out: dict[int, int] = {}
    todo = list(children.get(root, []))
    while todo:
        pid = todo.pop()
        if pid not in out and pid in starts:
            out[pid] = starts[pid]
            todo.extend(children.get(pid, []))
    return out


def watch(parent: int, folder: Path) -> None:
    """Record the run's descendants until the run is gone; then kill those left and remove ``folder``."""
    first = process_stat(parent)
    if first is None:
        return
    seen: dict[int, int] = {}
    while True:
        now = process_stat(parent)
        if now is None or now[1] != first[1]:
            break
        seen.update(descendants(parent))
        time.sleep(INTERVAL)
    seen.pop(os.getpid(), None)
    for pid, start in seen.items():
        st = process_stat(pid)
        if st is not None and st[1] == start:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
    shutil.rmtree(folder, ignore_errors=True)


def start(folder: Path) -> subprocess.Popen | None:
    """Watch this process and the Ray instance whose files are in ``folder`` (None where /proc is not)."""
    if not (PROC / str(os.getpid()) / "stat").is_file():
        return None
    cmd = [sys.executable, "-m", "adacli.run.reaper", str(os.getpid()), str(folder)]
    devnull = subprocess.DEVNULL
    return subprocess.Popen(cmd, stdin=devnull, stdout=devnull, stderr=devnull, start_new_session=True)


def stop(proc: subprocess.Popen | None) -> None:
    """The run closed its Ray instance itself: the watchdog has nothing left to do."""
    if proc is not None and proc.poll() is None:
        proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5)


def main(argv: list[str]) -> None:
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))  # stop(): a quiet exit
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    watch(int(argv[0]), Path(argv[1]))


if __name__ == "__main__":
    main(sys.argv[1:])


__all__ = ["descendants", "process_stat", "start", "stop", "watch"]
