# Two commands: `make demo` (set everything up and show it working on a local cluster) and
# `make test` (the full suite, exactly as CI runs it). Debian bookworm, as root.
.PHONY: help demo test unit lint bench down

VENV ?= .venv-demo
PY := $(VENV)/bin/python

help:
	@echo "make demo   set up (apt, venv, local SLURM cluster, images) and run the demo"
	@echo "make test   the full test suite, as CI runs it (bash .ci/run)"
	@echo "make unit   the fast unit tier only (pytest -m 'not e2e')"
	@echo "make lint   ruff"
	@echo "make bench  every benchmark (bench/run_all.py --quick); the cluster must be up"
	@echo "make down   tear the local cluster down (tests/cluster/down.sh)"

demo:
	bash scripts/demo.sh

test:
	bash .ci/run

# a venv with the test extra (the demo's, when `make demo` made one)
$(VENV)/.test-extra:
	test -x $(PY) || python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q '.[test]'
	touch $@

unit: $(VENV)/.test-extra
	PYTHONPATH=$(CURDIR) $(PY) -m pytest -q -m "not e2e" -p no:cacheprovider

lint: $(VENV)/.test-extra
	$(VENV)/bin/ruff check .

bench:
	PYTHONPATH=$(CURDIR) $(PY) bench/run_all.py --quick

down:
	bash tests/cluster/down.sh
