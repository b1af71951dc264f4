"""Audio branch: Whisper encoder on log-mel -> audio Q-Former over the whole clip and per utterance.

Encoder position p covers the time around (p + 0.5) * seconds_per_position (20 ms for Whisper), which
is how utterance spans select positions; ``audio_mask`` marks the positions that hold real audio
(clips without an audio track have none, and their audio tokens never reach the LLM).

``pad_to_30s``: pretrained Whisper only ever saw 30 s windows, padded with silence. Then the log-mel is
filled out to the encoder's whole window (2 * max_source_positions frames) with the silence value
``WhisperFeatureExtractor`` would put there (``whisper.pad_to_window``), the encoder runs unmasked over it,
and the Q-Former still reads only the positions that hold the clip (``audio_mask``). Otherwise the encoder
sees only the clip (masked), which is cheaper for short clips but not what Whisper was trained on.
"""
from __future__ import annotations

import jax.numpy as jnp
from flax import nnx

from microemo_jax.models.qformer import QFormer
from microemo_jax.models.slots import num_slots, slot_masks
from microemo_jax.models.video_qformer import SlotQFormer
from microemo_jax.models.whisper.encoder import WhisperEncoder, pad_to_window


class AudioBranch(nnx.Module):

    def __init__(self, encoder: WhisperEncoder, qformer: QFormer, num_query_tokens: int, max_utterances: int, *,
                 seconds_per_position: float = 0.02, utterance_scale: bool = True, pad_to_30s: bool = False,
                 param_dtype=jnp.float32, rngs: nnx.Rngs):
        self.encoder, self.pad_to_30s = encoder, pad_to_30s
        self.seconds_per_position, self.utterance_scale = seconds_per_position, utterance_scale
        self.slots = SlotQFormer(qformer, num_query_tokens, num_slots(max_utterances, 0, utterance_scale=utterance_scale),
                                 param_dtype=param_dtype, rngs=rngs)

    def __call__(self, mel, audio_mask, utterances, utterance_mask, *, dropout_rng=None):
        """mel (B, n_mels, T_mel), audio_mask (B, T_pos) -> tokens (B, S, Q, D), slot validity (B, S)."""
        if self.pad_to_30s:
            t_mel = mel.shape[2]
            frame_valid = jnp.repeat(audio_mask.astype(bool), 2, axis=1)[:, :t_mel]
            feats = self.encoder(pad_to_window(mel, frame_valid, self.encoder.cfg.max_mel_frames))
            audio_mask = jnp.pad(audio_mask.astype(bool), ((0, 0), (0, feats.shape[1] - audio_mask.shape[1])))
        else:
            feats = self.encoder(mel, attention_mask=audio_mask)
        if feats.shape[1] != audio_mask.shape[1]:
            raise ValueError(f"audio_mask has {audio_mask.shape[1]} positions, the encoder produced {feats.shape[1]}")
        times = (jnp.arange(feats.shape[1]) + 0.5) * self.seconds_per_position
        times = jnp.broadcast_to(times, audio_mask.shape)
        masks, slot_valid = slot_masks(times, audio_mask, utterances, utterance_mask,
                                       utterance_scale=self.utterance_scale)
        return self.slots.run_slots(feats, masks, dropout_rng=dropout_rng), slot_valid
