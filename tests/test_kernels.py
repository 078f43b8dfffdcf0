"""Kernels started one step ahead: what they import first, and that they run the notebook and stop."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import nbformat
import papermill as pm
import psutil
import pytest

from territory_lib.kernels import KernelsAhead, notebook_modules, start_kernel
from territory_lib.runner import kernel_name
from tests.processes import adopt_orphans, running_kernels


def _notebook(path: Path, *sources: str, markdown: str = "import not_a_module") -> Path:
    notebook = nbformat.v4.new_notebook()
    code = [nbformat.v4.new_code_cell(source) for source in sources]
    notebook.cells = [nbformat.v4.new_markdown_cell(markdown), *code]
    notebook.metadata["kernelspec"] = {"name": kernel_name(), "display_name": "Python", "language": "python"}
    nbformat.write(notebook, path)
    return path


def _kernels_of_this_process() -> list[psutil.Process]:
    adopt_orphans()
    return running_kernels()


def test_the_modules_of_a_notebook_are_its_top_level_imports(tmp_path: Path) -> None:
    notebook = _notebook(
        tmp_path / "n.ipynb",
        "import pandas as pd\nimport numpy, json",
        "from territory_lib import maps, market\nfrom os.path import *",
        "%matplotlib inline\nimport email",  # a magic: not Python, skipped
        "from . import sibling\n\ndef later():\n    import csv\n",  # relative and nested: not listed
        "import pandas",
    )
    assert notebook_modules(notebook) == [
        "pandas",
        "numpy",
        "json",
        "territory_lib",
        "territory_lib.maps",
        "territory_lib.market",
        "os.path",
    ]


def test_importing_ahead_brings_what_library_modules_import_when_used_and_skips_failures() -> None:
    probe = (
        "import sys\n"
        "import territory_lib.resources\n"
        "print('territory_lib.routes' in sys.modules)\n"
        "from territory_lib.kernels import import_ahead\n"
        "import_ahead('no_such_module_anywhere', 'territory_lib.resources', 'territory_lib.resources.none')\n"
        "print('territory_lib.routes' in sys.modules)\n"
    )
    printed = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    # Importing the module alone leaves the route model out (steps that never estimate travel
    # skip numba); importing it ahead brings it in.
    assert printed.split() == ["False", "True"]


def test_imports_ahead_run_without_collections_and_leave_the_collector_as_they_found_it(
    tmp_path: Path,
) -> None:
    """Collecting while imports make objects only scans them again and again (0.6 s of step 1's
    2.5 s); afterwards the kernel collects as usual, and a process that had paused it keeps it so."""
    (tmp_path / "records_gc.py").write_text("import gc\nCOLLECTING = gc.isenabled()\n")
    probe = (
        "import gc, sys\n"
        f"sys.path.insert(0, {str(tmp_path)!r})\n"
        "from territory_lib.kernels import import_ahead\n"
        "import_ahead('records_gc')\n"
        "import records_gc\n"
        "print(records_gc.COLLECTING, gc.isenabled())\n"
        "gc.disable()\n"
        "import_ahead('json')\n"
        "print(gc.isenabled())\n"
    )
    printed = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert printed.split() == ["False", "True", "False"]


def test_step_1s_kernel_imports_neither_the_validator_nor_all_of_statsmodels() -> None:
    """Step 1's kernel has no step before it to hide its imports: it loads the GLM's modules, not
    ``statsmodels.api`` (0.3 s more), no pandera (the runner validated the inputs), and no
    networkx (it draws no territories)."""
    from territory_lib.steps import STEPS

    probe = (
        "import sys\n"
        "from territory_lib.kernels import import_ahead, notebook_modules\n"
        "from pathlib import Path\n"
        f"import_ahead(*notebook_modules(Path({str(STEPS[0].path)!r})))\n"
        "wanted = ('pandera', 'statsmodels.api', 'esda', 'statsmodels.genmod', 'networkx')\n"
        "print(sorted(m for m in wanted if m in sys.modules))\n"
    )
    printed = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert printed.strip() == "['esda', 'statsmodels.genmod']"


@pytest.mark.slow
def test_a_kernel_started_ahead_runs_its_notebook_with_the_modules_loaded_and_then_stops(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENBLAS_NUM_THREADS", raising=False)
    monkeypatch.setenv("MKL_NUM_THREADS", "3")  # the user's own setting wins
    notebook = _notebook(
        tmp_path / "ahead.ipynb",
        "import os, sys\nimport territory_lib.resources",
        "print('territory_lib.routes' in sys.modules, '_k' in dir())",
        "print(os.environ['OPENBLAS_NUM_THREADS'], os.environ['MKL_NUM_THREADS'])",
    )
    kernel = start_kernel(kernel_name(), notebook, tmp_path)
    pid = kernel.provisioner.pid
    sockets = Path(kernel.ip).parent
    try:
        done = pm.execute_notebook(str(notebook), str(tmp_path / "out.ipynb"), km=kernel, progress_bar=False)
    finally:
        kernel.shut_down()
        kernel.wait_stopped()
    # The route model was imported before the first cell (the notebook itself never imports it),
    # and the warm-up left no name behind; the notebook's cells are numbered from 1 as usual.
    assert done.cells[1].outputs == []  # nothing of the warm-up shows in the notebook
    assert done.cells[2].outputs[0]["text"].strip() == "True False"
    assert [cell.execution_count for cell in done.cells[1:]] == [1, 2, 3]
    # Math libraries on one thread, unless the environment says otherwise.
    assert done.cells[3].outputs[0]["text"].split() == ["1", "3"]
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    assert not sockets.exists()


def test_a_kernel_is_ready_once_it_is_idle_after_answering_and_asked_again_if_iopub_missed_it() -> None:
    """Ready means the kernel has replied and then said "idle" for that request on IOPub (it is
    done with it: a shutdown now interrupts nothing); IOPub that is not yet connected loses the
    status messages, and the client asks again."""
    from queue import Empty

    from jupyter_core.utils import run_sync

    from territory_lib.kernels import ReadyClient

    class Channel:
        def __init__(self, messages: list) -> None:
            self.messages = messages

        async def get_msg(self, timeout: float | None = None) -> dict:
            message = self.messages.pop(0)
            if message is None:  # nothing came within the timeout
                raise Empty
            return message

    def status(state: str, parent: str) -> dict:
        return {
            "msg_type": "status",
            "content": {"execution_state": state},
            "parent_header": {"msg_id": parent},
        }

    def reply(parent: str) -> dict:
        content = {"protocol_version": "5.3"}
        return {"msg_type": "kernel_info_reply", "content": content, "parent_header": {"msg_id": parent}}

    class Scripted(ReadyClient):
        shell_channel = Channel([reply("r1"), reply("r2")])
        # r1's status never arrives (IOPub not connected yet); r2's idle comes after another's.
        iopub_channel = Channel(
            [None, status("busy", "r2"), status("idle", "other"), status("idle", "r2"), "left"]
        )

        def kernel_info(self) -> str:
            asked.append(f"r{len(asked) + 1}")
            return asked[-1]

        async def _async_is_alive(self) -> bool:
            return True

    asked: list[str] = []
    client = Scripted()
    run_sync(client.wait_for_ready)(timeout=5)
    assert asked == ["r1", "r2"]
    assert Scripted.iopub_channel.messages == ["left"]  # nothing read past the idle status


@pytest.mark.slow
def test_waiting_for_a_kernel_that_dies_as_it_boots_says_so() -> None:
    from jupyter_core.utils import run_sync

    from territory_lib.kernels import LocalKernelManager, ReadyClient

    manager = LocalKernelManager(kernel_name=kernel_name())
    run_sync(manager.start_kernel)(extra_arguments=["--IPKernelApp.exec_lines=['import os; os._exit(3)']"])
    client = manager.client()
    assert isinstance(client, ReadyClient)
    client.start_channels()
    try:
        with pytest.raises(RuntimeError, match="Kernel died"):
            run_sync(client.wait_for_ready)(timeout=60)
    finally:
        client.stop_channels()
        run_sync(manager.cleanup_resources)()


@pytest.mark.slow
def test_a_kernel_started_for_another_notebook_or_never_taken_is_stopped(tmp_path: Path) -> None:
    first = _notebook(tmp_path / "first.ipynb", "import json")
    second = _notebook(tmp_path / "second.ipynb", "import csv")
    before = {kernel.pid for kernel in _kernels_of_this_process()}
    ahead = KernelsAhead(kernel_name(), tmp_path)
    ahead.start(first)
    with ahead.running(second, then=first) as kernel:
        assert kernel is None  # the kernel waiting was started for another notebook: stopped
    ahead.close()  # the one started for `first`, never run
    assert {kernel.pid for kernel in _kernels_of_this_process()} <= before


@pytest.mark.slow
def test_the_next_kernel_starts_once_this_one_has_done_its_imports(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two kernels importing at once would each take a core: step 1's kernel, which has no step
    before it to boot during, would be slowed by step 2's."""
    import time

    import territory_lib.kernels as kernels

    (tmp_path / "slow_to_import.py").write_text(
        "import pathlib, time\ntime.sleep(1.5)\npathlib.Path('imported').write_text(repr(time.time()))\n"
    )
    first = _notebook(tmp_path / "first.ipynb", "import slow_to_import")
    second = _notebook(tmp_path / "second.ipynb", "import csv")
    started: dict[str, float] = {}
    real_start = kernels.start_kernel

    def recorded(name: str, notebook: Path, cwd: Path, *forks: object) -> kernels.StartedKernel:
        started[notebook.name] = time.time()
        return real_start(name, notebook, cwd, *forks)

    monkeypatch.setattr(kernels, "start_kernel", recorded)
    ahead = KernelsAhead(kernel_name(), tmp_path)
    ahead.start(first)
    with ahead.running(first, then=second) as kernel:
        assert kernel is not None
    ahead.close()
    assert started["second.ipynb"] >= float((tmp_path / "imported").read_text())


@pytest.mark.slow
def test_a_notebook_can_start_the_next_kernel_later(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Step 2 starts step 3's kernel after its design cell (the plan on one core, the scenarios on
    the other): not at the start, once only, and on leaving at the latest, but not after a failure."""
    import territory_lib.kernels as kernels

    first = _notebook(tmp_path / "first.ipynb", "import json")
    second = _notebook(tmp_path / "second.ipynb", "import csv")
    started: list[str] = []
    real_start = kernels.start_kernel

    def recorded(name: str, notebook: Path, cwd: Path, *forks: object) -> kernels.StartedKernel:
        started.append(notebook.name)
        return real_start(name, notebook, cwd, *forks)

    monkeypatch.setattr(kernels, "start_kernel", recorded)
    ahead = KernelsAhead(kernel_name(), tmp_path)
    ahead.start(first)
    with ahead.running(first, then=second, later=True) as kernel:
        assert kernel is not None
        assert started == ["first.ipynb"]  # not yet
        ahead.start_next()
        ahead.start_next()
        assert started == ["first.ipynb", "second.ipynb"]  # once
    with ahead.running(second, then=first, later=True):
        pass
    assert started[-1] == "first.ipynb"  # on leaving, as it was never asked for
    with pytest.raises(RuntimeError), ahead.running(first, then=second, later=True):
        raise RuntimeError("the step failed")
    assert started == ["first.ipynb", "second.ipynb", "first.ipynb"]  # none after a failure
    ahead.close()


def test_step_2_starts_the_next_kernel_after_the_cell_that_designs_the_plan() -> None:
    from territory_lib.kernels import NEXT_KERNEL_TAG, has_tagged_cell
    from territory_lib.steps import STEPS

    tagged = [
        "".join(cell["source"])
        for step in STEPS
        for cell in json.loads(step.path.read_text())["cells"]
        if NEXT_KERNEL_TAG in cell["metadata"].get("tags", [])
    ]
    assert len(tagged) == 1 and "design_plan(" in tagged[0] and "ScenariosAhead(" in tagged[0]
    assert [has_tagged_cell(step.path, NEXT_KERNEL_TAG) for step in STEPS] == [
        False,
        True,
        False,
        False,
        False,
    ]


@pytest.mark.slow
def test_kernels_started_and_stopped_leave_no_file_descriptors_behind(tmp_path: Path) -> None:
    """Each kernel stopped in the background left its thread's event loop open (three file
    descriptors); a test session or a long-lived process running many markets ran out of them."""
    notebook = _notebook(tmp_path / "n.ipynb", "import json")
    process = psutil.Process()
    counts = []
    for _ in range(4):
        ahead = KernelsAhead(kernel_name(), tmp_path)
        ahead.start(notebook)
        with ahead.running(notebook) as kernel:
            assert kernel is not None
            kernel.wait_ready()
        ahead.close()
        counts.append(process.num_fds())
    assert counts[-1] == counts[0], counts


@pytest.mark.slow
def test_a_failed_step_leaves_no_kernel_running(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Step 1 fails while step 2's kernel, started ahead, boots: the run stops both."""
    from territory_lib import runner
    from territory_lib.paths import REPORTS_ENV_VAR

    monkeypatch.setenv(REPORTS_ENV_VAR, str(tmp_path / "reports"))
    before = {kernel.pid for kernel in _kernels_of_this_process()}
    started: list[int] = []

    def failing(step, params, folder, run_date, kernel, **kwargs):
        started.append(kernel.provisioner.pid)
        return "ValueError: the step failed"

    monkeypatch.setattr(runner, "_execute", failing)
    run = runner.run_market("georgia", steps=[1, 2], run_date="2026-11-27", progress=lambda line: None)
    assert not run.ok and "the step failed" in (run.failure or "")
    assert len(started) == 1  # step 1 ran in the kernel started for it
    left = {kernel.pid for kernel in _kernels_of_this_process()} - before
    assert not left
