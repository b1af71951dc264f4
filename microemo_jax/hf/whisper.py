"""Load a Whisper encoder from a Hugging Face checkpoint folder (model_type 'whisper').

transformers 5.x writes the encoder's tensors under one of three prefixes, all with the same
config.json (model_type 'whisper', the architecture in ``architectures``):

* ``WhisperEncoder.save_pretrained``: no prefix (``conv1.weight``, ``layers.0.fc1.weight``, ...);
* ``WhisperModel`` / ``WhisperForAudioClassification``: ``encoder.``;
* ``WhisperForConditionalGeneration`` (the openai/whisper-* hub checkpoints): ``model.encoder.``.

The prefix is found from the tensors present. Decoder and head tensors are ignored; any unexpected
tensor under the encoder prefix (e.g. more layers than config.json says) is an error, never dropped.
"""
from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from microemo_jax.hf.checkpoint import CheckpointError, HFCheckpoint, assign, config_of, stack
from microemo_jax.models.whisper import CONV_KERNEL, WhisperEncoder, WhisperEncoderConfig

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
    enc = ckpt.under(_encoder_prefix(ckpt))
    d, bins = cfg.d_model, cfg.num_mel_bins

    # Abstract module: the real values all come from the checkpoint, so skip the random init.
    model = nnx.eval_shape(lambda: WhisperEncoder(cfg, dtype=dtype, param_dtype=param_dtype, scan=scan,
                                                  rngs=nnx.Rngs(0), **kwargs))
    used = set()

    def get(name, shape):
        used.add(name)
        return enc.get(name, shape)

    where = lambda name: f"{ckpt.path}: {enc.prefix}{name}"
    for conv, c_in in (('conv1', bins), ('conv2', d)):
        assign(getattr(model, conv).kernel, _conv_kernel(get(f'{conv}.weight', (d, c_in, CONV_KERNEL))),
               where=where(f'{conv}.weight'))
        assign(getattr(model, conv).bias, get(f'{conv}.bias', (d,)), where=where(f'{conv}.bias'))
    assign(model.embed_positions, get('embed_positions.weight', (cfg.max_source_positions, d)),
           where=where('embed_positions.weight'))
    assign(model.layer_norm.scale, get('layer_norm.weight', (d,)), where=where('layer_norm.weight'))
    assign(model.layer_norm.bias, get('layer_norm.bias', (d,)), where=where('layer_norm.bias'))

    for name, ours, shape, transpose in _layer_tensors(cfg):
        arrays = []
        for i in range(cfg.encoder_layers):
            a = get(f'layers.{i}.{name}', shape)
            arrays.append(a.T if transpose else a)
        if scan:
            assign(_variable(model.layers.blocks, ours), stack(arrays), where=where(f'layers.*.{name}'))
        else:
            for i, a in enumerate(arrays):
                assign(_variable(model.layers.blocks[i], ours), a, where=where(f'layers.{i}.{name}'))

    unexpected = [n for n in enc.names() if n not in used]  # the view holds only the encoder's tensors
    if unexpected:
        raise CheckpointError(f"{ckpt.path}: tensors under the encoder prefix {enc.prefix!r} that a Whisper encoder "
                              f"with config.json's sizes has no place for: {unexpected[:10]}"
                              f"{' ...' if len(unexpected) > 10 else ''}")
    _check_all_set(model, ckpt.path)
    return model


def _check_all_set(model: nnx.Module, path: str) -> None:
    missing = [jax.tree_util.keystr(p) for p, v in jax.tree_util.tree_leaves_with_path(nnx.state(model))
               if isinstance(v, jax.ShapeDtypeStruct)]
    if missing:  # a bug in the mapping above, not in the checkpoint
        raise CheckpointError(f"{path}: parameters left unset by the Whisper loader: {missing}")
