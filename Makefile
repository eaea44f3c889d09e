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
	$(PY) -m ruff check src tests benchmarks train.py evaluate.py prepare.py predict.py

test: setup lint
	$(PY) -m pytest

test-all: setup
	$(PY) -m pytest -m ""

# CPU benchmarks (not part of `make test`): every figure is a ratio of two timings taken in one run;
# JSON in outputs/bench/, tables printed. See docs/performance.md. Takes about 55 minutes on 2 cores.
bench: setup
	$(PY) -m benchmarks.evaluation_per_object --model litemedsam
	$(PY) -m benchmarks.evaluation_per_object --model vit_b_random --images 2
	$(PY) -m benchmarks.decoder --model litemedsam
	$(PY) -m benchmarks.clicks --model litemedsam && $(PY) -m benchmarks.clicks --model tiny --images 4
	$(PY) -m benchmarks.everything_mode --model litemedsam --grids 16 32
	$(PY) -m benchmarks.everything_mode --model vit_b --grids 16 32
	$(PY) -m benchmarks.everything_mode --model litemedsam --grids 32 --pred-iou-thresh 0.18 --stability-thresh 0
	$(PY) -m benchmarks.everything_mode --model vit_b --grids 32 --pred-iou-thresh 0.18 --stability-thresh 0
	$(PY) -m benchmarks.attention --model vit_b_random
	$(PY) -m benchmarks.attention --model litemedsam
	$(PY) -m benchmarks.train_step_modes --model litemedsam
	$(PY) -m benchmarks.train_step_modes --model vit_b_random --steps 4
	$(PY) -m benchmarks.cache_precision --images 8
	$(PY) -m benchmarks.embedding_cache --images 8 'evaluation.strategies=[S2,S3,S4,S5,S6]'

clean:
	rm -rf outputs multirun .pytest_cache
