# Two commands do all set-up on a fresh machine:  make demo   and   make test
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# On machines whose pip is capped to local torch files (/etc/xdg/pip), pin to them so nothing
# large is downloaded; elsewhere pyproject.toml's ranges decide.
TORCH_PACKAGES ?= $(shell test -f /etc/xdg/pip/constraints.txt && echo "torch==2.14.1 torchvision==0.29.1")
DEMO_DIR ?= demo-output
export PATH := $(CURDIR)/$(BIN):$(PATH)

.PHONY: venv sandbox-tool demo test lint docs release bench mutation clean

venv: $(VENV)/.installed sandbox-tool

# The grader runs student kernels in bubblewrap sandboxes (a system package). Installed here when
# we are root with apt; otherwise this says the one command to run. Not needed off Linux (the
# grader then needs --no-sandbox, and the sandbox tests skip).
sandbox-tool:
	@if [ "$$(uname -s)" = Linux ] && ! command -v bwrap >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bubblewrap >/dev/null; \
	  else \
	    echo "The grader's sandbox needs bubblewrap. Run:  sudo apt-get install -y bubblewrap  (Fedora: sudo dnf install bubblewrap), then make again." >&2; \
	    exit 1; \
	  fi; \
	fi

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	test -z "$(TORCH_PACKAGES)" || $(BIN)/python -m pip install -q $(TORCH_PACKAGES)
	$(BIN)/python -m pip install -q -e '.[dev]'
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 > /dev/null
	@# The grader's own code is not in the students' package: the venv finds it here, from any folder.
	PRUNING_COURSE="$(CURDIR)" $(BIN)/python -c "import os, pathlib, site; \
	  pathlib.Path(site.getsitepackages()[0], 'pruning-course.pth').write_text(os.environ['PRUNING_COURSE'] + '\n')"
	touch $@

demo: venv
	$(BIN)/python -m autograder demo --out "$(DEMO_DIR)"

lint: venv
	$(BIN)/ruff check helpers autograder tests benchmarks
	PYTHONPATH="$(CURDIR)" $(BIN)/lint-imports

test: lint
	$(BIN)/python -m pytest -q

# The documentation site (Sphinx + MyST) in docs/_build/html; any warning fails the build.
docs: venv
	$(BIN)/sphinx-build -W --keep-going -q -b html docs docs/_build/html

# Benchmarks (not tests): writes benchmarks/results.json and benchmarks/RESULTS.md.
bench: venv
	$(BIN)/python -m benchmarks.run

# Mutation testing of the grading decisions (slow; not part of make test): score into benchmarks/RESULTS.md.
mutation: venv
	$(BIN)/python -m pip install -q mutmut==3.8.1
	$(BIN)/python -m benchmarks.mutation

# Regenerate the committed release notebook from the source (commit the result), then write the
# student bundle (dist/student: release notebook, helpers wheel, model; `python -m autograder release --help`).
# MODEL=path/to/pruning-model.pt names the model trained on CINIC-10 (python -m autograder train); without it,
# the command stops and says how to make one.
release: venv
	cd assignment && nbgrader generate_assignment pruning --force
	$(BIN)/python -m autograder release $(if $(MODEL),--model "$(MODEL)")

clean:
	rm -rf $(VENV) "$(DEMO_DIR)" .pytest_cache .ruff_cache mutants
