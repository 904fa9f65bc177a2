"""`pytest --nbval notebooks/` as users type it: the notebooks run in the smoke profile (seconds a
notebook, on the demo data unless TTL_DATA or data/ttl says otherwise) when no TTL_PROFILE is set.

Cells whose output depends on the data or the run carry the tag `nbval-ignore-output`; the cells
marked `# NBVAL_CHECK_OUTPUT` print what holds on any data (columns, shapes, invariants), and
their committed output is compared with the fresh one.
"""

import os

os.environ.setdefault("TTL_PROFILE", "smoke")
os.environ.setdefault("TQDM_DISABLE", "1")  # progress bars would be outputs to compare
