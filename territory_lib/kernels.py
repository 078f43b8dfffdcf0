"""Notebook kernels for the step notebooks, started one step ahead.

Starting a kernel and importing pandas, geopandas and the rest takes 2-3 s, as long as a small
market's whole step. The runner therefore starts the next step's kernel while the current step
runs: it boots and imports the modules the next notebook imports (read from the notebook, nothing
else) on the other core, and the notebook then runs in it from its first cell as before. Only
imports happen ahead, never a read of data, so every step still reads the run's snapshot. On
Linux the kernels of a run are forked from one process that did those imports
(:mod:`territory_lib.forkserver`), so each step imports only what the steps before it did not.
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import gc
import importlib
import json
import logging
import os
import re
import shutil
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from queue import Empty
from typing import Any

from jupyter_client.asynchronous import AsyncKernelClient
from jupyter_client.manager import AsyncKernelManager
from jupyter_core.utils import ensure_async, run_sync
from traitlets import default

from territory_lib.forkserver import ForkedProvisioner, ForkServer, can_fork
from territory_lib.safety import kernel_socket_dir

logger = logging.getLogger(__name__)

#: What nbclient passes to kernels it starts: IPython history in memory, never in ~/.ipython.
HISTORY_IN_MEMORY = "--HistoryManager.hist_file=:memory:"

#: Math libraries on one thread in step kernels, unless the environment says otherwise. A step
#: runs while the next one's kernel starts on the other core, and the steps' matrices are small:
#: threads only wait for each other (Georgia's step 4 trend fits with the other core busy: 1.96 s
#: with OpenBLAS's default threads, 0.34 s with one).
ONE_THREAD = {"OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}

#: Tag of the cell after which ``territory run`` starts the next step's kernel: the step's heaviest
#: cell, when it keeps both cores busy (step 2 designs the plan on one core and the scenario plans
#: on the other, and a kernel booting beside them slows both). Untagged notebooks start the next
#: kernel as soon as their own is ready.
NEXT_KERNEL_TAG = "next-kernel-after"

_MODULE_NAME = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")


class ReadyClient(AsyncKernelClient):
    """jupyter_client's kernel client, ready as soon as the kernel has answered on both channels.

    jupyter_client's :meth:`wait_for_ready` then also waits until IOPub stays silent for 0.2 s,
    discarding whatever comes: 0.2 s of every step. This one waits for the kernel's "idle" status
    after its reply instead (the kernel is done with the request). nbclient, which executes the
    cells, reads only the IOPub messages of the cell it runs, so nothing left there can reach a
    notebook.
    """

    async def wait_for_ready(self, timeout: float | None = None) -> None:
        """Ask for the kernel's info until it replies and IOPub says it is idle after the request.

        Raises
        ------
        RuntimeError
            When the kernel dies or does not answer within ``timeout`` seconds.
        """
        deadline = time.monotonic() + (timeout if timeout is not None else float("inf"))
        while True:
            request = self.kernel_info()
            try:
                reply = await ensure_async(self.shell_channel.get_msg(timeout=1))
            except Empty:
                reply = None
            # IOPub may not be connected yet (its first messages are then lost): then ask again.
            answered = reply is not None and reply["msg_type"] == "kernel_info_reply"
            if answered and await self._idle_after(request):
                self._handle_kernel_info_reply(reply)
                return
            if not await self._async_is_alive():
                raise RuntimeError("Kernel died before replying to kernel_info")
            if time.monotonic() > deadline:
                raise RuntimeError(f"Kernel didn't respond in {timeout} seconds")

    async def _idle_after(self, request: str) -> bool:
        """Whether IOPub brings the kernel's "idle" status for ``request`` (each wait up to 0.2 s)."""
        while True:
            try:
                message = await ensure_async(self.iopub_channel.get_msg(timeout=0.2))
            except Empty:
                return False
            if (
                message["msg_type"] == "status"
                and message["content"].get("execution_state") == "idle"
                and message["parent_header"].get("msg_id") == request
            ):
                return True


class LocalKernelManager(AsyncKernelManager):
    """Starts kernels on local IPC sockets: no TCP port, nothing readable on the network.

    Each kernel's sockets live in a private folder of their own (mode 0700): kernels started at
    the same moment, by markets running in parallel, never share a socket path. The folder's
    name carries the run's pid, so a later run can remove it if this one is killed.
    """

    @default("transport")
    def _default_transport(self) -> str:
        return "ipc"

    @default("client_factory")
    def _default_client_factory(self) -> type:
        return ReadyClient

    @default("ip")
    def _default_ip(self) -> str:
        self._socket_dir = kernel_socket_dir()
        return os.path.join(self._socket_dir, "ipc")

    def cleanup_ipc_files(self) -> None:
        """Remove the sockets, then their private folder."""
        super().cleanup_ipc_files()
        if getattr(self, "_socket_dir", None):
            shutil.rmtree(self._socket_dir, ignore_errors=True)


class StartedKernel(LocalKernelManager):
    """A kernel started ahead of its notebook; it keeps the clients papermill opens on it.

    papermill leaves a kernel it did not start running, with its client's channels open:
    :meth:`shut_down` closes those channels and stops the kernel.
    """

    def __init__(
        self, forks: ForkServer | None = None, modules: list[str] | None = None, **kwargs: object
    ) -> None:
        super().__init__(**kwargs)
        self._forks = forks  # the server to fork the kernel from, if any (territory_lib.forkserver)
        self._modules = modules or []  # what the server imports before it forks
        self._opened: list = []
        self._stopping: threading.Thread | None = None

    async def _async_pre_start_kernel(self, **kw: Any) -> tuple[list[str], dict[str, Any]]:
        """jupyter_client's preparation, with a provisioner that forks the kernel when there is a server."""
        if self.provisioner is None and self._forks is not None:
            self.kernel_id = self.kernel_id or str(uuid.uuid4())
            provisioner = ForkedProvisioner(
                kernel_id=self.kernel_id, kernel_spec=self.kernel_spec, parent=self
            )
            provisioner.server, provisioner.modules = self._forks, tuple(self._modules)
            self.provisioner = provisioner
        return await super()._async_pre_start_kernel(**kw)

    def client(self, **kwargs):
        """A client of this kernel, remembered so that :meth:`shut_down` can close it."""
        client = super().client(**kwargs)
        self._opened.append(client)
        return client

    def wait_ready(self, timeout: float = 120.0) -> None:
        """Wait until the kernel has done its imports and answers; a kernel that died is left to papermill.

        A client of its own asks for the kernel's info (answered once the imports are done), then
        closes its channels.
        """
        client = super().client()
        # Requests and their status only: no heartbeat thread to start and stop at once.
        client.start_channels(shell=True, iopub=True, stdin=False, hb=False, control=False)
        try:
            run_sync(client.wait_for_ready)(timeout=timeout)
        except Exception:
            logger.debug("the kernel %s did not become ready", self.kernel_id, exc_info=True)
        finally:
            client.stop_channels()

    def shut_down(self) -> None:
        """Close every client's channels, then stop the kernel in the background.

        A kernel takes 0.5-1 s to exit after its notebook is done; the next step need not wait for
        that. :meth:`wait_stopped` waits until it has.
        """
        while self._opened:
            self._opened.pop().stop_channels()
        if self._stopping is None:
            self._stopping = threading.Thread(target=self._stop, name="stop-kernel", daemon=True)
            self._stopping.start()

    def wait_stopped(self, timeout: float = 60.0) -> None:
        """Wait until the kernel stopped by :meth:`shut_down` has exited and its files are gone."""
        if self._stopping is not None:
            self._stopping.join(timeout)

    def _stop(self) -> None:
        """Stop the kernel on an event loop of this thread's own, closed after (an unclosed loop
        keeps three file descriptors: a run stopping hundreds of kernels would run out)."""
        loop = asyncio.new_event_loop()
        try:
            loop.run_until_complete(self._stopped())
        finally:
            loop.close()

    async def _stopped(self) -> None:
        """Ask the kernel to exit (killed if it does not within ``shutdown_wait_time``), clean up."""
        try:
            if await self.is_alive():
                await self.shutdown_kernel(now=False)
        except Exception:
            logger.debug("the kernel %s did not stop cleanly", self.kernel_id, exc_info=True)
        finally:
            await self.cleanup_resources()


def notebook_modules(notebook: Path) -> list[str]:
    """The modules a notebook imports at the top level of its code cells, in order.

    ``from package import name`` lists ``package`` and ``package.name`` (which may be a submodule
    or just a name; importing it is only tried). Cells that are not plain Python (magics) are
    skipped, as are relative imports.
    """
    cells = json.loads(notebook.read_text(encoding="utf-8")).get("cells", [])
    modules: list[str] = []
    for cell in cells:
        if cell.get("cell_type") != "code":
            continue
        source = cell.get("source", "")
        try:
            tree = ast.parse("".join(source) if isinstance(source, list) else source)
        except SyntaxError:
            continue
        for node in tree.body:
            if isinstance(node, ast.Import):
                modules += [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules.append(node.module)
                modules += [f"{node.module}.{alias.name}" for alias in node.names if alias.name != "*"]
    return [name for name in dict.fromkeys(modules) if _MODULE_NAME.match(name)]


def has_tagged_cell(notebook: Path, tag: str) -> bool:
    """Whether a cell of ``notebook`` carries ``tag``."""
    cells = json.loads(notebook.read_text(encoding="utf-8")).get("cells", [])
    return any(tag in cell.get("metadata", {}).get("tags", []) for cell in cells)


def import_ahead(*modules: str) -> None:
    """Import ``modules`` in this kernel, skipping any that fail.

    A module of this library also brings the modules it lists in ``IMPORTED_WHEN_USED`` (the heavy
    ones its functions import when called), and every library module loaded by then that has a
    ``warm_up()`` runs it (compiled code's one-time start-up). Runs in a kernel started ahead: a
    module that fails here fails again when the notebook imports it, and the notebook's error is
    the one reported.

    The garbage collector pauses meanwhile: imports make hundreds of thousands of objects that
    live as long as the kernel, and collecting while they are made only scans them again and
    again (0.6 s of step 1's 2.5 s of imports).
    """
    with collection_paused():
        _import_and_warm_up(modules)


@contextlib.contextmanager
def collection_paused() -> Iterator[None]:
    """Pause Python's garbage collector (for the whole process) while importing libraries."""
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if collecting:
            gc.enable()


def _import_and_warm_up(modules: tuple[str, ...]) -> None:
    for name in modules:
        try:
            module = importlib.import_module(name)
            if name.startswith("territory_lib."):
                for used in getattr(module, "IMPORTED_WHEN_USED", ()):
                    importlib.import_module(used)
        except Exception:
            continue
    for name, module in list(sys.modules.items()):
        warm_up = getattr(module, "warm_up", None) if name.startswith("territory_lib.") else None
        if callable(warm_up):
            try:
                warm_up()
            except Exception:
                logger.debug("%s.warm_up() failed", name, exc_info=True)


def start_kernel(
    kernel_name: str, notebook: Path, cwd: Path, forks: ForkServer | None = None
) -> StartedKernel:
    """Start a kernel that imports ``notebook``'s modules as it boots; return without waiting.

    The imports run before the kernel answers its first request, so papermill, connecting to it,
    waits for them and then executes the notebook's first cell with its modules loaded. With
    ``forks``, the kernel is forked from that server once it has imported them.
    """
    modules = notebook_modules(notebook)
    code = f"import territory_lib.kernels as _k; _k.import_ahead(*{modules!r}); del _k"
    kernel = StartedKernel(forks=forks, modules=modules, kernel_name=kernel_name)
    run_sync(kernel.start_kernel)(
        extra_arguments=[HISTORY_IN_MEMORY, f"--IPKernelApp.exec_lines={[code]!r}"],
        cwd=str(cwd),
        env={**ONE_THREAD, **os.environ},
    )
    logger.debug("started a %r kernel ahead for %s (%d modules)", kernel_name, notebook.name, len(modules))
    return kernel


class KernelsAhead:
    """At most one kernel started ahead, for the notebook that runs next; stopped if unused.

    A kernel that cannot be started ahead is no failure here: papermill then starts the
    notebook's kernel itself, and reports it if that fails too.
    """

    def __init__(self, kernel_name: str, cwd: Path) -> None:
        self.kernel_name = kernel_name
        self.cwd = cwd
        self._waiting: tuple[Path, StartedKernel] | None = None
        self._next: Path | None = None  # the notebook whose kernel :meth:`start_next` starts
        self._kernels: list[StartedKernel] = []  # every kernel started, to wait for at the end
        # One process imports the libraries once and every kernel is forked from it (Linux).
        self._forks = ForkServer() if can_fork() else None

    def start(self, notebook: Path) -> None:
        """Start the kernel ``notebook`` will run in (stopping one started for another)."""
        self._stop_waiting()
        try:
            kernel = start_kernel(self.kernel_name, notebook, self.cwd, self._forks)
        except Exception:
            logger.debug("no kernel started ahead for %s", notebook.name, exc_info=True)
            return
        self._kernels.append(kernel)
        self._waiting = (notebook, kernel)

    @contextlib.contextmanager
    def running(
        self, notebook: Path, then: Path | None = None, *, later: bool = False
    ) -> Iterator[StartedKernel | None]:
        """The kernel started for ``notebook`` (``None`` if there is none) while it runs there.

        Starts the kernel of ``then``, the notebook that runs next, once this one is ready; with
        ``later``, when :meth:`start_next` is called instead (a notebook whose heaviest cell
        keeps both cores busy), or on leaving if it was not. Stops this one on leaving.
        """
        kernel = self._take(notebook)
        self._next = then
        if not later:
            # The next kernel's imports would take a core from this one's while it still boots
            # (step 1's kernel boots while the inputs are read and has no step before it).
            if kernel is not None and then is not None:
                kernel.wait_ready()
            self.start_next()
        try:
            yield kernel
        finally:
            if kernel is not None:
                kernel.shut_down()
        self.start_next()

    def start_next(self) -> None:
        """Start the kernel of the notebook that runs next (see :meth:`running`), unless started."""
        then, self._next = self._next, None
        if then is not None:
            self.start(then)

    def _take(self, notebook: Path) -> StartedKernel | None:
        if self._waiting is None or self._waiting[0] != notebook:
            self._stop_waiting()
            return None
        kernel, self._waiting = self._waiting[1], None
        return kernel

    def close(self) -> None:
        """Stop the kernel started ahead, if any, and wait until every kernel started has exited.

        The caller has shut down every kernel it took (:meth:`StartedKernel.shut_down`).
        """
        self._stop_waiting()
        while self._kernels:
            self._kernels.pop().wait_stopped()
        if self._forks is not None:
            self._forks.close()

    def _stop_waiting(self) -> None:
        waiting, self._waiting = self._waiting, None
        if waiting is not None:
            waiting[1].shut_down()
