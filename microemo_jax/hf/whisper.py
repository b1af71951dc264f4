"""Load Whisper from a Hugging Face checkpoint folder (model_type 'whisper'): the encoder, or the whole
``WhisperForConditionalGeneration`` (encoder + decoder + its generation_config.json) for speech recognition.

transformers 5.x writes the encoder's tensors under one of three prefixes, all with the same
config.json (model_type 'whisper', the architecture in ``architectures``):

* ``WhisperEncoder.save_pretrained``: no prefix (``conv1.weight``, ``layers.0.fc1.weight``, ...);
* ``WhisperModel`` / ``WhisperForAudioClassification``: ``encoder.``;
* ``WhisperForConditionalGeneration`` (the openai/whisper-* hub checkpoints): ``model.encoder.``.

The prefix is found from the tensors present. ``load_whisper_encoder`` ignores decoder and head tensors;
any unexpected tensor under the encoder prefix (e.g. more layers than config.json says) is an error, never
dropped. ``load_whisper`` reads ``model.encoder.``/``model.decoder.`` (or ``encoder.``/``decoder.`` of a
WhisperModel) and ``proj_out.weight`` when the head is untied (tied checkpoints do not store it), and
refuses any tensor it has no place for.
"""
from __future__ import annotations

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from microemo_jax.hf.safetensors_io import CheckpointError, HFCheckpoint, assign, config_of, stack
from microemo_jax.models.whisper.decoder import WhisperDecoderConfig, WhisperSpeechModel
from microemo_jax.models.whisper.encoder import CONV_KERNEL, WhisperEncoder, WhisperEncoderConfig
from microemo_jax.models.whisper.transcribe import WhisperGenerationConfig

ENCODER_PREFIXES = ('', 'encoder.', 'model.encoder.')
_DEFAULTS = WhisperEncoderConfig()


def whisper_encoder_config_from_hf(config: dict) -> WhisperEncoderConfig:
    """The encoder fields of a HF Whisper config.json dict (missing keys take WhisperConfig's defaults)."""
    get = lambda key: config.get(key, getattr(_DEFAULTS, key))
    return WhisperEncoderConfig(
        num_mel_bins=int(get('num_mel_bins')),
        d_model=int(get('d_model')),
        encoder_layers=int(get('encoder_layers')),
        encoder_attention_heads=int(get('encoder_attention_heads')),
        encoder_ffn_dim=int(get('encoder_ffn_dim')),
        max_source_positions=int(get('max_source_positions')),
        activation_function=str(get('activation_function')),
        layer_norm_eps=1e-5,  # transformers builds nn.LayerNorm(d_model) with torch's default eps
        scale_embedding=bool(get('scale_embedding')),
        dropout=float(get('dropout')),
        activation_dropout=float(get('activation_dropout')),
    )


def _encoder_prefix(ckpt: HFCheckpoint) -> str:
    for prefix in ENCODER_PREFIXES:
        if ckpt.has(prefix + 'conv1.weight'):
            return prefix
    raise CheckpointError(
        f"{ckpt.path}: no Whisper encoder tensors: looked for 'conv1.weight' under the prefixes "
        f"{list(ENCODER_PREFIXES)} (architectures {ckpt.config.get('architectures')}; a decoder-only "
        f"WhisperForCausalLM checkpoint holds no encoder)")


def _conv_kernel(w: np.ndarray) -> np.ndarray:
    """torch Conv1d weight (out, in, k) -> im2col Dense kernel (k * in, out)."""
    out_ch, in_ch, k = w.shape
    return np.transpose(w, (2, 1, 0)).reshape(k * in_ch, out_ch)


def _layer_tensors(cfg: WhisperEncoderConfig) -> list[tuple[str, tuple[str, ...], tuple[int, ...], bool]]:
    """(HF name inside a layer, our path inside a block, HF shape, transpose?) for every layer tensor."""
    d, f = cfg.d_model, cfg.encoder_ffn_dim
    rows = []
    for proj, bias in (('q_proj', True), ('k_proj', False), ('v_proj', True), ('out_proj', True)):
        rows.append((f'self_attn.{proj}.weight', ('self_attn', proj, 'kernel'), (d, d), True))
        if bias:
            rows.append((f'self_attn.{proj}.bias', ('self_attn', proj, 'bias'), (d,), False))
    for norm in ('self_attn_layer_norm', 'final_layer_norm'):
        rows.append((f'{norm}.weight', (norm, 'scale'), (d,), False))
        rows.append((f'{norm}.bias', (norm, 'bias'), (d,), False))
    rows += [('fc1.weight', ('fc1', 'kernel'), (f, d), True), ('fc1.bias', ('fc1', 'bias'), (f,), False),
             ('fc2.weight', ('fc2', 'kernel'), (d, f), True), ('fc2.bias', ('fc2', 'bias'), (d,), False)]
    return rows


def _variable(module: nnx.Module, path: tuple[str, ...]) -> nnx.Variable:
    node = module
    for part in path:
        node = getattr(node, part)
    return node


def load_whisper_encoder(path: str | os.PathLike, *, dtype=jnp.float32, param_dtype=jnp.float32, scan: bool = False,
                         **kwargs) -> WhisperEncoder:
    """A ``WhisperEncoder`` with the weights of a standalone-encoder, WhisperModel or
    WhisperForConditionalGeneration checkpoint. ``kwargs`` go to the module (remat_policy, attention_impl)."""
    ckpt = HFCheckpoint(path)
    hf_cfg, _ = config_of(ckpt, model_types={'whisper': None}, what='a Whisper encoder')
    try:
        cfg = whisper_encoder_config_from_hf(hf_cfg)
    except (ValueError, TypeError) as e:
        raise CheckpointError(f"{ckpt.path}: config.json: {e}") from e
    model = nnx.eval_shape(lambda: WhisperEncoder(cfg, dtype=dtype, param_dtype=param_dtype, scan=scan,
                                                  rngs=nnx.Rngs(0), **kwargs))
    enc = ckpt.under(_encoder_prefix(ckpt))
    _assign_encoder(model, enc, cfg, scan, ckpt.path)
    _check_all_set(model, ckpt.path)
    return model


def _assign_encoder(model: WhisperEncoder, enc: HFCheckpoint, cfg: WhisperEncoderConfig, scan: bool,
                    path: str) -> None:
    """Every encoder tensor of ``enc`` (a prefix view) into the abstract ``model``; unexpected ones raise."""
    d, bins = cfg.d_model, cfg.num_mel_bins
    used = set()

    def get(name, shape):
        used.add(name)
        return enc.get(name, shape)

    where = lambda name: f"{path}: {enc.prefix}{name}"
    for conv, c_in in (('conv1', bins), ('conv2', d)):
        assign(getattr(model, conv).kernel, _conv_kernel(get(f'{conv}.weight', (d, c_in, CONV_KERNEL))),
               where=where(f'{conv}.weight'))
        assign(getattr(model, conv).bias, get(f'{conv}.bias', (d,)), where=where(f'{conv}.bias'))
    assign(model.embed_positions, get('embed_positions.weight', (cfg.max_source_positions, d)),
           where=where('embed_positions.weight'))
    assign(model.layer_norm.scale, get('layer_norm.weight', (d,)), where=where('layer_norm.weight'))
    assign(model.layer_norm.bias, get('layer_norm.bias', (d,)), where=where('layer_norm.bias'))
    _assign_layers(model.layers, enc, _layer_tensors(cfg), cfg.encoder_layers, scan, get, where)
    unexpected = [n for n in enc.names() if n not in used]  # the view holds only the encoder's tensors
    if unexpected:
        raise CheckpointError(f"{path}: tensors under the encoder prefix {enc.prefix!r} that a Whisper encoder "
                              f"with config.json's sizes has no place for: {unexpected[:10]}"
                              f"{' ...' if len(unexpected) > 10 else ''}")


def _assign_layers(stack_module, view, rows, num_layers: int, scan: bool, get, where) -> None:
    for name, ours, shape, transpose in rows:
        arrays = []
        for i in range(num_layers):
            a = get(f'layers.{i}.{name}', shape)
            arrays.append(a.T if transpose else a)
        if scan:
            assign(_variable(stack_module.blocks, ours), stack(arrays), where=where(f'layers.*.{name}'))
        else:
            for i, a in enumerate(arrays):
                assign(_variable(stack_module.blocks[i], ours), a, where=where(f'layers.{i}.{name}'))


def _check_all_set(model: nnx.Module, path: str) -> None:
    missing = [jax.tree_util.keystr(p) for p, v in jax.tree_util.tree_leaves_with_path(nnx.state(model))
               if isinstance(v, jax.ShapeDtypeStruct)]
    if missing:  # a bug in the mapping above, not in the checkpoint
        raise CheckpointError(f"{path}: parameters left unset by the Whisper loader: {missing}")


# ------------------------------------------------------------------------------ encoder + decoder (ASR)

DECODER_PREFIXES = ('model.decoder.', 'decoder.')
_DECODER_DEFAULTS = WhisperDecoderConfig()


def whisper_decoder_config_from_hf(config: dict) -> WhisperDecoderConfig:
    """The decoder fields of a HF Whisper config.json dict (missing keys take WhisperConfig's defaults, which
    are WhisperDecoderConfig's, as the encoder's are WhisperEncoderConfig's)."""
    get = lambda key: config.get(key, getattr(_DECODER_DEFAULTS, key))
    return WhisperDecoderConfig(
        vocab_size=int(get('vocab_size')), d_model=int(get('d_model')), decoder_layers=int(get('decoder_layers')),
        decoder_attention_heads=int(get('decoder_attention_heads')), decoder_ffn_dim=int(get('decoder_ffn_dim')),
        max_target_positions=int(get('max_target_positions')), activation_function=str(get('activation_function')),
        scale_embedding=bool(get('scale_embedding')), tie_word_embeddings=bool(get('tie_word_embeddings')))


def _decoder_layer_tensors(cfg: WhisperDecoderConfig) -> list[tuple[str, tuple[str, ...], tuple[int, ...], bool]]:
    d, f = cfg.d_model, cfg.decoder_ffn_dim
    rows = []
    for attn in ('self_attn', 'encoder_attn'):
        for proj, bias in (('q_proj', True), ('k_proj', False), ('v_proj', True), ('out_proj', True)):
            rows.append((f'{attn}.{proj}.weight', (attn, proj, 'kernel'), (d, d), True))
            if bias:
                rows.append((f'{attn}.{proj}.bias', (attn, proj, 'bias'), (d,), False))
    for norm in ('self_attn_layer_norm', 'encoder_attn_layer_norm', 'final_layer_norm'):
        rows.append((f'{norm}.weight', (norm, 'scale'), (d,), False))
        rows.append((f'{norm}.bias', (norm, 'bias'), (d,), False))
    rows += [('fc1.weight', ('fc1', 'kernel'), (f, d), True), ('fc1.bias', ('fc1', 'bias'), (f,), False),
             ('fc2.weight', ('fc2', 'kernel'), (d, f), True), ('fc2.bias', ('fc2', 'bias'), (d,), False)]
    return rows


def load_whisper(path: str | os.PathLike, *, dtype=jnp.float32, param_dtype=jnp.float32, scan: bool = False,
                 attention_impl: str | None = None) -> WhisperSpeechModel:
    """A ``WhisperSpeechModel`` (encoder + decoder) with the weights of a ``WhisperForConditionalGeneration``
    (or ``WhisperModel``: then the head is the tied embedding) checkpoint folder."""
    ckpt = HFCheckpoint(path)
    hf_cfg, _ = config_of(ckpt, model_types={'whisper': None}, what='a Whisper speech recognizer')
    try:
        enc_cfg, dec_cfg = whisper_encoder_config_from_hf(hf_cfg), whisper_decoder_config_from_hf(hf_cfg)
    except (ValueError, TypeError) as e:
        raise CheckpointError(f"{ckpt.path}: config.json: {e}") from e
    dec_prefix = next((p for p in DECODER_PREFIXES if ckpt.has(p + 'embed_tokens.weight')), None)
    if dec_prefix is None:
        raise CheckpointError(f"{ckpt.path}: no Whisper decoder tensors ('embed_tokens.weight' under "
                              f"{list(DECODER_PREFIXES)}; architectures {hf_cfg.get('architectures')}): speech "
                              f"recognition needs a WhisperForConditionalGeneration checkpoint, not an encoder alone")
    enc_prefix = dec_prefix.replace('decoder.', 'encoder.')
    model = nnx.eval_shape(lambda: WhisperSpeechModel(enc_cfg, dec_cfg, dtype=dtype, param_dtype=param_dtype,
                                                      scan=scan, attention_impl=attention_impl, rngs=nnx.Rngs(0)))
    _assign_encoder(model.encoder, ckpt.under(enc_prefix), enc_cfg, scan, ckpt.path)

    dec = ckpt.under(dec_prefix)
    used = set()

    def get(name, shape):
        used.add(name)
        return dec.get(name, shape)

    where = lambda name: f"{ckpt.path}: {dec.prefix}{name}"
    d, m = dec_cfg.d_model, model.decoder
    assign(m.embed_tokens.embedding, get('embed_tokens.weight', (dec_cfg.vocab_size, d)),
           where=where('embed_tokens.weight'))
    assign(m.embed_positions, get('embed_positions.weight', (dec_cfg.max_target_positions, d)),
           where=where('embed_positions.weight'))
    assign(m.layer_norm.scale, get('layer_norm.weight', (d,)), where=where('layer_norm.weight'))
    assign(m.layer_norm.bias, get('layer_norm.bias', (d,)), where=where('layer_norm.bias'))
    _assign_layers(m.layers, dec, _decoder_layer_tensors(dec_cfg), dec_cfg.decoder_layers, scan, get, where)
    unexpected = [n for n in dec.names() if n not in used]
    if unexpected:
        raise CheckpointError(f"{ckpt.path}: tensors under the decoder prefix {dec.prefix!r} that a Whisper decoder "
                              f"with config.json's sizes has no place for: {unexpected[:10]}"
                              f"{' ...' if len(unexpected) > 10 else ''}")
    if m.proj_out is not None:
        if not ckpt.has('proj_out.weight'):
            raise CheckpointError(f"{ckpt.path}: config.json unties the output head (tie_word_embeddings false) but "
                                  f"'proj_out.weight' is missing")
        assign(m.proj_out.kernel, ckpt.get('proj_out.weight', (dec_cfg.vocab_size, d)).T,
               where=f"{ckpt.path}: proj_out.weight")
    elif ckpt.has('proj_out.weight'):
        head = ckpt.get('proj_out.weight', (dec_cfg.vocab_size, d))
        if not np.array_equal(head, np.asarray(m.embed_tokens.embedding.get_value())):
            raise CheckpointError(f"{ckpt.path}: proj_out.weight differs from the decoder's embed_tokens.weight but "
                                  f"config.json ties them (tie_word_embeddings true); fix config.json")
    others = [n for n in ckpt.under('').names()
              if not n.startswith((enc_prefix, dec_prefix)) and n != 'proj_out.weight']
    if others:
        raise CheckpointError(f"{ckpt.path}: tensors a Whisper speech recognizer has no place for: {others[:10]}")
    _check_all_set(model, ckpt.path)
    return model


def load_whisper_generation_config(path: str | os.PathLike) -> WhisperGenerationConfig:
    """The timestamp/decoding settings of a checkpoint folder's generation_config.json."""
    file = os.path.join(os.fspath(path), 'generation_config.json')
    if not os.path.isfile(file):
        raise CheckpointError(f"{file} is missing: timestamped Whisper decoding needs the checkpoint's generation "
                              f"config (no_timestamps_token_id, lang_to_id, task_to_id, suppress_tokens; the "
                              f"openai/whisper-* folders ship it)")
    try:
        with open(file, encoding='utf-8') as f:
            data = json.load(f)
        return WhisperGenerationConfig.from_dict(data, where=file)
    except (OSError, ValueError, TypeError, AttributeError) as e:
        raise CheckpointError(f"{file}: {e}") from None
