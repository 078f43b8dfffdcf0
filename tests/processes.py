"""Which kernels a test's process has left running, including forked ones whose server has exited."""

from __future__ import annotations

import ctypes
import sys

import psutil

from territory_lib.forkserver import is_kernel_command

#: prctl's option that makes a process the parent of its orphaned descendants (Linux).
PR_SET_CHILD_SUBREAPER = 36


def adopt_orphans() -> None:
    """Make this process the parent of its descendants whose parent exits (Linux; else nothing).

    A kernel forked by a fork server that exits first would otherwise be adopted by init, out of
    sight of :func:`running_kernels`.
    """
    if sys.platform == "linux":
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


def running_kernels() -> list[psutil.Process]:
    """The kernels among this process's descendants that still run (see :func:`adopt_orphans`)."""
    kernels = []
    for process in psutil.Process().children(recursive=True):
        try:
            parent = process.parent()
            command = process.cmdline()
            if process.status() == psutil.STATUS_ZOMBIE:
                continue
            if is_kernel_command(command, parent.cmdline() if parent is not None else []):
                kernels.append(process)
        except psutil.Error:
            continue
    return kernels
