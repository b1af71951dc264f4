# microemo-jax developer commands. `make test` is what CI runs (.ci/run).
PYTHON ?= $(shell command -v python3.12 || echo python3)
VENV := .venv
STAMP := $(VENV)/.installed
REF_VENV := .venv-ref
REF_PYTHON ?= $(shell command -v python3.11 || ls /root/.pyenv/versions/3.11*/bin/python3 2>/dev/null | head -1 || echo python3.11)
PYTEST_ARGS ?=

.PHONY: venv test demo demo-rl ablations serve fixtures clean-venv beam-venv test-beam

venv: $(STAMP)

# Re-install only when the lock file or the package metadata changed.
$(STAMP): requirements.lock setup.cfg pyproject.toml
	@test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	@$(VENV)/bin/python -c 'import sys; assert sys.version_info[:2] >= (3, 12), f"Python >= 3.12 needed, found {sys.version}"'
	$(VENV)/bin/pip install -q -r requirements.lock  # all extras included (web: gradio; test: pytest, playwright)
	$(VENV)/bin/pip install -q --no-deps -e .
	@touch $(STAMP)

# The suite on TEST_WORKERS processes (pytest-xdist); --dist loadfile keeps a file's tests, and the programs and
# fixtures they share, in one worker. TEST_WORKERS=0: one process.
TEST_WORKERS ?= 2
test: venv
	$(VENV)/bin/python -m ruff check .
	$(VENV)/bin/python -m pytest tests -n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

# The demo: generate + prepare the demo corpus (first time), train stage 1 then stage 2 on the CPU,
# print the losses and draw them into $(DEMO_DIR)/loss_curves.png, then score the model on the held-out
# split against the majority-label baseline and explain one held-out clip (demo_report).
DEMO_DIR ?= runs/demo
demo: venv
	$(VENV)/bin/python -m microemo_jax.train --config configs/emer.py:demo --workdir $(DEMO_DIR)/stage1
	$(VENV)/bin/python -m microemo_jax.train --config configs/emer.py:demo --workdir $(DEMO_DIR)/stage2 \
		--config.stage=2 --config.init.params=$(DEMO_DIR)/stage1/params
	$(VENV)/bin/python -m microemo_jax.curves $(DEMO_DIR)/stage1 $(DEMO_DIR)/stage2 --out $(DEMO_DIR)/loss_curves.png
	$(VENV)/bin/python -m microemo_jax.demo.report $(DEMO_DIR)/stage2/params --out $(DEMO_DIR)/report

# Stage 3 (GRPO rewarded by the emotion metrics; configs/emer.py's rl section) on the model `make demo` trained,
# its reward curves ($(DEMO_DIR)/reward_curves.png), then stage 2 and stage 3 answering the same held-out clips, for
# both questions: $(DEMO_DIR)/rl_eval*/comparison.md (scores, the paired difference with its 95% interval,
# before/after explanations). RL_ARGS: more --config.rl.* overrides.
RL_ARGS ?=
demo-rl: venv
	$(VENV)/bin/python -m microemo_jax.train --config configs/emer.py:demo --workdir $(DEMO_DIR)/stage3 \
		--config.stage=3 --config.init.params=$(DEMO_DIR)/stage2/params $(RL_ARGS)
	$(VENV)/bin/python -m microemo_jax.curves $(DEMO_DIR)/stage3 --rl-out $(DEMO_DIR)/reward_curves.png
	$(VENV)/bin/python tools/demo_rl.py --stage2 $(DEMO_DIR)/stage2/params --stage3 $(DEMO_DIR)/stage3/params \
		--out $(DEMO_DIR)/rl_eval
	$(VENV)/bin/python tools/demo_rl.py --stage2 $(DEMO_DIR)/stage2/params --stage3 $(DEMO_DIR)/stage3/params \
		--out $(DEMO_DIR)/rl_eval_ov --question ov

# The ablations of the demo (docs/ablations.md): full model, no micro-expression branch, no global-local attention,
# no timestamp text, no audio, faces shuffled; each trained as `make demo` trains, scored per scenario group with
# 95% intervals and the stated-time error; resumable. ABLATION_ARGS: e.g. --seed 1 --clips 320 --steps 100.
ABLATIONS_DIR ?= runs/ablations
ABLATION_ARGS ?=
ablations: venv
	$(VENV)/bin/python tools/ablations.py --out $(ABLATIONS_DIR) $(ABLATION_ARGS)

# The web demo of the model `make demo` trained, on http://127.0.0.1:7860/ (SERVE_ARGS: e.g. --port 8080).
SERVE_ARGS ?=
serve: venv
	$(VENV)/bin/python -m microemo_jax.serve --params $(DEMO_DIR)/stage2/params $(SERVE_ARGS)

# Reference fixtures: PyTorch + transformers on Python 3.11 (never a dependency of the package).
fixtures:
	@test -x $(REF_VENV)/bin/python || $(REF_PYTHON) -m venv $(REF_VENV)
	$(REF_VENV)/bin/pip install -q torch==2.13.0 $$(grep -E '^(transformers|tokenizers|safetensors|huggingface.hub)==' requirements.lock) numpy
	$(REF_VENV)/bin/python tools/make_reference_fixtures.py

# The Apache Beam extra (prepare --runner beam): apache-beam 2.77 needs numpy<2.5, protobuf<7, pyarrow<26 and
# python-dateutil<3, so it cannot share requirements.lock; it gets its own environment from requirements-beam.lock.
BEAM_VENV := .venv-beam
BEAM_STAMP := $(BEAM_VENV)/.installed
beam-venv: $(BEAM_STAMP)
$(BEAM_STAMP): requirements-beam.lock setup.cfg pyproject.toml
	@test -x $(BEAM_VENV)/bin/python || $(PYTHON) -m venv $(BEAM_VENV)
	$(BEAM_VENV)/bin/pip install -q -r requirements-beam.lock
	$(BEAM_VENV)/bin/pip install -q --no-deps -e .
	@touch $(BEAM_STAMP)

# The Beam runner's tests (DirectRunner), in the Beam environment; `make test` skips them.
test-beam: beam-venv
	$(BEAM_VENV)/bin/python -m pytest tests/data/test_prepare_beam.py $(PYTEST_ARGS)

clean-venv:
	rm -rf $(VENV) $(REF_VENV) $(BEAM_VENV)
