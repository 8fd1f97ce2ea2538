# Two entry points (see README): `make demo` runs the notebook sequence on the embedded data and
# writes runs/demo/report.md; `make test` runs the whole test suite. Both create .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: venv demo test lab kernel clean-demo

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/nbn-tutorial notebooks run --profile quick --out runs/demo --report

# Two passes: the tests in parallel (pytest-xdist: one worker per core, each file on one worker, heavy files first),
# then those marked `alone` (a browser, several processes) one at a time; both always run, and the target fails if
# either failed.
test: $(STAMP)
	$(BIN)/python -m pytest -n auto --dist loadfile --no-loadscope-reorder -m "not alone"; parallel=$$?; \
	$(BIN)/python -m pytest -m alone; alone=$$?; \
	test $$parallel -eq 0 && test $$alone -eq 0

kernel: $(STAMP)
	$(BIN)/python -m ipykernel install --sys-prefix --name nbn-tutorial --display-name "Python (nbn-tutorial)"

lab: kernel
	$(BIN)/jupyter lab notebooks/
