"""Step kernels forked from one process that has imported the steps' libraries (Linux).

Booting a kernel means starting Python and importing pandas, geopandas, matplotlib, the design
engine and the rest: 2-3 s of one core for every step. A fork server pays the imports once per
run: it is a plain Python process (no kernel, no sockets, no threads) that imports what the next
notebook imports, then forks; the child becomes that notebook's kernel, with every module already
loaded, and starts ipykernel's app exactly as ``python -m ipykernel_launcher`` would. Later steps
import only what earlier ones did not.

jupyter_client launches kernels through a provisioner: :class:`ForkedProvisioner` asks the server
instead of starting a process itself, and controls the child through a pidfd (the child is the
server's, not this process's). Where forking is not possible (not Linux, another interpreter in
the kernelspec, the server gone), it starts the kernel as a new process, as jupyter_client would.
"""

from __future__ import annotations

import gc
import importlib.util
import json
import logging
import os
import select
import signal
import subprocess
import sys
import threading
from concurrent.futures import Future
from typing import Any

from jupyter_client.provisioning import LocalProvisioner

logger = logging.getLogger(__name__)

#: The module every kernel command runs (``python [options] -m ipykernel_launcher -f ...``).
LAUNCHER = "ipykernel_launcher"

#: The module the server runs (``python [options] -m territory_lib.forkserver``).
SERVER_MODULE = "territory_lib.forkserver"

#: Seconds to wait for the server to answer a fork request (it imports the notebook's modules first).
FORK_TIMEOUT = 300.0


def can_fork() -> bool:
    """Whether kernels can be forked here: Linux, whose fork keeps the imported libraries sound,
    and pidfds, which control a process that is not our child."""
    return sys.platform == "linux" and hasattr(os, "pidfd_open") and hasattr(signal, "pidfd_send_signal")


def split_kernel_command(cmd: list[str]) -> tuple[list[str], list[str]] | None:
    """``(interpreter with its options, kernel arguments)`` of an ipykernel command, else ``None``."""
    for index in range(len(cmd) - 1):
        if cmd[index] == "-m" and cmd[index + 1] == LAUNCHER:
            return cmd[:index], cmd[index + 2 :]
    return None


def is_kernel_command(command: list[str], parent_command: list[str]) -> bool:
    """Whether a process with this command line (and its parent's) is a kernel, or one a kernel forked.

    A forked kernel keeps its server's command line; the server itself is the one whose parent is
    not a server.
    """
    server = ["-m", SERVER_MODULE]
    return LAUNCHER in command or (_contains(command, server) and _contains(parent_command, server))


def _contains(command: list[str], part: list[str]) -> bool:
    return any(command[index : index + len(part)] == part for index in range(len(command)))


class ForkServer:
    """The runner's end of a fork server, started at the first fork request.

    Requests are answered in order, one JSON line each, by a thread that resolves their futures:
    asking for a kernel never blocks the caller while the server imports.
    """

    def __init__(self) -> None:
        self._process: subprocess.Popen[bytes] | None = None
        self._interpreter: list[str] | None = None
        self._pending: list[Future[int]] = []
        self._lock = threading.Lock()
        self._broken = False

    def fork(
        self, interpreter: list[str], modules: list[str], argv: list[str], cwd: str, env: dict[str, str]
    ) -> Future[int] | None:
        """Ask for a kernel run as ``interpreter -m ipykernel_launcher *argv``; the future gives its pid.

        ``None`` when this server cannot give it (another interpreter than the one it runs, or the
        server could not start or has died): the caller then starts the kernel itself.
        """
        with self._lock:
            if self._broken or (self._interpreter is not None and interpreter != self._interpreter):
                return None
            if self._process is None and not self._start(interpreter, cwd, env):
                return None
            assert self._process is not None and self._process.stdin is not None
            request = {"modules": modules, "argv": argv, "cwd": cwd, "env": env}
            answer: Future[int] = Future()
            # Pending before it is sent: the reply cannot come first (the reader waits for the lock).
            self._pending.append(answer)
            try:
                self._process.stdin.write(json.dumps(request).encode() + b"\n")
                self._process.stdin.flush()
            except OSError:
                logger.debug("the kernel fork server is gone", exc_info=True)
                self._pending.remove(answer)
                self._broken = True
                return None
            return answer

    def close(self) -> None:
        """Stop the server (its kernels are stopped by their managers) and wait until it has exited."""
        with self._lock:
            process, self._process = self._process, None
            self._broken = True  # no new server after this
        if process is None:
            return
        if process.stdin is not None:
            process.stdin.close()  # the server exits on the end of its input
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def _start(self, interpreter: list[str], cwd: str, env: dict[str, str]) -> bool:
        replies, reply_end = os.pipe()
        try:
            self._process = subprocess.Popen(
                [*interpreter, "-m", SERVER_MODULE, str(reply_end)],
                stdin=subprocess.PIPE,
                pass_fds=(reply_end,),
                cwd=cwd,
                env=env,
            )
        except OSError:
            logger.debug("the kernel fork server could not start", exc_info=True)
            os.close(replies)
            self._broken = True
            return False
        finally:
            os.close(reply_end)
        self._interpreter = interpreter
        threading.Thread(target=self._read, args=(replies,), name="kernel-forks", daemon=True).start()
        return True

    def _read(self, replies: int) -> None:
        """Resolve the pending requests, in order, from the server's replies."""
        with os.fdopen(replies, "rb") as stream:
            for line in stream:
                with self._lock:
                    answer = self._pending.pop(0) if self._pending else None
                if answer is None:
                    continue
                reply = json.loads(line)
                if "pid" in reply:
                    answer.set_result(int(reply["pid"]))
                else:
                    answer.set_exception(RuntimeError(f"the kernel fork server failed: {reply.get('error')}"))
        with self._lock:
            self._broken = True
            pending, self._pending = self._pending, []
        for answer in pending:
            answer.set_exception(RuntimeError("the kernel fork server exited"))


class ForkedKernelProcess:
    """The ``Popen``-like handle jupyter_client's provisioner keeps, for a kernel the server forked.

    Signals go to the kernel's process group (it leads one, as jupyter_client's kernels do), and
    only while its pidfd says it still runs: a pid reused after its exit is never signalled.
    """

    stdin = stdout = stderr = None

    def __init__(self, pid: Future[int]) -> None:
        self._pid = pid
        self._pidfd: int | None = None
        self.returncode: int | None = None

    @property
    def pid(self) -> int:
        """The kernel's pid, once the server has forked it (it first imports the notebook's modules)."""
        return self._pid.result(timeout=FORK_TIMEOUT)

    def poll(self) -> int | None:
        """``None`` while the kernel is being made or runs; else its exit status (unknown: 0)."""
        if self.returncode is not None:
            return self.returncode
        if not self._pid.done():
            return None
        if self._pid.exception() is not None:
            self.returncode = 1
            return self.returncode
        if self._pidfd is None:
            try:
                self._pidfd = os.pidfd_open(self._pid.result())
            except ProcessLookupError:
                self.returncode = 0
                return self.returncode
        if select.select([self._pidfd], [], [], 0)[0]:  # readable once the process has exited
            os.close(self._pidfd)
            self._pidfd = None
            self.returncode = 0  # reaped by the server, which ignores its children's statuses
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        """Wait until the kernel has exited."""
        if self.poll() is None:
            self.pid  # noqa: B018 (waits for the fork)
            if self.poll() is None and self._pidfd is not None:
                select.select([self._pidfd], [], [], timeout)
            if self.poll() is None:
                raise subprocess.TimeoutExpired(LAUNCHER, timeout or 0)
        return self.returncode or 0

    def send_signal(self, signum: int) -> None:
        """Signal the kernel's process group, if the kernel still runs."""
        pid = self.pid
        if self.poll() is None:
            os.killpg(pid, signum)

    def kill(self) -> None:
        """Kill the kernel and whatever it started."""
        self.send_signal(signal.SIGKILL)

    def terminate(self) -> None:
        """Ask the kernel and whatever it started to terminate."""
        self.send_signal(signal.SIGTERM)


class ForkedProvisioner(LocalProvisioner):
    """jupyter_client's local provisioner, launching the kernel through a :class:`ForkServer`.

    ``server`` and ``modules`` (what the server imports before forking) are set by the kernel
    manager that creates it; without a server, or when it cannot fork, the kernel starts as a new
    process.
    """

    server: ForkServer | None = None
    modules: tuple[str, ...] = ()

    async def launch_kernel(self, cmd: list[str], **kwargs: Any) -> Any:
        """Launch the kernel ``cmd`` describes; return its connection information."""
        parts = split_kernel_command(cmd)
        forked = None
        if self.server is not None and parts is not None:
            interpreter, argv = parts
            cwd = str(kwargs.get("cwd") or os.getcwd())
            env = dict(kwargs.get("env") or os.environ)
            # What jupyter_client's launcher adds; ipykernel reads it when its app is imported.
            env.setdefault("JPY_PARENT_PID", str(os.getpid()))
            forked = self.server.fork(interpreter, list(self.modules), argv, cwd, env)
        if forked is None:
            return await super().launch_kernel(cmd, **kwargs)
        self.process = ForkedKernelProcess(forked)  # type: ignore[assignment]  # duck-types Popen
        self.pid = None  # known once forked: ``self.process.pid``
        self.pgid = None  # the process's own group: ``send_signal`` goes through the handle
        self.cwd = kwargs.get("cwd")
        return self.connection_info


# --- the server process --------------------------------------------------------------------------


def before_site_packages(path: list[str]) -> int:
    """The index before the first ``site-packages`` (or ``dist-packages``) folder in ``path``, else 0:
    after the standard library, as IPython places the working folder."""
    for index, folder in enumerate(path):
        if os.path.basename(folder) in ("site-packages", "dist-packages"):
            return index
    return 0


def serve(replies: int) -> dict[str, Any] | None:
    """Answer fork requests from stdin until it ends; return the request a forked child is to run."""
    # Python's advice for a process that forks without exec: no collections in the parent (they
    # would only scan the imports' objects over and over, and leave holes in pages the children
    # share), its objects frozen before each fork, collections back on in the child.
    gc.disable()
    from territory_lib.kernels import import_ahead

    # What ipykernel's app sets before it imports matplotlib; here matplotlib is imported first.
    os.environ.setdefault("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    import ipykernel.kernelapp  # noqa: F401  (every kernel needs it)

    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # the kernels' exits need no waiting for
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the runner's to handle
    # Where a kernel's app puts the notebook's folder (IPython's init_path), so that the server
    # finds the notebook's own modules and the kernel's path is the same as a started one's.
    if not sys.flags.safe_path:
        sys.path.insert(before_site_packages(sys.path), "")
    with os.fdopen(replies, "w", buffering=1) as answers:
        for line in sys.stdin.buffer:
            try:
                request = json.loads(line)
                os.chdir(request["cwd"])
                import_ahead(*request["modules"])
                gc.freeze()
                pid = os.fork()
            except Exception as exc:  # a bad request or a failed fork: the runner starts the kernel itself
                answers.write(json.dumps({"error": f"{type(exc).__name__}: {exc}"}) + "\n")
                continue
            if pid == 0:
                return request  # leaving the block closes the child's copy of the reply pipe
            answers.write(json.dumps({"pid": pid}) + "\n")
    return None


def become_kernel(request: dict[str, Any]) -> None:
    """In a forked child: take the kernel's place (session, signals, stdin, environment; the
    server is already in the kernel's folder) and run ipykernel's app with its arguments, as
    ``python -m ipykernel_launcher`` would."""
    gc.enable()
    os.setsid()
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # the kernel waits for the processes it starts
    signal.signal(signal.SIGINT, signal.default_int_handler)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    os.environ.clear()
    os.environ.update(request["env"])
    launcher = importlib.util.find_spec(LAUNCHER)
    sys.argv = [
        launcher.origin if launcher is not None and launcher.origin else LAUNCHER,
        *request["argv"],
        # Exit if the server does (it exits once the runner is gone), as a kernel without its runner.
        f"--IPKernelApp.parent_handle={os.getppid()}",
    ]
    from ipykernel import kernelapp

    kernelapp.launch_new_instance()


if __name__ == "__main__":
    # Like ipykernel_launcher: ipykernel's own modules never come from the folder it starts in.
    if sys.path and sys.path[0] in ("", os.getcwd()):
        del sys.path[0]
    child_request = serve(int(sys.argv[1]))
    if child_request is not None:
        become_kernel(child_request)
