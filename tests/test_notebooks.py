"""The notebooks of ``notebooks/`` run end to end and are committed without outputs.

Each notebook is executed headless with nbclient on the session fixtures ``tiny_corpus`` and
``tiny_checkpoints`` (conftest: random weights, so this checks that the notebooks run, not what they show).
The notebooks read their inputs from ``TALKINGHEAD_CORPUS`` / ``TALKINGHEAD_CHECKPOINTS``; notebook 05 also
writes to ``TALKINGHEAD_NOTEBOOK_OUT`` and speaks ``TALKINGHEAD_DEMO_TEXT`` (a short sentence here, for speed);
the kernel uses one intra-op thread (``OMP_NUM_THREADS=1``).
The kernel inherits this process's environment and runs this interpreter (``sys.executable``), whatever other
``python3`` kernelspecs the machine has.
"""

from pathlib import Path

import nbformat
import pytest
from ipykernel.kernelspec import write_kernel_spec
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import KernelManager
from nbclient import NotebookClient

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
NAMES = (
    "01_corpus_inspection",
    "02_audio_to_mesh",
    "03_pose_codebook",
    "04_mesh_to_video",
    "05_full_pipeline",
)


@pytest.fixture(scope="module")
def kernel_specs(tmp_path_factory) -> KernelSpecManager:
    """Kernelspecs holding only ``python3`` = this interpreter with ipykernel."""
    folder = tmp_path_factory.mktemp("kernels")
    write_kernel_spec(folder / "python3")
    return KernelSpecManager(kernel_dirs=[str(folder)])


def test_every_notebook_is_executed_by_this_file():
    assert tuple(sorted(path.stem for path in NOTEBOOKS.glob("*.ipynb"))) == NAMES


@pytest.mark.parametrize("name", NAMES)
def test_notebook_is_stripped(name):
    notebook = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    nbformat.validate(notebook)
    assert notebook.cells[0].cell_type == "markdown"
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type == "code":
            assert cell.outputs == [], f"{name} cell {index} has outputs"
            assert cell.execution_count is None, f"{name} cell {index} has an execution count"


@pytest.mark.parametrize("name", NAMES)
def test_notebook_runs(name, tiny_corpus, tiny_checkpoints, kernel_specs, tmp_path, monkeypatch):
    monkeypatch.setenv("TALKINGHEAD_CORPUS", str(tiny_corpus))
    monkeypatch.setenv("TALKINGHEAD_CHECKPOINTS", str(tiny_checkpoints))
    monkeypatch.setenv("TALKINGHEAD_NOTEBOOK_OUT", str(tmp_path))
    monkeypatch.setenv("TALKINGHEAD_DEMO_TEXT", "Hello there!")
    # One intra-op thread: these small tensors gain nothing from more, and on a busy 2-core machine (tests or a
    # training job beside the kernel) OpenMP threads contending for the cores make the portrait fit ~30× slower.
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    notebook = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    kernel = KernelManager(kernel_name="python3", kernel_spec_manager=kernel_specs)
    client = NotebookClient(
        notebook, km=kernel, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOKS)}}
    )
    client.execute(cleanup_kc=True)  # raises CellExecutionError on the first failing cell
    errors = [out for cell in notebook.cells for out in cell.get("outputs", []) if out.output_type == "error"]
    assert not errors
    if name == "05_full_pipeline":
        assert (tmp_path / "05_demo.mp4").stat().st_size > 0
