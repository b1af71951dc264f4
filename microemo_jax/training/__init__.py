"""Training core: optimiser, losses, stages, sharded train state, jitted steps, run checkpoints, preemption,
metrics, multi-process start.

Entry points (``train.py``, ``plan.py``) compose these; each module holds one idea. Parameter folders
(what a run starts from and exports) are ``microemo_jax.params``, one layer up: it builds on
``orbax_reads`` here, and nothing here imports it.
"""
