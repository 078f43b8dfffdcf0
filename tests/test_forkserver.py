"""Kernels forked from a server that imported the notebook's modules: they behave as started ones."""

from __future__ import annotations

import os
import time
from pathlib import Path

import nbformat
import papermill as pm
import psutil
import pytest
from jupyter_core.utils import run_sync

from territory_lib.forkserver import (
    ForkedKernelProcess,
    ForkServer,
    can_fork,
    is_kernel_command,
    split_kernel_command,
)
from territory_lib.kernels import KernelsAhead, StartedKernel, start_kernel
from territory_lib.runner import kernel_name
from tests.processes import adopt_orphans, running_kernels

needs_fork = pytest.mark.skipif(not can_fork(), reason="kernels are forked on Linux only")


def _notebook(path: Path, *sources: str) -> Path:
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell(source) for source in sources]
    notebook.metadata["kernelspec"] = {
        "name": kernel_name(),
        "display_name": "Python 3",
        "language": "python",
    }
    nbformat.write(notebook, path)
    return path


def _printed(done: nbformat.NotebookNode, cell: int) -> list[str]:
    return "".join(output.get("text", "") for output in done.cells[cell].outputs).split()


def test_a_kernel_command_splits_into_its_interpreter_and_its_arguments() -> None:
    command = ["/env/bin/python", "-Xfrozen_modules=off", "-m", "ipykernel_launcher", "-f", "/tmp/k.json"]
    assert split_kernel_command(command) == (
        ["/env/bin/python", "-Xfrozen_modules=off"],
        ["-f", "/tmp/k.json"],
    )
    assert split_kernel_command(["/env/bin/R", "--slave", "-e", "IRkernel::main()"]) is None
    assert split_kernel_command(["python", "-m", "ipykernel"]) is None


def test_a_forked_kernel_is_told_from_its_server_by_its_parent() -> None:
    server = ["/env/bin/python", "-m", "territory_lib.forkserver", "5"]
    assert is_kernel_command(["/env/bin/python", "-m", "ipykernel_launcher", "-f", "k.json"], ["make"])
    assert is_kernel_command(server, server)  # forked by the server: a kernel
    assert not is_kernel_command(server, ["/env/bin/territory", "run", "georgia"])  # the server
    assert not is_kernel_command(["/env/bin/python", "-m", "territory_lib"], server)


@needs_fork
@pytest.mark.slow
def test_a_forked_kernel_has_the_notebooks_modules_loaded_its_folder_environment_and_signals(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The server imports the notebook's own module (it records the importing process) before it
    forks; the kernel runs in the notebook's folder with the kernel's environment, leads its own
    process group, and waits for the processes it starts as any kernel does."""
    (tmp_path / "probe_module.py").write_text("import os\nIMPORTED_BY = os.getpid()\n")
    monkeypatch.setenv("TERRITORY_PROBE", "from the runner")
    notebook = _notebook(
        tmp_path / "forked.ipynb",
        "import probe_module",
        "import os, signal, subprocess, sys\n"
        "print(probe_module.IMPORTED_BY != os.getpid(), os.getpgid(0) == os.getpid())\n"
        "print(os.getcwd(), os.environ['TERRITORY_PROBE'].replace(' ', '_'))\n"
        "print(os.environ['OPENBLAS_NUM_THREADS'])\n"
        "print(os.path.basename(sys.path[sys.path.index('') + 1]), sys.path.count(''))\n"
        "import gc\n"
        "print(gc.isenabled(), gc.get_freeze_count() > 10000)\n"
        "print(signal.getsignal(signal.SIGCHLD) == signal.SIG_DFL)\n"
        "print(subprocess.run([sys.executable, '-c', 'raise SystemExit(7)']).returncode)",
    )
    forks = ForkServer()
    kernel = start_kernel(kernel_name(), notebook, tmp_path, forks)
    try:
        assert isinstance(kernel.provisioner.process, ForkedKernelProcess)
        pid = kernel.provisioner.process.pid
        server = psutil.Process(pid).parent()
        assert server is not None and server.pid != os.getpid()
        done = pm.execute_notebook(str(notebook), str(tmp_path / "out.ipynb"), km=kernel, progress_bar=False)
    finally:
        kernel.shut_down()
        kernel.wait_stopped()
        forks.close()
    # The notebook's folder is on the path once, after the standard library, as in a started kernel.
    printed = _printed(done, 1)
    assert printed[:7] == ["True", "True", str(tmp_path), "from_the_runner", "1", "site-packages", "1"]
    # Collections on in the kernel, the server's imports frozen out of them (Python's advice for forks).
    assert printed[7:] == ["True", "True", "True", "7"]
    assert not psutil.pid_exists(pid)
    assert not psutil.pid_exists(server.pid) or server.status() == psutil.STATUS_ZOMBIE


@needs_fork
@pytest.mark.slow
def test_a_forked_kernel_can_be_interrupted_and_one_that_dies_as_it_boots_is_seen_dead(
    tmp_path: Path,
) -> None:
    forks = ForkServer()
    notebook = _notebook(tmp_path / "n.ipynb", "import json")
    kernel = start_kernel(kernel_name(), notebook, tmp_path, forks)
    dying = StartedKernel(forks=forks, modules=[], kernel_name=kernel_name())
    try:
        kernel.wait_ready()
        client = kernel.client()
        client.start_channels()
        client.execute("import time; time.sleep(60)")
        time.sleep(0.5)
        started = time.monotonic()
        run_sync(kernel.interrupt_kernel)()
        reply = run_sync(client.get_shell_msg)(timeout=30)
        assert reply["content"]["status"] == "error" and reply["content"]["ename"] == "KeyboardInterrupt"
        assert time.monotonic() - started < 10
        assert run_sync(kernel.is_alive)()

        run_sync(dying.start_kernel)(extra_arguments=["--IPKernelApp.exec_lines=['import os; os._exit(3)']"])
        deadline = time.monotonic() + 60
        while run_sync(dying.is_alive)() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not run_sync(dying.is_alive)()
    finally:
        kernel.shut_down()
        kernel.wait_stopped()
        run_sync(dying.cleanup_resources)()
        forks.close()


@needs_fork
@pytest.mark.slow
def test_without_a_usable_server_the_kernel_starts_as_a_process_of_its_own(tmp_path: Path) -> None:
    """Another interpreter than the server's, or a server that was closed: jupyter_client's launch."""
    notebook = _notebook(tmp_path / "n.ipynb", "import os\nprint(os.getpid())")
    forks = ForkServer()
    forked = start_kernel(kernel_name(), notebook, tmp_path, forks)
    try:
        assert isinstance(forked.provisioner.process, ForkedKernelProcess)
        forked.wait_ready()
        assert forks.fork(["/other/python"], [], ["-f", "k.json"], str(tmp_path), dict(os.environ)) is None
    finally:
        forked.shut_down()
        forked.wait_stopped()
        forks.close()
    kernel = start_kernel(kernel_name(), notebook, tmp_path, forks)
    pid = kernel.provisioner.pid
    try:
        assert not isinstance(kernel.provisioner.process, ForkedKernelProcess)
        assert "ipykernel_launcher" in psutil.Process(pid).cmdline()
        done = pm.execute_notebook(str(notebook), str(tmp_path / "out.ipynb"), km=kernel, progress_bar=False)
    finally:
        kernel.shut_down()
        kernel.wait_stopped()
    assert _printed(done, 0) == [str(pid)]


@needs_fork
@pytest.mark.slow
def test_a_run_of_kernels_ahead_forks_them_all_from_one_server_and_leaves_nothing_running(
    tmp_path: Path,
) -> None:
    adopt_orphans()
    first = _notebook(tmp_path / "first.ipynb", "import json\nimport os\nprint(os.getppid())")
    second = _notebook(tmp_path / "second.ipynb", "import csv\nimport os\nprint(os.getppid())")
    ahead = KernelsAhead(kernel_name(), tmp_path)
    parents = []
    ahead.start(first)
    for notebook, then in ((first, second), (second, None)):
        with ahead.running(notebook, then=then) as kernel:
            assert kernel is not None
            done = pm.execute_notebook(
                str(notebook), str(tmp_path / "out.ipynb"), km=kernel, progress_bar=False
            )
            parents += _printed(done, 0)
    ahead.close()
    assert len(set(parents)) == 1 and int(parents[0]) != os.getpid()
    assert not running_kernels()
    assert (
        not psutil.pid_exists(int(parents[0]))
        or psutil.Process(int(parents[0])).status() == psutil.STATUS_ZOMBIE
    )


@needs_fork
@pytest.mark.slow
def test_a_forked_kernel_exits_when_its_server_is_killed(tmp_path: Path) -> None:
    """A runner killed outright closes its server's input, and the server exits: its kernels must
    not run on without anyone to stop them."""
    adopt_orphans()  # an orphan's parent is then this process, not init
    forks = ForkServer()
    kernel = start_kernel(kernel_name(), _notebook(tmp_path / "n.ipynb", "import json"), tmp_path, forks)
    kernel.wait_ready()
    pid = kernel.provisioner.process.pid
    server = psutil.Process(pid).parent()
    assert server is not None
    server.kill()
    server.wait(10)
    try:
        psutil.Process(pid).wait(30)
    finally:
        kernel.shut_down()
        kernel.wait_stopped()
        forks.close()
    assert not running_kernels()
