"""The numbers of a checkpoint's config.json, checked before any model is built from them.

A config.json is a file we read: ``num_attention_heads: 0`` would divide by zero, ``vocab_size: "lots"`` fail
deep inside a loader, a size of 10**12 allocate forever. ``HFCheckpoint`` checks every config it opens here,
nested sub-configs (``vision_config``, ``qformer_config``, ...) included, and refuses the first bad value with
a ``CheckpointError`` naming the file and the key. Keys not listed are left to the loader that reads them.
"""
from __future__ import annotations

import math

MAX_SIZE = 2 ** 31 - 1
# Sizes and counts: a positive integer (a list of them for image_size / patch_size), or null for "the default".
SIZE_KEYS = frozenset({
    'vocab_size', 'hidden_size', 'intermediate_size', 'num_hidden_layers', 'num_attention_heads',
    'num_key_value_heads', 'head_dim', 'max_position_embeddings', 'image_size', 'patch_size', 'num_channels',
    'encoder_hidden_size', 'cross_attention_frequency', 'num_query_tokens', 'd_model', 'num_mel_bins',
    'encoder_layers', 'encoder_attention_heads', 'encoder_ffn_dim', 'max_source_positions', 'decoder_layers',
    'decoder_attention_heads', 'decoder_ffn_dim', 'max_target_positions'})
TOKEN_ID_KEYS = frozenset({'pad_token_id'})                     # an integer >= 0, or null
POSITIVE_FLOAT_KEYS = frozenset({'layer_norm_eps', 'rms_norm_eps', 'rope_theta'})
FRACTION_KEYS = frozenset({'dropout', 'attention_dropout', 'activation_dropout', 'hidden_dropout_prob',
                           'attention_probs_dropout_prob'})     # a probability in [0, 1]


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v) -> bool:
    return (_is_int(v) or isinstance(v, float)) and math.isfinite(v)


def _problem(key: str, v) -> str | None:
    if v is None:
        return None
    if key in SIZE_KEYS:
        items = v if isinstance(v, list) and v else [v]
        if not all(_is_int(x) and 0 < x <= MAX_SIZE for x in items):
            return f"a positive integer (at most {MAX_SIZE})"
    elif key in TOKEN_ID_KEYS:
        if not (_is_int(v) and 0 <= v <= MAX_SIZE):
            return "an integer >= 0"
    elif key in POSITIVE_FLOAT_KEYS:
        if not (_is_number(v) and v > 0):
            return "a finite number > 0"
    elif key in FRACTION_KEYS:
        if not (_is_number(v) and 0 <= v <= 1):
            return "a number in [0, 1]"
    return None


def config_problem(config: dict, where: str, _path: str = '') -> str | None:
    """What is wrong with the first listed key of the wrong type or out of range (naming ``where`` and the
    key), or None; ``HFCheckpoint`` raises it as a ``CheckpointError``."""
    for key, value in config.items():
        at = f'{_path}{key}'
        if isinstance(value, dict):
            found = config_problem(value, where, at + '.')
            if found:
                return found
            continue
        expected = _problem(key, value)
        if expected:
            return f"{where}: {at} is {value!r}, expected {expected}"
    return None
