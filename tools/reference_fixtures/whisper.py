"""Tiny Whisper checkpoints and the encoder output transformers computes on them.

Cases (all with model_type 'whisper'; the encoder's tensors sit under a different prefix in each):
* ``whisper_encoder_standalone``: ``WhisperEncoder.save_pretrained`` (no prefix); 8 mel bins,
  max_source_positions 16 (T_mel = 32). Also records a *short* input: transformers only accepts exactly
  2 * max_source_positions frames, so the short reference comes from a WhisperEncoder whose position
  table is the first rows of this one's (which is what our encoder does with short inputs). And a
  *padded* short input (``model.audio.pad_to_30s``): two short random waveforms that
  ``WhisperFeatureExtractor`` pads to the encoder's whole window (2 * max_source_positions frames, its
  30 s at full size), with its per-frame attention mask and this encoder's output on them.
* ``whisper_model_full``: ``WhisperModel`` (``encoder.``); 12 mel bins, max_source_positions 24.
* ``whisper_cond_gen_full``: ``WhisperForConditionalGeneration`` (``model.encoder.``); 16 mel bins,
  max_source_positions 32, activation 'gelu_new' (tanh GELU) in the FFN.

* ``whisper_features``: no checkpoint; a random 16 kHz waveform (0.5 s + 37 samples, with an exactly
  silent stretch so the (max - 8) clamp acts) and ``WhisperFeatureExtractor``'s numpy-path log-mel of
  it for 80 and 128 mel bins (``log_mel_80``, ``log_mel_128``).

Every parameter (norms, biases and the position table included) is re-drawn so each mapping matters.
``reference.npz``: input_features (B=2, num_mel_bins, 2 * max_source_positions), random normal, and
the encoder's last_hidden_state from the model *reloaded from the written folder*.
"""
from __future__ import annotations

import numpy as np
import torch
from transformers import WhisperConfig, WhisperFeatureExtractor, WhisperForConditionalGeneration, WhisperModel
from transformers.models.whisper.modeling_whisper import WhisperEncoder

from reference_fixtures.common import case_dir, save_reference, seed

BATCH = 2
SHORT_FRAMES = 20  # even: transformers needs T_mel == 2 * max_source_positions
PADDED_SAMPLES = (1937, 3211)  # two short clips (12 and 20 frames of 10 ms) padded to the encoder's window


def _config(num_mel_bins: int, max_source_positions: int, activation: str = 'gelu') -> WhisperConfig:
    return WhisperConfig(
        num_mel_bins=num_mel_bins, d_model=32, encoder_layers=2, encoder_attention_heads=4, encoder_ffn_dim=64,
        decoder_layers=1, decoder_attention_heads=4, decoder_ffn_dim=64, max_source_positions=max_source_positions,
        max_target_positions=8, vocab_size=64, pad_token_id=0, bos_token_id=1, eos_token_id=2,
        decoder_start_token_id=1, activation_function=activation)


def _randomise(model: torch.nn.Module) -> None:
    with torch.no_grad():
        for name, p in model.named_parameters():
            if 'layer_norm.weight' in name:
                p.copy_(1.0 + 0.2 * torch.randn_like(p))
            elif name.endswith('bias'):
                p.copy_(0.1 * torch.randn_like(p))
            elif 'embed_positions' in name:
                p.copy_(0.5 * torch.randn_like(p))
            else:
                p.copy_(0.3 * torch.randn_like(p))


def _encoder_of(model: torch.nn.Module) -> WhisperEncoder:
    return model if isinstance(model, WhisperEncoder) else model.get_encoder()


def _case(out_root: str, name: str, cls, config: WhisperConfig, n_seed: int, *, short: bool = False,
          padded: bool = False) -> None:
    seed(n_seed)
    path = case_dir(out_root, name)
    model = cls(config).eval()
    _randomise(model)
    model.save_pretrained(path, safe_serialization=True)
    reloaded = cls.from_pretrained(path, dtype=torch.float32).eval()
    for (n1, p1), (n2, p2) in zip(model.state_dict().items(), reloaded.state_dict().items()):
        assert n1 == n2 and torch.equal(p1, p2), f'{name}: {n1} changed on reload'
    encoder = _encoder_of(reloaded)
    frames = 2 * config.max_source_positions
    input_features = torch.randn(BATCH, config.num_mel_bins, frames)
    with torch.no_grad():
        hidden = encoder(input_features).last_hidden_state
    assert hidden.shape == (BATCH, config.max_source_positions, config.d_model), hidden.shape
    arrays = {'input_features': input_features, 'last_hidden_state': hidden}
    if short:
        arrays.update(_short(encoder, config))
    if padded:
        arrays.update(_padded(encoder, config))
    save_reference(path, **arrays)


def _short(encoder: WhisperEncoder, config: WhisperConfig) -> dict[str, torch.Tensor]:
    """A WhisperEncoder with the first SHORT_FRAMES // 2 position rows, run on SHORT_FRAMES frames."""
    short_cfg = WhisperConfig.from_dict({**config.to_dict(), 'max_source_positions': SHORT_FRAMES // 2})
    short = WhisperEncoder(short_cfg).eval()
    state = {k: (v[:SHORT_FRAMES // 2] if k == 'embed_positions.weight' else v)
             for k, v in encoder.state_dict().items()}
    short.load_state_dict(state, strict=True)
    x = torch.randn(BATCH, config.num_mel_bins, SHORT_FRAMES)
    with torch.no_grad():
        y = short(x).last_hidden_state
    return {'short_input_features': x, 'short_last_hidden_state': y}


def _padded(encoder: WhisperEncoder, config: WhisperConfig) -> dict[str, np.ndarray]:
    """Short waveforms padded by WhisperFeatureExtractor to the encoder's window, and the encoder's output."""
    frames = 2 * config.max_source_positions
    waves = [(0.1 * torch.randn(n)).numpy().astype(np.float32) for n in PADDED_SAMPLES]
    extractor = WhisperFeatureExtractor(feature_size=config.num_mel_bins)
    out = extractor(waves, sampling_rate=16000, padding='max_length', max_length=frames * extractor.hop_length,
                    return_attention_mask=True, return_tensors='np')
    features, mask = out['input_features'].astype(np.float32), out['attention_mask'].astype(np.int32)
    assert features.shape == (len(waves), config.num_mel_bins, frames), features.shape
    for x, n in zip(features, PADDED_SAMPLES):  # past the clip's last STFT windows: the clamp floor only
        tail = x[:, n // extractor.hop_length + 3:]
        assert np.all(tail == max(x.max() - 2.0, -1.5)) or np.allclose(tail, max(x.max() - 2.0, -1.5), atol=1e-6)
    with torch.no_grad():
        hidden = encoder(torch.from_numpy(features)).last_hidden_state
    waveforms = np.zeros((len(waves), max(PADDED_SAMPLES)), np.float32)
    for i, w in enumerate(waves):
        waveforms[i, :len(w)] = w
    return {'padded_waveforms': waveforms, 'padded_lengths': np.asarray(PADDED_SAMPLES, np.int32),
            'padded_input_features': features, 'padded_attention_mask': mask,
            'padded_last_hidden_state': hidden.numpy()}


def _features_case(out_root: str, n_seed: int) -> None:
    seed(n_seed)
    path = case_dir(out_root, 'whisper_features')
    waveform = (0.1 * np.random.randn(8000 + 37)).astype(np.float32)
    waveform[3000:4600] = 0.0
    arrays = {'waveform': waveform}
    for bins in (80, 128):
        extractor = WhisperFeatureExtractor(feature_size=bins)
        arrays[f'log_mel_{bins}'] = extractor._np_extract_fbank_features(waveform[None], 'cpu')[0].astype(np.float32)
        torch_path = extractor._torch_extract_fbank_features(waveform[None], 'cpu')[0]
        assert np.abs(torch_path - arrays[f'log_mel_{bins}']).max() < 1e-4, 'numpy and torch paths disagree'
    save_reference(path, **arrays)


def make(out_root: str) -> None:
    _case(out_root, 'whisper_encoder_standalone', WhisperEncoder, _config(8, 16), 100, short=True, padded=True)
    _case(out_root, 'whisper_model_full', WhisperModel, _config(12, 24), 101)
    _case(out_root, 'whisper_cond_gen_full', WhisperForConditionalGeneration, _config(16, 32, 'gelu_new'), 102)
    _features_case(out_root, 103)
