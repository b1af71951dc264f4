"""The config a stage-3 run trains with: the ``rl`` section's values in the fields the shared machinery reads.

Stages 1-2 and stage 3 share the optimiser, the data pipeline, the checkpointer and the logger, which read
``total_steps``, ``optim.*``, ``data.batch_size`` and so on. A stage-3 run copies its own defaults (``rl.*``)
into those fields once, here, so that ``--config.stage=3`` alone picks sensible values without touching the
stage-2 ones; the copy is what the run records (``WORKDIR/config.json``, ``WORKDIR/params/config.json``).
"""
from __future__ import annotations

import ml_collections


def run_config(cfg: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """``cfg`` itself for stages 1-2; for stage 3 a locked copy with the ``rl`` section applied.

    total_steps = rl.steps (rollout batches), log_every / checkpoint_every from rl, a constant learning rate
    rl.lr after rl.warmup_steps (optim.min_lr = rl.lr), data.batch_size = rl.batch_size clips per rollout
    batch, data.augment = rl.augment, and no validation-loss passes (stage 3 scores the held-out split with
    greedy rewards instead, every rl.eval_every steps).
    """
    if cfg.stage != 3:
        return cfg
    rl = cfg.rl
    out = ml_collections.ConfigDict(cfg.to_dict())
    out.total_steps = rl.steps
    out.log_every = rl.log_every
    out.checkpoint_every = rl.checkpoint_every
    out.optim.lr = out.optim.min_lr = float(rl.lr)
    out.optim.warmup_steps = rl.warmup_steps
    out.data.batch_size = rl.batch_size
    out.data.augment = rl.augment
    if 'text_dropout' in out.data:
        out.data.text_dropout = 0.0     # rollouts answer whole prompts
    out.train.validate_every = 0
    out.lock()
    return out
