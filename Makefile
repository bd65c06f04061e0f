# Everyday commands. `make demo` is the README's first command, `make test` its second.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: demo test lint format bench gpu-check system-deps clean

# A venv with the package (and, for tests, the dev extra); redone when pyproject.toml changes.
# `make demo` installs only what the main job needs (the package's own dependencies: SQLite
# stores, embedded Ray); the dev and server extras (pytest, ruff, the MLflow auth server,
# optuna-dashboard, the PostgreSQL drivers) only `make test`, `make lint` and the image.
# tools/install.py installs with uv from pip's own indexes (a third of pip's time; README.md,
# "Two commands") and falls back to pip. CBAM's CPU kernels are built then too (cached per
# CPU), so that no trial pays the build.
INSTALL := $(PYTHON) tools/install.py $(VENV)

$(BIN)/.installed: pyproject.toml tools/install.py
	$(INSTALL) -e .
	$(BIN)/python -m ablation.attention
	touch $@

# The tests also start the cluster stack's servers natively (MLflow basic-auth, optuna-dashboard).
$(BIN)/.installed-dev: pyproject.toml tools/install.py
	$(INSTALL) -e '.[dev,server]'
	$(BIN)/python -m ablation.attention
	touch $@ $(BIN)/.installed

# The main job: a small real study on the embedded data, then its summary.
demo: $(BIN)/.installed
	$(BIN)/ablation run experiments/quickstart.yaml

# Debian packages the tests use: headless Chromium for the dashboard, pdflatex for the LaTeX
# export, pdftoppm for the paper figures. Installed once, as root; without root the tests that
# need them say so and skip.
SYSTEM_PACKAGES := chromium texlive-latex-recommended poppler-utils
system-deps:
	@command -v chromium >/dev/null 2>&1 && command -v pdflatex >/dev/null 2>&1 && \
	  command -v pdftoppm >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	      --no-install-recommends $(SYSTEM_PACKAGES) >/dev/null; \
	  else echo "install Debian's $(SYSTEM_PACKAGES) for the browser and LaTeX tests"; fi; }

# Two pytest workers (pytest-xdist): the tests that start clusters, servers or study processes
# run one after another on one of them, never two at once (tests/helpers.py: SERIAL_TESTS),
# the rest on whichever is free. `make test TEST_WORKERS=0` runs everything in one process.
TEST_WORKERS ?= 2
test: $(BIN)/.installed-dev system-deps
	$(BIN)/ruff check ablation tests benchmarks tools
	$(BIN)/python -m pytest -q --durations=15 -n $(TEST_WORKERS) --dist loadgroup

lint: $(BIN)/.installed-dev
	$(BIN)/ruff check ablation tests benchmarks tools
	$(BIN)/ruff format --check ablation tests benchmarks tools

format: $(BIN)/.installed-dev
	$(BIN)/ruff format ablation tests benchmarks tools
	$(BIN)/ruff check --fix ablation tests benchmarks tools

bench: $(BIN)/.installed-dev
	$(INSTALL) -e '.[dev,bench]'
	$(BIN)/python benchmarks/cbam_overhead.py
	$(BIN)/python benchmarks/study_overhead.py

# The device check (benchmarks/README.md): the machine's own python3, no venv (it has no Ray).
gpu-check:
	python3 benchmarks/gpu_check.py

clean:
	rm -rf mlflow.db optuna.db mlartifacts mlruns ray_results .pytest_cache
