# Two commands do all set-up on a fresh machine: `make run` and `make test`.
# Both create .venv and install the project (with its test extra) on first use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test install clean

BFCL_EVAL := bfcl-eval==2026.3.23

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test,bfcl]'
	# bfcl-eval pins numpy 1.26, which jax cannot use: its own dependencies are the `bfcl` extra.
	$(PY) -m pip install --quiet --no-deps $(BFCL_EVAL)
	touch $(STAMP)

install: $(STAMP)

# The main job on its embedded default config; pass Hydra overrides with ARGS="key=value ...".
run: $(STAMP)
	$(PY) -m experiments.run $(ARGS)

# Two pytest-xdist workers: on 2 cores the suite takes 6-8 minutes against 10-11 in one process.
TEST_WORKERS ?= 2

test: $(STAMP)
	$(PY) -m pytest -q -n $(TEST_WORKERS) $(ARGS)

clean:
	rm -rf $(VENV) outputs multirun
