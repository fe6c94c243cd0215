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
	$(PY) -m pytest -q --durations=30

demo: $(STAMP)
	$(PY) -m mrcnn demo

lint: $(STAMP)
	$(PY) -m ruff check mrcnn tests benchmarks tools samples

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
