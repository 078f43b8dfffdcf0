"""The papermill engine of ``territory run``: nbclient's, saving the notebook once, not at every cell.

papermill's default engine writes the whole output notebook (0.5-0.7 MB with its maps) before
and after every cell, between one cell and the next: 0.2-0.4 s of a small market's step. This
engine writes it when the run starts and when it ends. A notebook whose cell fails is written
with the error by papermill as before; one whose kernel dies is written as far as it ran.
It also tells the runner when a cell is done (``cell_done``), so that a cell tagged
:data:`territory_lib.kernels.NEXT_KERNEL_TAG` can start the next step's kernel once it has run.
"""

from __future__ import annotations

from collections.abc import Callable

from nbformat import NotebookNode
from papermill.engines import NBClientEngine, NotebookExecutionManager, papermill_engines

#: The name papermill knows this engine by (``engine_name=``).
ENGINE_NAME = "territory-save-once"


class SaveOnceEngine(NBClientEngine):
    """nbclient's engine with the per-cell saves turned off while the cells run."""

    @classmethod
    def execute_managed_notebook(
        cls,
        nb_man: NotebookExecutionManager,
        kernel_name: str,
        cell_done: Callable[[NotebookNode], None] | None = None,
        **kwargs,
    ):
        """Run the cells with no output path; restore it if the run breaks off, so it is saved.

        ``cell_done`` is called with each cell once it has run (a failed one too: the run stops).
        """
        if cell_done is not None:
            complete = nb_man.cell_complete

            def cell_complete(cell: NotebookNode, cell_index: int | None = None, **details) -> None:
                complete(cell, cell_index=cell_index, **details)
                cell_done(cell)

            nb_man.cell_complete = cell_complete
        output_path, nb_man.output_path = nb_man.output_path, None
        try:
            return super().execute_managed_notebook(nb_man, kernel_name, **kwargs)
        except BaseException:
            nb_man.output_path = output_path
            raise


papermill_engines.register(ENGINE_NAME, SaveOnceEngine)
