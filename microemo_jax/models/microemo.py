"""MicroEmo assembled: video, face and audio tokens spliced into the LLM's prompt (LLaMA, Qwen2.5 or Qwen3).

    frames --ViT--> image Q-Former(+timestamp text) --global-local attn <-- micro-expression branch <-- faces
           --> utterance-aware video Q-Former --> Linear --> LLM prompt slots
    (global-local attention off: the local tokens, projected, join each frame's tokens in the video Q-Former)
    log-mel --Whisper--> utterance-aware audio Q-Former --> Linear --> LLM prompt slots
    (video centring on: the video tokens minus their running mean over training clips, times a gain; see
    ``RunningMean``; with ``video_centring.marker``, plus a learned vector per video token: ``video_marker``)

The prompt (built by the data pipeline) holds ``num_video_tokens + num_audio_tokens`` placeholder
positions, given per example in ``modality_positions``; the projected tokens replace their embeddings.
Tokens of empty slots (padded utterances, clips without audio) are masked out of the LLM's attention,
and positions count only attended tokens, so padding never changes what the model computes.

Only parameters something uses are built: no global-local module without the local branch, no text parts
in the image Q-Former without timestamp text (see frame_encoder.py).

Pretrained towers can be passed in (``MicroEmo(cfg, vit=..., llm=...)``), which is how converted Hugging Face weights
enter without materialising a second copy of the model.
"""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import ml_collections
from flax import nnx

from microemo_jax.models.answer_words import AnswerWordsHead, answer_words_weight
from microemo_jax.models.audio_branch import AudioBranch
from microemo_jax.models.frame_encoder import FrameEncoder, text_vocab_size
from microemo_jax.models.global_local import GlobalLocalAttention
from microemo_jax.models.layers import Dense, param, split_rng
from microemo_jax.models.llama import Llama, LlamaConfig
from microemo_jax.models.lora import LoRAConfig
from microemo_jax.models.micro_expression import MicroExpressionBranch, face_residuals, feature_residuals
from microemo_jax.models.qformer import QFormer, QFormerConfig
from microemo_jax.models.scratch_init import FROM_SCRATCH, fan_in_init
from microemo_jax.models.video_centring import RunningMean, video_centring, video_marker
from microemo_jax.models.video_qformer import VideoQFormer
from microemo_jax.models.vit import VisionConfig, VisionTransformer
from microemo_jax.models.whisper.encoder import WhisperEncoder, WhisperEncoderConfig
from microemo_jax.pixels import normalise as normalise_pixels


def dtype_of(name: str):
    return jnp.dtype(name)


def vision_config(c) -> VisionConfig:
    return VisionConfig(hidden_size=c.hidden_size, intermediate_size=c.intermediate_size, num_layers=c.num_layers,
                        num_heads=c.num_heads, patch_size=c.patch_size, image_size=c.image_size,
                        layer_norm_eps=c.layer_norm_eps)


def qformer_config(c, encoder_hidden_size: int) -> QFormerConfig:
    return QFormerConfig(hidden_size=c.hidden_size, num_layers=c.num_layers, num_heads=c.num_heads,
                         intermediate_size=c.intermediate_size, cross_attention_frequency=c.cross_attention_frequency,
                         encoder_hidden_size=encoder_hidden_size, layer_norm_eps=c.layer_norm_eps,
                         vocab_size=c.vocab_size, max_position_embeddings=c.max_position_embeddings,
                         pad_token_id=c.pad_token_id, hidden_dropout=c.dropout, attention_dropout=c.dropout,
                         text_ffn=c.vocab_size > 0)


def image_qformer_config(m) -> QFormerConfig:
    """The image Q-Former as model config ``m`` builds it: text parts sized for the timestamp ids (or none)."""
    vocab = text_vocab_size(m)
    return dataclasses.replace(qformer_config(m.image_qformer, m.vision.hidden_size), vocab_size=vocab,
                               text_ffn=vocab > 0)


def whisper_config(c) -> WhisperEncoderConfig:
    return WhisperEncoderConfig(num_mel_bins=c.num_mel_bins, d_model=c.d_model, encoder_layers=c.encoder_layers,
                                encoder_attention_heads=c.encoder_attention_heads, encoder_ffn_dim=c.encoder_ffn_dim,
                                max_source_positions=c.max_source_positions)


def llama_config(c) -> LlamaConfig:
    """The LLM of ``model.llm``: LLaMA by default; ``qkv_bias`` (Qwen2/2.5), ``qk_norm`` (Qwen3) and the RoPE type
    select the other families (fields an older config lacks read as LLaMA's)."""
    rope_type = c.get('rope_type', 'default')
    rope_scaling = None
    if rope_type != 'default':
        keys = {'linear': ('factor',), 'dynamic': ('factor',), 'yarn': ('factor', 'original_max_position_embeddings'),
                'llama3': ('factor', 'low_freq_factor', 'high_freq_factor', 'original_max_position_embeddings')}
        rope_scaling = {'rope_type': rope_type, **{k: c[f'rope_{k}'] for k in keys.get(rope_type, ())}}
    return LlamaConfig(vocab_size=c.vocab_size, hidden_size=c.hidden_size, intermediate_size=c.intermediate_size,
                       num_layers=c.num_layers, num_heads=c.num_heads, num_kv_heads=c.num_kv_heads,
                       head_dim=c.head_dim, rms_norm_eps=c.rms_norm_eps, rope_theta=c.rope_theta,
                       rope_scaling=rope_scaling, max_position_embeddings=c.max_position_embeddings,
                       tie_word_embeddings=c.tie_word_embeddings, attention_bias=c.get('attention_bias', False),
                       qkv_bias=c.get('qkv_bias', False), qk_norm=c.get('qk_norm', False))


def lora_config(c) -> LoRAConfig:
    return LoRAConfig(rank=c.rank, alpha=c.alpha, dropout=c.dropout)


class MicroEmo(nnx.Module):

    def __init__(self, cfg: ml_collections.ConfigDict, *, use_lora: bool = False, rngs: nnx.Rngs,
                 vit: VisionTransformer | None = None, image_qformer: QFormer | None = None,
                 whisper: WhisperEncoder | None = None, llm: Llama | None = None):
        """``cfg`` is the ``model`` section of configs/emer.py; prebuilt towers replace fresh ones."""
        self.cfg = cfg
        dtype = dtype_of(cfg.dtype)
        trained = dict(dtype=dtype, param_dtype=dtype_of(cfg.param_dtype))
        frozen = dict(dtype=dtype, param_dtype=dtype_of(cfg.frozen_param_dtype))
        impl = cfg.attention_impl or None
        stack = dict(scan=cfg.scan_layers, remat_policy=cfg.remat_policy)

        # 1. timestamp-bound frame encoder
        own_qformer = image_qformer is None      # not a pretrained one passed in (fan_in_init leaves those alone)
        vit = vit or VisionTransformer(vision_config(cfg.vision), attention_impl=impl, rngs=rngs, **stack, **frozen)
        if image_qformer is None:
            image_qformer = QFormer(image_qformer_config(cfg), attention_impl=impl, rngs=rngs, **trained)
        elif cfg.frame_encoder.timestamp_text:  # a pretrained Q-Former: room for every timestamp id ('llm' mode)
            image_qformer.resize_vocab(text_vocab_size(cfg), rngs=rngs)
        self.frame_encoder = FrameEncoder(vit, image_qformer, cfg.image_qformer.num_query_tokens,
                                          timestamp_text=cfg.frame_encoder.timestamp_text,
                                          keep_text_tokens=cfg.frame_encoder.keep_text_tokens,
                                          param_dtype=trained['param_dtype'], rngs=rngs)
        q_width = cfg.image_qformer.hidden_size
        # 2-3. micro-expression branch and global-local attention
        me = cfg.micro_expression
        if me.enabled:
            if me.face_encoder == 'separate':
                self.face_vit = VisionTransformer(vision_config(me.face_vision), attention_impl=impl, rngs=rngs,
                                                  **stack, **trained)
                face_dim = me.face_vision.hidden_size
            else:
                self.face_vit = None  # the frame ViT (frame_encoder.vit) encodes the faces too
                face_dim = cfg.vision.hidden_size
            self.micro_expression = MicroExpressionBranch(face_dim, me.hidden_size, me.num_crops, me.num_layers,
                                                          me.num_heads, use_differences=me.use_differences,
                                                          landmarks=bool(me.get('landmarks', False)),
                                                          dropout_rate=me.dropout, attention_impl=impl, rngs=rngs,
                                                          **trained)
            if cfg.global_local.enabled:
                self.global_local = GlobalLocalAttention(q_width, me.hidden_size, cfg.global_local.num_heads,
                                                         neighbours=cfg.global_local.neighbours,
                                                         gate_init=float(cfg.global_local.get('gate_init', 0.0)),
                                                         attention_impl=impl, rngs=rngs, **trained)
                self.local_proj = None
            else:  # the local tokens join each frame's tokens in the video Q-Former instead
                self.global_local = None
                self.local_proj = Dense(me.hidden_size, q_width, axes=('embed', 'embed'), rngs=rngs, **trained)
        else:
            self.face_vit = self.micro_expression = self.global_local = self.local_proj = None
        # 4. utterance-aware video Q-Former
        vq = cfg.video_qformer
        self.video_qformer = VideoQFormer(QFormer(qformer_config(vq, q_width), attention_impl=impl, rngs=rngs, **trained),
                                          vq.num_query_tokens, vq.max_frames, cfg.max_utterances, cfg.num_frames,
                                          utterance_scale=cfg.utterance_scale, window_size=cfg.window_size,
                                          window_stride=cfg.window_stride, param_dtype=trained['param_dtype'],
                                          rngs=rngs)
        # 5. audio
        if cfg.audio.enabled:
            whisper = whisper or WhisperEncoder(whisper_config(cfg.audio), attention_impl=impl, rngs=rngs,
                                                **stack, **frozen)
            aq = cfg.audio_qformer
            self.audio = AudioBranch(whisper, QFormer(qformer_config(aq, cfg.audio.d_model), attention_impl=impl,
                                                      rngs=rngs, **trained),
                                     aq.num_query_tokens, cfg.max_utterances,
                                     seconds_per_position=cfg.audio.seconds_per_position,
                                     utterance_scale=cfg.utterance_scale,
                                     pad_to_30s=cfg.audio.get('pad_to_30s', False), param_dtype=trained['param_dtype'],
                                     rngs=rngs)
            self.audio_proj = Dense(aq.hidden_size, cfg.llm.hidden_size, axes=('embed', 'embed'), rngs=rngs, **trained)
        else:
            self.audio = self.audio_proj = None
        # 6. projection and LLM
        self.video_proj = Dense(vq.hidden_size, cfg.llm.hidden_size, axes=('embed', 'embed'), rngs=rngs, **trained)
        self.video_gain, _ = video_centring(cfg)
        self.video_centre = (param(rngs, nnx.initializers.zeros, (self.num_video_tokens, cfg.llm.hidden_size),
                                   (None, 'embed'), trained['param_dtype'], kind=RunningMean)
                             if self.video_gain else None)
        self.video_marker = (param(rngs, nnx.initializers.zeros, (self.num_video_tokens, cfg.llm.hidden_size),
                                   (None, 'embed'), trained['param_dtype'])
                             if video_marker(cfg) else None)
        self.answer_words = (AnswerWordsHead(vq.hidden_size, cfg.llm.vocab_size, rngs=rngs, **trained)
                             if answer_words_weight(cfg) else None)
        llm_dtypes = trained if cfg.get('train_llm', False) else frozen  # a trained LLM keeps master weights
        self.llm = llm or Llama(llama_config(cfg.llm), lora=lora_config(cfg.lora) if use_lora else None,
                                lora_targets=tuple(cfg.lora.targets), attention_impl=impl, rngs=rngs,
                                **stack, **llm_dtypes)
        if cfg.get('kernel_init', 'bert') == 'fan_in':
            fan_in_init(self, rngs, FROM_SCRATCH if own_qformer else FROM_SCRATCH[1:])

    # ----- token budget the prompt must reserve -----
    @property
    def num_video_tokens(self) -> int:
        return self.video_qformer.slots.num_slots * self.cfg.video_qformer.num_query_tokens

    @property
    def num_audio_tokens(self) -> int:
        return 0 if self.audio is None else self.audio.slots.num_slots * self.cfg.audio_qformer.num_query_tokens

    @property
    def num_modality_tokens(self) -> int:
        return self.num_video_tokens + self.num_audio_tokens

    # ----- encoders -----
    def encode_faces(self, faces, face_mask, *, landmarks=None, landmark_mask=None, dropout_rng=None):
        """faces (B, T, K, C, H, W) [, landmarks (B, T, K, 68, 2), landmark_mask (B, T, K): read with
        model.micro_expression.landmarks] -> local tokens (B, T, K, D), mask (B, T, K).
        uint8 crops are normalised here (empty slots -> 0); float crops are taken as normalised."""
        if faces.ndim != 6:
            raise ValueError(f"faces must be (batch, frames, crops, channels, height, width), got {faces.shape}")
        faces = normalise_pixels(faces, face_mask, xp=jnp)
        if self.cfg.micro_expression.get('face_input', 'crops') == 'residuals':
            faces = face_residuals(faces, face_mask)
        b, t, k = faces.shape[:3]
        vit = self.face_vit if self.face_vit is not None else self.frame_encoder.vit
        feats = vit(faces.reshape((b * t * k,) + faces.shape[3:]))[:, 0].reshape(b, t, k, -1)  # class token per crop
        if self.cfg.micro_expression.get('feature_baseline', False):
            feats = feature_residuals(feats, face_mask)
        return self.micro_expression(feats, face_mask, landmarks=landmarks,
                                     landmark_mask=landmark_mask, dropout_rng=dropout_rng)

    def encode(self, batch, *, dropout_rng=None, stats: dict | None = None):
        """Modality tokens (B, num_modality_tokens, d_llm) and their validity (B, num_modality_tokens).

        A ``stats`` dict (training) gets, with video centring, the batch's sum of uncentred video tokens over its
        valid slots (``video_sum``) and their count (``video_count``), for the running mean; with the answer-words
        head, its logits (``answer_word_logits``, differentiable)."""
        r_frame, r_face, r_video, r_audio = split_rng(dropout_rng, 4)
        frames = normalise_pixels(batch['frames'], batch['frame_mask'], xp=jnp)   # uint8 on the wire (pixels.py)
        b, t = frames.shape[:2]
        if t != self.cfg.num_frames:
            raise ValueError(f"batch has {t} frames per clip, the model was built for model.num_frames="
                             f"{self.cfg.num_frames}")
        tokens, token_mask = self.frame_encoder(frames, batch.get('timestamp_ids'), batch.get('timestamp_mask'),
                                                dropout_rng=r_frame)
        if self.micro_expression is not None:
            local, local_mask = self.encode_faces(batch['faces'], batch['face_mask'],
                                                  landmarks=batch.get('face_landmarks'),
                                                  landmark_mask=batch.get('face_landmark_mask'), dropout_rng=r_face)
            if self.global_local is not None:
                tokens = self.global_local(tokens, local, local_mask)
            else:
                tokens = jnp.concatenate([tokens, self.local_proj(local).astype(tokens.dtype)], axis=2)
                token_mask = jnp.concatenate([token_mask, local_mask.astype(bool)], axis=2)
        video, video_valid = self.video_qformer(tokens, token_mask, batch['frame_mask'], batch['timestamps'],
                                                batch['utterances'], batch['utterance_mask'], dropout_rng=r_video)
        if self.answer_words is not None and stats is not None:
            stats['answer_word_logits'] = self.answer_words(video, video_valid)
        out = [self.video_proj(video.reshape(b, -1, video.shape[-1]))]
        valid = [jnp.repeat(video_valid, video.shape[2], axis=1)]
        if self.video_centre is not None:
            w = valid[0].astype(jnp.float32)[..., None]
            if stats is not None:
                stats['video_sum'] = (out[0].astype(jnp.float32) * w).sum(axis=0)
                stats['video_count'] = w.sum(axis=0)
            centre = jax.lax.stop_gradient(self.video_centre[...]).astype(out[0].dtype)
            out[0] = self.video_gain * (out[0] - centre)
            if self.video_marker is not None:
                out[0] = out[0] + self.video_marker[...].astype(out[0].dtype)
        if self.audio is not None:
            audio, audio_valid = self.audio(batch['audio_mel'], batch['audio_mask'], batch['utterances'],
                                            batch['utterance_mask'], dropout_rng=r_audio)
            out.append(self.audio_proj(audio.reshape(b, -1, audio.shape[-1])))
            valid.append(jnp.repeat(audio_valid, audio.shape[2], axis=1))
        return jnp.concatenate(out, axis=1), jnp.concatenate(valid, axis=1)

    def prompt_embeddings(self, batch, *, dropout_rng=None, stats: dict | None = None):
        """LLM input embeddings with modality tokens spliced in, and the attention mask to use (``stats``: see
        ``encode``)."""
        r_enc, _ = split_rng(dropout_rng, 2)
        ids, positions = batch['input_ids'], batch['modality_positions']
        if positions.shape != (ids.shape[0], self.num_modality_tokens):
            raise ValueError(f"modality_positions must be (batch, {self.num_modality_tokens}) "
                             f"({self.num_video_tokens} video + {self.num_audio_tokens} audio placeholders), "
                             f"got {positions.shape}")
        tokens, valid = self.encode(batch, dropout_rng=r_enc, stats=stats)
        embeds = self.llm.embed(ids)
        rows = jnp.arange(ids.shape[0])[:, None]
        embeds = embeds.at[rows, positions].set(tokens.astype(embeds.dtype))
        mask = batch['attention_mask'].astype(bool)
        mask = mask.at[rows, positions].set(mask[rows, positions] & valid)
        return embeds, mask

    def __call__(self, batch, *, dropout_rng=None, hidden_only: bool = False, stats: dict | None = None):
        """float32 logits (B, S, vocab) for a batch dict (``data/shapes.py``: MODEL_INPUTS); with ``hidden_only``
        the LLM's final normed hidden states (B, S, hidden) instead, for a loss fused with ``llm.head_kernel()``.
        ``stats``: a dict that gets the batch's video-token statistics (``encode``)."""
        r_prompt, r_llm = split_rng(dropout_rng, 2)
        embeds, mask = self.prompt_embeddings(batch, dropout_rng=r_prompt, stats=stats)
        return self.llm(inputs_embeds=embeds, attention_mask=mask, dropout_rng=r_llm, hidden_only=hidden_only)
