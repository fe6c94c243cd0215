# The two commands of the quick start: `make demo` and `make test`.
# Both create the virtual environment in .venv on first use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test lint setup clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	# torch and torchvision first, pinned to the releases this project is tested with
	$(PY) -m pip install "torch==2.14.1" "torchvision==0.29.1"
	$(PY) -m pip install -e ".[test]"
	# the tracking metrics (IDF1, MOTA) of tests/tracking and benchmarks/video_tracking.py:
	# without its dependencies, which would add opencv-python beside opencv-python-headless
	$(PY) -m pip install --no-deps "trackeval==1.3.0"
	touch $(STAMP)

test: $(STAMP)
	$(PY) -m ruff check mrcnn tests benchmarks tools samples
	# two processes of one thread each (a 2-core CI machine finishes in about 2/3 of the time of
	# one process at two threads), each taking whole files; then the tests that read the
	# machine's load or set torch's threads, alone
	OMP_NUM_THREADS=1 $(PY) -m pytest -q -n 2 --dist loadfile -m "not serial" --durations=30
	$(PY) -m pytest -q -m serial

demo: $(STAMP)
	$(PY) -m mrcnn demo

lint: $(STAMP)
	$(PY) -m ruff check mrcnn tests benchmarks tools samples

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
