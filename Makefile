# nashax: `make verify` (theory checks) and `make test` (the whole suite).
# Both create the virtual environment .venv on first use.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: verify verify-fast test bench venv clean

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
	$(PY) -m pytest -n 2 -q

bench: $(STAMP)
	@for b in benchmarks/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

clean:
	rm -rf $(VENV) runs .pytest_cache
