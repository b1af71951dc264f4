"""Offline, deterministic emotion-recognition metrics: label extraction, MER2024-OV, emotion-wheel and
MER-UniBench scores.

    from microemo_jax.metrics import extract_labels, score_ov, score_wheel, load_synonyms, load_wheel
    from microemo_jax.metrics import load_table, hit_rate, waf, wheel_fscore, make_extractor

Pure Python + numpy (no JAX), so evaluation and the CLI (``python -m microemo_jax.metrics``) start fast.
"""
from microemo_jax.metrics.benchmark import DATASETS, hit_rate, waf, wheel_fscore
from microemo_jax.metrics.emotion_wheel import load_table, load_wheel_folder
from microemo_jax.metrics.extract import extract_labels
from microemo_jax.metrics.extractors import make_extractor
from microemo_jax.metrics.labels import parse_labels, split_list_string
from microemo_jax.metrics.official_files import load_label_npz, load_prediction_cache
from microemo_jax.metrics.ov import score_ov
from microemo_jax.metrics.protocol import BENCHMARK_QUESTION
from microemo_jax.metrics.synonyms import Synonyms, load_synonyms
from microemo_jax.metrics.table import read_label_csv
from microemo_jax.metrics.valence import sentiment_of
from microemo_jax.metrics.wheel import Wheel, load_wheel, score_wheel

__all__ = ['extract_labels', 'score_ov', 'score_wheel', 'load_synonyms', 'load_wheel', 'parse_labels',
           'read_label_csv', 'Synonyms', 'Wheel',
           'DATASETS', 'hit_rate', 'waf', 'wheel_fscore', 'load_table', 'load_wheel_folder', 'make_extractor',
           'split_list_string', 'load_label_npz', 'load_prediction_cache', 'BENCHMARK_QUESTION', 'sentiment_of']
