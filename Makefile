# Two commands for a fresh clone: `make test` and `make figures`. Both set up .venv first.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup test unit quick notebooks lint figures slides data demo-figure clean

setup: $(STAMP)

# TORCH_INDEX=https://download.pytorch.org/whl/cpu installs PyTorch's CPU-only build first: about 4 GB
# smaller (the CUDA build's NVIDIA libraries and Triton take 4.1 GB of a 6.5 GB .venv here).
TORCH_INDEX ?=

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else "Python >= 3.10 is needed: run make with PYTHON=python3.11")'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	@if [ -n "$(TORCH_INDEX)" ]; then $(PY) -m pip install --no-compile torch torchvision --index-url $(TORCH_INDEX); else \
		echo "Installing PyTorch as pip resolves it (with CUDA on Linux: about 5 GB). Without a GPU, the CPU-only build" \
		     "is about 4 GB smaller: make setup TORCH_INDEX=https://download.pytorch.org/whl/cpu"; fi
	$(PY) -m pip install --no-compile -e '.[dev,lite]'
	@# pip compiles the installed files to bytecode one at a time; compileall does it on every core (about
	@# 40 s less on 2). A file that does not compile is skipped, as pip skips it; imports read it from source.
	$(PY) -m compileall -q -j 0 $(VENV)/lib > /dev/null || true
	touch $(STAMP)

test: unit notebooks

# The unit tests run in TEST_WORKERS processes (pytest-xdist), each with one PyTorch thread (tests/conftest.py):
# most tests use one core, so on 2 cores this halves the time. TEST_WORKERS=0 runs them in this process.
TEST_WORKERS ?= 2

unit: setup
	$(PY) -m pytest -n $(TEST_WORKERS)

# the edit-test loop: everything but the tests marked slow (training, export, several processes)
quick: setup
	$(PY) -m pytest -m "not slow"

# nbval in two processes (tools/nbval_groups.py): the notebooks that share trained runs or results in one,
# in order, the others in the second. NOTEBOOK_WORKERS=1 runs them all in order in one process.
NOTEBOOK_WORKERS ?= 2

notebooks: setup
	@if ls notebooks/[0-9]*.ipynb >/dev/null 2>&1; then \
		TTL_PROFILE=smoke TQDM_DISABLE=1 $(PY) tools/nbval_groups.py --workers $(NOTEBOOK_WORKERS) notebooks && \
		$(PY) -m ttl_utils.present.slides --figures artifacts/figures-smoke; \
	else echo "No notebooks yet: nothing for nbval to run."; fi

lint: setup
	$(PY) -m ruff check ttl_utils tests benchmarks tools notebooks

figures: setup
	$(PY) tools/run_notebooks.py

slides: setup
	$(PY) -m ttl_utils.present.slides $(if $(FIGURES),--figures $(FIGURES))

data: setup
	$(PY) -m ttl_utils download

demo-figure: setup
	$(PY) -m ttl_utils demo --n-pairs 12 --figure figures/demo_pairs

clean:
	rm -rf $(VENV) artifacts .pytest_cache
