"""The walkthrough notebook runs top to bottom (in its small mode)."""

import os

import nbformat
from nbclient import NotebookClient

NOTEBOOK = os.path.join(os.path.dirname(__file__), "..", "..", "notebooks", "walkthrough.ipynb")


def test_walkthrough_notebook_runs(monkeypatch):
    monkeypatch.setenv("ORCHESTRA_NOTEBOOK_SMALL", "1")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(nb, timeout=300, kernel_name="python3",
                   resources={"metadata": {"path": os.path.dirname(NOTEBOOK)}}).execute()
    outputs = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert "'turn_accuracy': 1.0" in outputs  # the oracle policy is perfect under the protocol
    assert "Missing required parameter" in outputs  # the bad call got its specific error
