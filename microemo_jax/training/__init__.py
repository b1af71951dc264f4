"""Training core: optimiser, sharded train state, jitted steps, checkpoints, metrics, multi-process start.

Entry points (``train.py``, ``plan.py``) compose these; each module holds one idea.
"""
