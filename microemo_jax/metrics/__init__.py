"""Offline, deterministic emotion-recognition metrics: label extraction, MER2024-OV and emotion-wheel scores.

    from microemo_jax.metrics import extract_labels, score_ov, score_wheel, load_synonyms, load_wheel

Pure Python + numpy (no JAX), so evaluation and the CLI (``python -m microemo_jax.metrics``) start fast.
"""
from microemo_jax.metrics.extract import extract_labels
from microemo_jax.metrics.labels import parse_labels
from microemo_jax.metrics.ov import score_ov
from microemo_jax.metrics.synonyms import Synonyms, load_synonyms
from microemo_jax.metrics.table import read_label_csv
from microemo_jax.metrics.wheel import Wheel, load_wheel, score_wheel

__all__ = ['extract_labels', 'score_ov', 'score_wheel', 'load_synonyms', 'load_wheel', 'parse_labels',
           'read_label_csv', 'Synonyms', 'Wheel']
