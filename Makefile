# Two entry points do everything on a fresh machine: `make train` and `make test`.
# Set-up is idempotent: each step leaves a stamp in .venv and is skipped when its stamp is newer
# than what it depends on.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
MRICRON := /usr/share/mricron/templates/ch2.nii.gz

export NO_ALBUMENTATIONS_UPDATE := 1
export PYTHONUNBUFFERED := 1

.PHONY: setup train test test-all lint bench clean

setup: $(VENV)/.installed $(MRICRON)

$(PY):
	$(PYTHON) -m venv $(VENV)

# torch first and pinned, so that no later requirement can pull another build.
$(VENV)/.torch: | $(PY)
	$(PY) -m pip install --quiet torch==2.14.1 torchvision==0.29.1
	touch $@

$(VENV)/.installed: pyproject.toml $(VENV)/.torch
	$(PY) -m pip install --quiet -e '.[dev]'
	$(PY) -m pip install --quiet --no-deps stardist==0.9.2
	touch $@

# Real data for the default run: Colin27 T1 MRI and the AAL atlas (Debian package mricron-data).
$(MRICRON):
	@if [ "$$(id -u)" = 0 ]; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mricron-data; \
	else \
		echo "mricron-data is missing: run 'sudo apt-get install mricron-data' (needs root)" >&2; exit 1; \
	fi

train: setup
	$(PY) train.py

lint: setup
	$(PY) -m ruff check src tests benchmarks train.py evaluate.py

test: setup lint
	$(PY) -m pytest

test-all: setup
	$(PY) -m pytest -m ""

bench: setup
	$(PY) benchmarks/train_step_modes.py
	$(PY) benchmarks/embedding_cache.py --images 8 'strategies=[S2,S3,S4,S5,S6]'

clean:
	rm -rf outputs multirun .pytest_cache
