"""Tag every code cell of the numbered notebooks for `pytest --nbval`: a cell marked
`# NBVAL_CHECK_OUTPUT` is compared with its committed output; every other code cell's output depends
on the data or the run, so it gets the tag `nbval-ignore-output` (it still has to run without error).

`python tools/tag_notebooks.py` rewrites the tags in place; `--check` only says which cells lack them.
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
CHECKED, IGNORE = "# NBVAL_CHECK_OUTPUT", "nbval-ignore-output"


def wanted_tags(cell) -> list[str]:
    """Return the tags `cell` should carry: its own, with `nbval-ignore-output` added or removed."""
    tags = [tag for tag in cell.metadata.get("tags", []) if tag != IGNORE]
    return tags if CHECKED in cell.source else [*tags, IGNORE]


def main(argv: list[str]) -> int:
    check = "--check" in argv
    wrong = []
    for path in sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb")):
        notebook = nbformat.read(path, as_version=4)
        changed = False
        for i, cell in enumerate(notebook.cells):
            if cell.cell_type != "code":
                continue
            tags = wanted_tags(cell)
            if tags != cell.metadata.get("tags", []):
                wrong.append(f"{path.name} cell {i}")
                cell.metadata["tags"] = tags
                changed = True
        if changed and not check:
            nbformat.write(notebook, path)
    if check and wrong:
        print("Cells without the right nbval tags (run python tools/tag_notebooks.py):", ", ".join(wrong))
        return 1
    print(f"{len(wrong)} cell(s) {'to tag' if check else 'tagged'}.")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
