"""Whisper encoder + decoder from a WhisperForConditionalGeneration checkpoint, and greedy timestamped
decoding, against transformers' ``generate`` on the committed tiny checkpoint
(tools/reference_fixtures/whisper_asr.py)."""
from __future__ import annotations

import os
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from microemo_jax.hf import CheckpointError, load_whisper, load_whisper_generation_config
from microemo_jax.hf.whisper import whisper_decoder_config_from_hf, whisper_encoder_config_from_hf
from microemo_jax.models.whisper import transcribe as wd
from microemo_jax.models.whisper.decoder import WhisperDecoderConfig

FIXTURES = os.path.join(os.path.dirname(__file__), '..', 'fixtures', 'hf')
ASR = os.path.join(FIXTURES, 'whisper_asr')
MAX_NEW = 20  # what the fixture generated


@pytest.fixture(scope='module')
def setup():
    ref = dict(np.load(os.path.join(ASR, 'reference.npz')))
    return load_whisper(ASR), load_whisper_generation_config(ASR), ref


def _strip(row, eos):
    row = [int(t) for t in row]
    return row[:row.index(eos)] if eos in row else row


def test_decoder_logits_match_transformers(setup):
    model, _, ref = setup
    graphdef, state = nnx.split(model)
    logits = jax.jit(lambda s, f, t: nnx.merge(graphdef, s)(f, t))(
        state, jnp.asarray(ref['input_features']), jnp.asarray(ref['en.sequences'], jnp.int32))
    np.testing.assert_allclose(np.asarray(logits), ref['teacher.logits'], atol=2e-4, rtol=1e-4)


def test_greedy_and_segments_match_generate(setup):
    model, gen, ref = setup
    feats = ref['input_features']
    prompt = wd.decoder_prompt(model, feats, gen, language='en')
    np.testing.assert_array_equal(prompt, ref['en.sequences'][:, :3])
    # One pass: transformers' force_unique_generate_call sequences (eos-padded after a row stops).
    tokens = wd.greedy_generate(model, feats, prompt, gen, max_new_tokens=MAX_NEW)
    np.testing.assert_array_equal(tokens, ref['en.sequences'][:, 3:])
    # The full short-form algorithm: segments at timestamp pairs, re-decoding from the last pair.
    segments = wd.transcribe(model, feats, gen, language='en', max_new_tokens=MAX_NEW)
    got = [(row, s.start, s.end, len(s.tokens)) for row, segs in enumerate(segments) for s in segs]
    want = [(int(r), a, b, int(j - i)) for r, a, b, i, j in ref['en.segments']]
    assert [(g[0], g[3]) for g in got] == [(w[0], w[3]) for w in want]
    np.testing.assert_allclose([g[1:3] for g in got], [w[1:3] for w in want], atol=1e-9)
    for row, segs in enumerate(segments):
        assert [t for s in segs for t in s.tokens] == _strip(ref['en.generate'][row], gen.eos_token_id)
    assert sum(len(s) > 1 for s in segments) >= 2, 'the fixture should make transformers seek within the window'
    # Rows past num_rows are batch padding: never decoded into segments, the real rows unchanged.
    padded = wd.transcribe(model, feats, gen, language='en', max_new_tokens=MAX_NEW, num_rows=2)
    assert padded[:2] == segments[:2] and padded[2:] == [[], []]


def test_language_detection_matches(setup):
    model, gen, ref = setup
    feats = ref['input_features']
    np.testing.assert_array_equal(wd.detect_language(model, feats, gen), ref['detect.language'])
    prompt = wd.decoder_prompt(model, feats, gen, language=None)
    np.testing.assert_array_equal(prompt, ref['detect.sequences'][:, :3])
    tokens = wd.greedy_generate(model, feats, prompt, gen, max_new_tokens=MAX_NEW)
    np.testing.assert_array_equal(tokens, ref['detect.sequences'][:, 3:])
    with pytest.raises(ValueError, match="'xx' is not in this checkpoint's lang_to_id"):
        wd.decoder_prompt(model, feats, gen, language='xx')


def test_timestamp_rules_one_by_one():
    """Each rule of WhisperTimeStampLogitsProcessor on flat logits (vocab: text < eos=4 < notimestamps=5 < ts)."""
    gen = wd.WhisperGenerationConfig(decoder_start_token_id=1, eos_token_id=4, no_timestamps_token_id=5,
                                     max_initial_timestamp_index=2, suppress_tokens=(2,), begin_suppress_tokens=(3,))
    vocab, ts0 = 12, 6

    process = jax.jit(wd.process_logits, static_argnames='g')  # one compile instead of many eager ops

    def allowed(step, prev1, prev2, last_ts, logits=None):
        x = jnp.zeros((1, vocab)) if logits is None else jnp.asarray([logits], jnp.float32)
        out = process(x, jnp.int32(step), jnp.asarray([prev1]), jnp.asarray([prev2]), jnp.asarray([last_ts]), g=gen)
        return [int(i) for i in np.flatnonzero(np.isfinite(np.asarray(out[0])))]

    assert allowed(0, -1, -1, -1) == [6, 7, 8]                     # first: a timestamp <= max_initial
    assert allowed(1, 7, -1, 7) == [0, 1, 3, 4]                     # after one timestamp at the start: text
    assert allowed(3, 8, 7, 8) == [0, 1, 3, 4]                      # after a pair: no timestamp
    text_likely = [3.0] * ts0 + [0.0] * (vocab - ts0)               # (so the timestamp-mass rule stays out)
    assert allowed(3, 9, 0, 9, text_likely) == [4, 9, 10, 11]       # text then a timestamp: eos or a timestamp >= it
    assert allowed(3, 0, 1, 8, text_likely) == [0, 1, 3, 4, 9, 10, 11]  # after text: timestamps above the last one
    mass = [0.0] * ts0 + [2.0] * (vocab - ts0)                      # timestamps' total mass beats the best text token
    assert allowed(3, 0, 1, -1, mass) == list(range(ts0, vocab))


def test_every_parameter_has_logical_axes(setup):
    model, _, _ = setup
    for path, var in nnx.iter_graph(model):
        if isinstance(var, nnx.Param):
            axes = var.get_metadata().get('axes')
            assert axes is not None and len(axes) == var.get_value().ndim, path


def test_load_errors(tmp_path):
    with pytest.raises(CheckpointError, match='needs a WhisperForConditionalGeneration'):
        load_whisper(os.path.join(FIXTURES, 'whisper_encoder_standalone'))
    copy = tmp_path / 'ckpt'
    shutil.copytree(ASR, copy)
    os.remove(copy / 'generation_config.json')
    with pytest.raises(CheckpointError, match='generation_config.json is missing'):
        load_whisper_generation_config(copy)


def test_missing_config_keys_take_transformers_defaults():
    """A config.json without the size keys gets transformers' WhisperConfig defaults, the same d_model for the
    encoder and the decoder (whisper-tiny's sizes)."""
    dec = whisper_decoder_config_from_hf({})
    assert dec == WhisperDecoderConfig()
    assert (dec.vocab_size, dec.d_model, dec.decoder_layers, dec.decoder_attention_heads, dec.decoder_ffn_dim,
            dec.max_target_positions, dec.tie_word_embeddings) == (51865, 384, 4, 6, 1536, 448, True)
    assert whisper_encoder_config_from_hf({}).d_model == dec.d_model
