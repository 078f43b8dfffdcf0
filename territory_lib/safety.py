"""Run safety: one run per market at a time, a writable reports folder checked up front, leftovers
of killed runs removed, and reports published by an atomic swap that readers never see half done.
"""

from __future__ import annotations

import ctypes
import datetime as dt
import errno
import fcntl
import functools
import json
import os
import re
import shutil
import socket
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path

from territory_lib.config import MarketConfig, check_unique_markets
from territory_lib.errors import ConfigError, MarketBusyError

LOCKS_DIR = "_locks"
STAGING_DIR = "_staging"
#: Kernel socket folders are named ``territory-kernel-<pid of the run>-<random>``.
KERNEL_DIR_PREFIX = "territory-kernel-"
#: Socket folders named before they carried a pid are stale once this old (a kernel lives one notebook).
LEGACY_KERNEL_DIR_AGE = 24 * 3600.0


def check_can_run(configs: Sequence[MarketConfig], reports_root: Path) -> Path:
    """Before anything runs: one params file per market, a writable reports folder, no market running.

    Returns the reports folder. Raises the ``ConfigError`` or ``MarketBusyError`` that stops the run.
    """
    check_unique_markets(configs)
    root = ensure_writable(reports_root)
    for config in configs:
        ensure_not_running(root, config.market)
    return root


def ensure_writable(folder: Path) -> Path:
    """Create ``folder`` if needed and prove a file can be written in it, else raise ``ConfigError``.

    A real write is the only reliable test: ``os.access`` says yes to root on a read-only mount.
    """
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise ConfigError(
            f"the reports folder {folder} is not writable ({exc.strerror or exc}); make it writable, "
            f"or set TERRITORY_REPORTS_DIR to a folder you can write to. Nothing was run."
        ) from None
    return folder


def lock_path(reports_root: Path, market: str) -> Path:
    """The lock file of ``market``'s runs: ``<reports>/_locks/<market>.lock``."""
    return Path(reports_root) / LOCKS_DIR / f"{market}.lock"


@contextmanager
def market_lock(reports_root: Path, market: str, wait: float = 0.0) -> Iterator[Path]:
    """Hold ``market``'s run lock for the ``with`` block; fail if another run holds it.

    The lock is an ``flock`` on ``<reports>/_locks/<market>.lock``: the system releases it when
    the holder exits or is killed, so a crashed run never blocks the next one. The file records
    the holder (pid, host, start time, command) for the message of a refused run. ``wait``
    seconds are given to a holder that is going away (a cluster worker being restarted while
    the scheduler already runs its market again); a run started by hand fails at once.

    Raises
    ------
    MarketBusyError
        Naming the run that holds the lock.
    """
    path = lock_path(reports_root, market)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    deadline = time.monotonic() + wait
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise MarketBusyError(
                        f"market '{market}' is already being run by {_describe_holder(path)}. Wait for "
                        f"that run to finish (or stop it), then run again; two runs of one market would "
                        f"overwrite each other's reports. Lock file: {path}"
                    ) from None
                time.sleep(0.5)
        holder = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "command": " ".join(sys.argv)[:200],
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(holder).encode(), 0)
        try:
            yield path
        finally:
            os.ftruncate(fd, 0)
    finally:
        os.close(fd)  # closing the only descriptor releases the flock


def ensure_not_running(reports_root: Path, market: str) -> None:
    """Raise ``MarketBusyError`` at once if a run of ``market`` holds its lock (checked, not kept)."""
    with market_lock(reports_root, market):
        pass


def _describe_holder(path: Path) -> str:
    try:
        holder = json.loads(path.read_text(encoding="utf-8"))
        return (
            f"process {holder['pid']} on {holder['host']}, running since {holder['started']} "
            f"({holder['command']})"
        )
    except (OSError, ValueError, KeyError, TypeError):  # caught between its lock and its first write
        return "another process that has just started"


def remove_stale_staging(reports_root: Path, market: str) -> list[Path]:
    """Remove ``market``'s leftovers in ``<reports>/_staging/``; call it while holding its lock.

    Under the lock no other run of the market exists, so every staging folder of the market
    (``<market>-<run id>``, ``<market>-<run id>-previous``) was left by a run that was killed.
    Other markets' folders are left to their own runs, which may be live.
    """
    folder = Path(reports_root) / STAGING_DIR
    pattern = re.compile(re.escape(market) + r"-[0-9a-f]{8}(?:-previous)?")
    stale = [entry for entry in folder.glob(f"{market}-*") if pattern.fullmatch(entry.name)]
    for entry in stale:
        shutil.rmtree(entry, ignore_errors=True)
    return stale


#: A Unix socket's path may hold 107 bytes on Linux (103 on macOS); a kernel socket is named
#: ``<temp>/territory-kernel-<pid>-<8 random>/ipc-<port>``, about 45 characters after ``<temp>``.
MAX_SOCKET_PATH = 100
SOCKET_NAME_ROOM = 45
#: Where kernel sockets go when the temporary folder's path is too long for them.
SHORT_TEMP_DIR = "/tmp"


def kernel_socket_base() -> str:
    """The folder kernel socket folders are made in: the temporary folder, if its path is short enough.

    A long ``TMPDIR`` (a CI workspace, a pytest worker's folder) would make the socket path too
    long to bind ("File name too long"); ``/tmp`` is used then.
    """
    base = tempfile.gettempdir()
    if len(base) + SOCKET_NAME_ROOM <= MAX_SOCKET_PATH or not os.access(SHORT_TEMP_DIR, os.W_OK | os.X_OK):
        return base
    return SHORT_TEMP_DIR


def kernel_socket_dir() -> str:
    """Create a private (0700) kernel socket folder whose name carries this process's pid."""
    return tempfile.mkdtemp(prefix=f"{KERNEL_DIR_PREFIX}{os.getpid()}-", dir=kernel_socket_base())


def remove_stale_kernel_dirs(temp_dir: Path | None = None) -> list[Path]:
    """Remove this user's kernel socket folders whose run is gone (killed before it cleaned up).

    A folder named with a pid is stale when no process has that pid; one named before names
    carried a pid, when it is over a day old. Folders of live runs, and other users', stay.
    """
    stale = []
    folders = [temp_dir] if temp_dir else sorted({Path(tempfile.gettempdir()), Path(kernel_socket_base())})
    entries = [entry for folder in folders for entry in folder.glob(f"{KERNEL_DIR_PREFIX}*")]
    for entry in entries:
        try:
            info = entry.lstat()
        except FileNotFoundError:
            continue
        if not entry.is_dir() or entry.is_symlink() or info.st_uid != os.getuid():
            continue
        match = re.fullmatch(re.escape(KERNEL_DIR_PREFIX) + r"(\d+)-.+", entry.name)
        if match is not None:
            gone = not _process_exists(int(match[1]))
        else:
            gone = time.time() - info.st_mtime > LEGACY_KERNEL_DIR_AGE
        if gone:
            shutil.rmtree(entry, ignore_errors=True)
            stale.append(entry)
    return stale


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


def publish_folder(staging: Path, final: Path) -> None:
    """Put the folder ``staging`` in the place of ``final``, then delete the folder it replaced.

    Where the system can swap two folders in one step (Linux ``renameat2``, macOS
    ``renamex_np``), ``final`` is whole at every instant, old or new, for readers and for
    concurrent publishers alike. Elsewhere the old folder is renamed aside first, and ``final``
    is missing for an instant. Never deletes the old results before the new ones stand.
    """
    previous = staging.with_name(staging.name + "-previous")
    while True:
        try:
            swapped = _swap(staging, final)
        except FileNotFoundError:
            swapped = False  # nothing published yet (or another publisher moved it aside)
        else:
            if not swapped:
                shutil.rmtree(previous, ignore_errors=True)
                with suppress(FileNotFoundError):
                    os.rename(final, previous)
        if swapped:
            shutil.rmtree(staging, ignore_errors=True)  # the previous results, swapped out
            return
        try:
            os.rename(staging, final)
        except OSError as exc:
            if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                raise
            continue  # another publisher put a folder there in between: swap with it
        shutil.rmtree(previous, ignore_errors=True)
        return


_AT_FDCWD = -100
_RENAME_EXCHANGE = 2  # Linux <linux/fs.h>
_RENAME_SWAP = 2  # macOS <stdio.h>


@functools.cache
def _swap_function() -> Callable[[bytes, bytes], int] | None:
    """The C library call that exchanges two paths atomically, or ``None`` where there is none."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if sys.platform.startswith("linux"):
            call = libc.renameat2
            call.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
            return lambda a, b: call(_AT_FDCWD, a, _AT_FDCWD, b, _RENAME_EXCHANGE)
        if sys.platform == "darwin":
            call = libc.renamex_np
            call.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_uint]
            return lambda a, b: call(a, b, _RENAME_SWAP)
    except (OSError, AttributeError):  # no such call in this C library
        pass
    return None


def _swap(first: Path, second: Path) -> bool:
    """Exchange two existing paths in one step; ``False`` when the system or file system cannot."""
    call = _swap_function()
    if call is None:
        return False
    if call(os.fsencode(first), os.fsencode(second)) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EOPNOTSUPP):
        return False
    raise OSError(code, os.strerror(code), str(first), None, str(second))
