# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
# Both create or refresh .venv through `make venv` (a no-op when setup.cfg has not changed)
# and install the Debian packages below when they are missing.

# Another interpreter gets its own environment: make test PYTHON=python3.12 VENV=.venv312
# Recipes run in bash with pipefail: a stage's fit is piped through sed (its lines prefixed with the stage) and
# must still fail the build when it fails.
SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -c

PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# libgl1/libglib2.0-0: OpenCV (pulled in by MediaPipe) loads them at import;
# espeak-ng: the speech synthesizer of the embedded corpus (libespeak-ng through ctypes);
# chromium, chromium-driver: the headless browser the web demo's test drives (tests/test_web_demo.py).
DEBIAN_PACKAGES := libgl1 libglib2.0-0 espeak-ng chromium chromium-driver ffmpeg
DEMO_DIR := outputs/demo

.PHONY: venv system-deps test lint format demo demo-outputs clean

venv: system-deps $(STAMP)

# The pins install with uv, which downloads and unpacks in parallel: the same 186 distributions as pip in 1:09-1:29
# instead of 1:47-3:42 on 2 cores. The bytecode is compiled as pip compiles it: where PYTHONDONTWRITEBYTECODE is
# set, every process would otherwise compile torch's and Lightning's modules again as it imports them (importing
# torch, Lightning and transformers took 63 s instead of 18 beside another job). Where uv cannot be installed or
# cannot install them (a network only pip is configured for), pip does.
# No cache: PyTorch's CUDA wheels are several GB; a copy in a cache beside the installed files can exhaust a small
# disk (a CI machine's install once failed with ENOSPC).
UV_VERSION := 0.13.9
$(STAMP): setup.cfg pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1; \
	{ $(BIN)/python -m pip install --quiet --no-cache-dir uv==$(UV_VERSION) && \
	  $(BIN)/uv pip install --quiet --no-cache --compile-bytecode --system-certs --python $(BIN)/python -e '.[dev,demo]'; } || { \
		echo "uv could not install the environment; installing it with pip"; \
		$(BIN)/python -m pip install --quiet --no-cache-dir --upgrade pip && \
		$(BIN)/python -m pip install --quiet --no-cache-dir -e '.[dev,demo]'; }
	touch $@

system-deps:
	@missing=$$(for p in $(DEBIAN_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages:" $$missing; \
		if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; \
	fi

# Style, formatting and the layering contracts of pyproject.toml (import-linter: layers import only downwards).
lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

format: venv
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# One pytest-xdist worker per core (files stay whole on one worker: module fixtures and test order hold);
# PYTEST_WORKERS=0 runs the suite in this process.
PYTEST_WORKERS ?= $(shell nproc)
test: venv lint
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) --dist loadfile

CORPUS := $(DEMO_DIR)/corpus
SPEECH_CORPUS := $(DEMO_DIR)/speech_corpus
CKPT := $(DEMO_DIR)/checkpoints
RUNS := outputs/runs
STAGES := facial_motion pose_vqvae pose_mapper motion_vae

# End to end on the embedded default: corpus → the four stages (tiny configs) → the demo video.
# Every step is a file target, so re-running reuses what is already built (delete a checkpoint to retrain it).
# The stages train two at a time (DEMO_JOBS): facial motion beside the pose VQ-VAE, the motion-VAE and the pose
# mapper (which waits for the VQ-VAE), each fit with nproc / DEMO_JOBS torch threads. The tiny networks gain little
# from a second intra-op thread (a facial training step: 113-144 ms on one thread, 112-168 ms on two), so on 2
# cores the four take 9-10 instead of 20 minutes. Their lines interleave, each prefixed with its stage;
# DEMO_JOBS=1 trains them one after the other.
DEMO_JOBS ?= 2
TRAIN_THREADS = $(shell echo $$(( $$(nproc) / $(DEMO_JOBS) > 1 ? $$(nproc) / $(DEMO_JOBS) : 1 )))

demo: venv
	$(MAKE) --no-print-directory -j$(DEMO_JOBS) demo-outputs

# The video first: make starts prerequisites in the order listed, and the stages are the long part.
demo-outputs: $(DEMO_DIR)/demo.mp4 $(DEMO_DIR)/ncc_sheet.png $(DEMO_DIR)/corpus_contact_sheet.png

# The small jobs wait for the corpora (order-only: they are not rebuilt when a corpus is): the corpora's synthesis
# is CPU-bound on both cores and must end before the facial-motion stage, the longest, can start; beside that stage
# the other core has minutes to spare.
DEFERRED := | venv $(CORPUS)/index.json $(SPEECH_CORPUS)/index.json

$(DEMO_DIR)/ncc_sheet.png: $(DEFERRED)
	$(BIN)/python tools/ncc_preview.py --out $(DEMO_DIR)

$(CORPUS)/index.json: | venv
	$(BIN)/talkinghead-data synth --out $(CORPUS)

# Speech and motion without frames (80 s on one core, 540 MB): the facial-motion stage trains on both corpora.
$(SPEECH_CORPUS)/index.json: | venv
	$(BIN)/talkinghead-data synth --out $(SPEECH_CORPUS) --no-frames --clips 1024 --seed 11

$(DEMO_DIR)/corpus_contact_sheet.png: $(CORPUS)/index.json
	$(BIN)/talkinghead-data inspect $(CORPUS) --sheet $@

# A stage: fit its tiny config on the corpus, then copy the best checkpoint to $(CKPT)/<stage>.ckpt.
ROOT = $(CORPUS)
$(CKPT)/%.ckpt: $(CORPUS)/index.json
	OMP_NUM_THREADS=$(TRAIN_THREADS) $(BIN)/talkinghead fit --config lightning_configs/$*_tiny.yaml \
		--data.root '$(ROOT)' 2>&1 | sed -u 's/^/[$*] /'
	$(BIN)/python tools/export_checkpoint.py $(RUNS)/$*_tiny $@

$(CKPT)/facial_motion.ckpt: ROOT = [$(CORPUS), $(SPEECH_CORPUS)]
$(CKPT)/facial_motion.ckpt: $(SPEECH_CORPUS)/index.json

# The mapper trains on the frozen codebook (pose_mapper_tiny.yaml reads $(CKPT)/pose_vqvae.ckpt).
$(CKPT)/pose_mapper.ckpt: $(CKPT)/pose_vqvae.ckpt

$(DEMO_DIR)/speech.wav: $(DEFERRED)
	$(BIN)/python tools/demo_inputs.py $(DEMO_DIR)

$(DEMO_DIR)/demo.mp4: $(foreach s,$(STAGES),$(CKPT)/$(s).ckpt) $(DEMO_DIR)/speech.wav
	$(BIN)/talkinghead-generate --image $(DEMO_DIR)/portrait.png --audio $(DEMO_DIR)/speech.wav \
		--checkpoints $(CKPT) --out $@ --side-by-side

clean:
	rm -rf outputs .pytest_cache .ruff_cache
