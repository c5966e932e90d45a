"""Who holds a lease: a holder string names its process, ``host|pid namespace|pid|random``
(:func:`new_holder`), so that a lease (or a run, ``adapters.store.runs``) whose process was
killed on this host is known at once (:func:`dead_local_holder`), without waiting for the
lease to expire.

Standard library only: the service's lease keeper imports it, and `iam-policy` imports the
service's declarations without the state DB's stack.
"""

from __future__ import annotations

import os
import socket
import uuid

__all__ = ["dead_local_holder", "new_holder", "pid_namespace", "run_lease"]


def run_lease(run_id: int) -> str:
    """The name of the lease a run holds while its process lives (``adapters.store.runs``)."""
    return f"run:{run_id}"


def pid_namespace() -> str:
    """The PID namespace of this process (Linux), so that a pid is only ever compared with
    pids of the same namespace (two containers may share a host name, not their pids)."""
    try:
        return str(os.stat("/proc/self/ns/pid").st_ino)
    except OSError:
        return ""


def new_holder() -> str:
    """Who holds a lease: host, PID namespace, pid, and a random part (pids are reused)."""
    return f"{socket.gethostname()}|{pid_namespace()}|{os.getpid()}|{uuid.uuid4().hex[:8]}"


def dead_local_holder(holder: str) -> bool:
    """True only when ``holder`` is a process of this host and PID namespace that no longer
    exists (a `run` killed by SIGKILL or the OOM killer): its lease need not be waited out.
    Anything else (another host, an unknown format, a live or unknowable pid) is False."""
    parts = holder.split("|")
    if len(parts) != 4 or not parts[2].isdigit():
        return False
    host, pidns, pid, _ = parts
    if host != socket.gethostname() or not pidns or pidns != pid_namespace():
        return False
    if int(pid) == os.getpid():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except OSError:  # it exists (owned by another user): alive
        return False
    return False
