"""The walkthrough notebook runs end to end (its code cells, in order, in one namespace)."""

import json
from pathlib import Path


def test_walkthrough_runs(capsys):
    notebook = json.loads((Path(__file__).parents[1] / "notebooks" / "walkthrough.ipynb").read_text())
    namespace: dict = {}
    for cell in notebook["cells"]:
        if cell["cell_type"] == "code":
            exec(compile("".join(cell["source"]), "walkthrough", "exec"), namespace)
    out = capsys.readouterr().out
    assert "searched:" in out and "top-1 agreement" in out
