"""WhisperEncoder beyond transformers: short clips, padding masks, padding to the window as transformers pads,
input checks, dropout, axes."""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from microemo_jax.data.speech.log_mel import log_mel_for_window, log_mel_spectrogram
from microemo_jax.hf import load_whisper_encoder
from microemo_jax.models.whisper.encoder import WhisperEncoder, WhisperEncoderConfig, output_length, pad_to_window
from tests.support.parity import assert_parity, fixture, reference

CFG = WhisperEncoderConfig(num_mel_bins=8, d_model=32, encoder_layers=2, encoder_attention_heads=4,
                           encoder_ffn_dim=64, max_source_positions=16)


def _model(cfg=CFG, **kwargs) -> WhisperEncoder:
    model = WhisperEncoder(cfg, rngs=nnx.Rngs(0), **kwargs)
    # Spread the weights so attention is far from uniform and padding leaks would show.
    rng = np.random.default_rng(0)
    for _, var in nnx.iter_graph(model):
        if isinstance(var, nnx.Param):
            var.set_value(jnp.asarray(0.3 * rng.standard_normal(var.get_value().shape), jnp.float32))
    return model


@nnx.jit
def _encode(model, x, mask=None, rng=None):
    """Jitted forward: one compile per input signature is much faster than eager op-by-op dispatch."""
    return model(x, attention_mask=mask, dropout_rng=rng)


@pytest.fixture(scope='module')
def model():
    return _model()


def _features(batch, frames, seed=0):
    return jnp.asarray(np.random.default_rng(seed).standard_normal((batch, CFG.num_mel_bins, frames)), jnp.float32)


def test_short_input_shape(model):
    for frames in (21, 1, 32):
        y = nnx.eval_shape(lambda m, x: m(x), model, _features(2, frames))
        assert y.shape == (2, output_length(frames), CFG.d_model) == (2, (frames + 1) // 2, 32)


@pytest.mark.parametrize('per_frame', [False, True])
def test_padding_content_does_not_change_valid_outputs(model, per_frame):
    frames, valid_frames = 24, 14
    valid_pos = output_length(valid_frames)
    x = _features(2, frames)
    noise = _features(2, frames, seed=1) * 5
    x_other = x.at[:, :, valid_frames:].set(noise[:, :, valid_frames:])
    n = frames if per_frame else output_length(frames)
    mask = (jnp.arange(n) < (valid_frames if per_frame else valid_pos))[None].repeat(2, 0)

    y, y_other = _encode(model, x, mask), _encode(model, x_other, mask)
    np.testing.assert_allclose(y[:, :valid_pos], y_other[:, :valid_pos], rtol=1e-5, atol=1e-5)
    assert np.all(np.asarray(y[:, valid_pos:]) == 0), 'padded positions are zeroed'
    # Without the mask the padding does leak into the valid outputs: the check above has teeth.
    leak = _encode(model, x)[:, :valid_pos] - _encode(model, x_other)[:, :valid_pos]
    assert np.abs(np.asarray(leak)).max() > 1e-2


def test_masked_clip_equals_clip_alone(model):
    """An odd-length clip in a padded batch (per-frame mask) gives what it gives when run alone."""
    frames, valid_frames = 24, 13
    x = _features(2, frames)
    mask = jnp.stack([jnp.arange(frames) < valid_frames, jnp.ones(frames, bool)])
    y = _encode(model, x, mask)
    alone = _encode(model, x[:1, :, :valid_frames])
    np.testing.assert_allclose(y[:1, :output_length(valid_frames)], alone, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(y[1:], _encode(model, x)[1:], rtol=1e-5, atol=1e-5)  # an all-valid row


def test_bad_inputs_raise(model):
    with pytest.raises(ValueError, match='must be \\(batch, num_mel_bins=8, frames\\)'):
        model(jnp.zeros((8, 20)))
    with pytest.raises(ValueError, match='has 80 mel bins on axis 1, the config expects 8'):
        model(jnp.zeros((1, 80, 20)))
    with pytest.raises(ValueError, match='33 mel frames.*1..32'):
        model(jnp.zeros((1, 8, 33)))
    with pytest.raises(ValueError, match='attention_mask must be'):
        model(jnp.zeros((2, 8, 20)), attention_mask=jnp.ones((2, 7)))
    with pytest.raises(ValueError, match='not divisible'):
        WhisperEncoderConfig(d_model=30, encoder_attention_heads=4)
    with pytest.raises(ValueError, match="activation_function 'tanh'"):
        WhisperEncoderConfig(activation_function='tanh')


def test_dropout_only_with_rng():
    cfg = dataclasses.replace(CFG, dropout=0.2, activation_dropout=0.2)
    model = _model(cfg)
    x = _features(2, 24)
    y0 = _encode(model, x)
    np.testing.assert_array_equal(y0, _encode(model, x))
    y1, y2 = _encode(model, x, None, jax.random.key(1)), _encode(model, x, None, jax.random.key(2))
    assert np.abs(np.asarray(y1 - y2)).max() > 1e-3
    assert np.abs(np.asarray(y1 - y0)).max() > 1e-3


def test_every_param_has_axes(model):
    for path, var in nnx.iter_graph(model):
        if isinstance(var, nnx.Param):
            axes = var.get_metadata().get('axes')
            assert axes is not None and len(axes) == var.get_value().ndim, (path, axes)
    assert model.embed_positions.get_metadata()['axes'] == ('pos', 'embed')


def test_log_mel_shapes_and_bad_audio():
    audio = np.random.default_rng(0).standard_normal(16000 + 80).astype(np.float32) * 0.1
    features = log_mel_spectrogram(audio, 80)
    assert features.shape == (80, 100) and features.dtype == np.float32
    assert features.max() - features.min() <= 2.0 + 1e-6  # the (max - 8) clamp, divided by 4
    with pytest.raises(ValueError, match=r'must be \(samples,\) or \(batch, samples\)'):
        log_mel_spectrogram(audio.reshape(1, 1, -1))
    with pytest.raises(ValueError, match='needs more than 200'):
        log_mel_spectrogram(audio[:150])
    with pytest.raises(ValueError, match='real-valued'):
        log_mel_spectrogram(audio.astype(np.complex64))


def test_pad_to_window_matches_transformers_on_short_padded_clips():
    """model.audio.pad_to_30s: short clips whose batch holds garbage past their frames, filled out to the window as
    WhisperFeatureExtractor pads them, give transformers' WhisperEncoder outputs (fixture from
    tools/reference_fixtures/whisper.py)."""
    ref = reference('whisper_encoder_standalone')
    encoder = load_whisper_encoder(fixture('whisper_encoder_standalone'))
    features, lengths = ref['padded_input_features'], ref['padded_lengths']
    window = features.shape[-1]
    # The extractor's features are our log-mel of the waveform with zeros appended (it pads the audio); the frames
    # the clip reaches (log_mel_for_window) and the floor after them (pad_to_window) rebuild them.
    for wave, n, x in zip(ref['padded_waveforms'], lengths, features):
        np.testing.assert_allclose(log_mel_spectrogram(np.pad(wave[:n], (0, window * 160 - n)), x.shape[0]), x,
                                   atol=1e-5)
        clip = log_mel_for_window(wave[:n], x.shape[0], window)
        assert clip.shape[1] == -(-(n + 200) // 160) < window
        rebuilt = pad_to_window(jnp.asarray(clip[None]), jnp.ones((1, clip.shape[1]), bool), window)[0]
        np.testing.assert_allclose(np.asarray(rebuilt), x, atol=1e-5)
    # A batch as the pipeline gives it: each clip's frames (to the end of its last STFT window), then garbage.
    positions = np.asarray([-(-(n // 160 + 3) // 2) for n in lengths])
    audio_mask = np.arange(window // 2)[None] < positions[:, None]
    frame_valid = np.repeat(audio_mask, 2, axis=1)
    garbage = 3 + 4 * np.random.default_rng(0).standard_normal(features.shape).astype(np.float32)
    batch_mel = np.where(frame_valid[:, None, :], features, garbage)
    padded = jax.jit(pad_to_window, static_argnums=2)(jnp.asarray(batch_mel[..., :24]), jnp.asarray(frame_valid[:, :24]),
                                                      window)
    np.testing.assert_allclose(np.asarray(padded), features, rtol=0, atol=1e-6)
    assert_parity(_encode(encoder, padded), ref['padded_last_hidden_state'])
    # The masked short-clip path is a different computation: this is why the switch exists.
    masked = _encode(encoder, jnp.asarray(batch_mel), jnp.asarray(audio_mask))
    valid = audio_mask[..., None]
    assert np.abs(np.where(valid, np.asarray(masked) - ref['padded_last_hidden_state'], 0)).max() > 1e-2
    # A clip without audio becomes Whisper's digital silence.
    silent = pad_to_window(jnp.asarray(batch_mel[:1, :, :4]), jnp.zeros((1, 4), bool), 8)
    np.testing.assert_array_equal(np.asarray(silent), np.full((1, 8, 8), -1.5, np.float32))
