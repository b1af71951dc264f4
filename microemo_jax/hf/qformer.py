"""Load a Q-Former (and the learned query tokens) from a Hugging Face checkpoint directory.

Accepted checkpoints:

* standalone ``Blip2QFormerModel`` (model_type 'blip_2_qformer') and ``InstructBlipQFormerModel``
  ('instructblip_qformer') saves;
* whole ``Blip2*`` ('blip-2') and ``InstructBlip*`` ('instructblip') models, whose Q-Former lives under
  ``qformer.`` with its config in ``qformer_config``; their ``query_tokens`` come from ``load_query_tokens``.

A Blip2QFormerModel owns the text-side FFN (``intermediate``/``output``) only when its config sets
``use_qformer_text_input``; such tensors found in a save whose config does not ask for them are
unused by transformers and skipped here too (pass ``text_ffn=True`` to load them anyway).
"""
from __future__ import annotations

import dataclasses
import os

import jax.numpy as jnp
import numpy as np
from flax import nnx

from microemo_jax.hf.safetensors_io import CheckpointError, HFCheckpoint, assign, config_of
from microemo_jax.models.qformer import QFormer, QFormerConfig

STANDALONE = ('blip_2_qformer', 'instructblip_qformer')
FULL = {'blip-2': 'blip_2_qformer', 'instructblip': 'instructblip_qformer'}  # full model -> Q-Former layout
MODEL_TYPES = {**{t: None for t in STANDALONE}, **{t: 'qformer_config' for t in FULL}}

# transformers' defaults (Blip2QFormerConfig / InstructBlipQFormerConfig), for keys an older config.json omits
_DEFAULTS = dict(vocab_size=30522, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                 intermediate_size=3072, hidden_act='gelu', hidden_dropout_prob=0.1,
                 attention_probs_dropout_prob=0.1, max_position_embeddings=512, layer_norm_eps=1e-12,
                 pad_token_id=0, cross_attention_frequency=2, encoder_hidden_size=1408,
                 use_qformer_text_input=False)
_VISION_HIDDEN_DEFAULT = 1408
_TEXT_FFN = ('intermediate.', 'output.')  # prefixes of the text-side FFN inside a layer
_IGNORED = ('embeddings.position_ids',)  # a buffer some older saves persisted


def qformer_config_from_hf(config: dict) -> QFormerConfig:
    """QFormerConfig from a Q-Former config.json dict, or from a whole BLIP-2/InstructBLIP config.json.

    For a whole model the cross-attention width is the vision tower's hidden size, as transformers sets it.
    """
    model_type = config.get('model_type')
    encoder_hidden_size = None
    if model_type in FULL:
        sub = config.get('qformer_config')
        if not isinstance(sub, dict):
            raise CheckpointError(f"config of a {model_type!r} model has no 'qformer_config' section")
        vision = config.get('vision_config') or {}
        encoder_hidden_size = vision.get('hidden_size', _VISION_HIDDEN_DEFAULT)
        layout = FULL[model_type]
        config = sub
    elif model_type in STANDALONE:
        layout = model_type
    else:
        raise CheckpointError(f"config has model_type {model_type!r}; a Q-Former needs one of "
                              f"{sorted(MODEL_TYPES)}")
    c = {**_DEFAULTS, **{k: v for k, v in config.items() if v is not None or k not in _DEFAULTS}}
    has_text = layout == 'instructblip_qformer'
    return QFormerConfig(
        hidden_size=int(c['hidden_size']),
        num_layers=int(c['num_hidden_layers']),
        num_heads=int(c['num_attention_heads']),
        intermediate_size=int(c['intermediate_size']),
        cross_attention_frequency=int(c['cross_attention_frequency']),
        encoder_hidden_size=int(encoder_hidden_size if encoder_hidden_size is not None else c['encoder_hidden_size']),
        layer_norm_eps=float(c['layer_norm_eps']),
        vocab_size=int(c['vocab_size']) if has_text else 0,
        max_position_embeddings=int(c['max_position_embeddings']),
        pad_token_id=int(c['pad_token_id']),
        hidden_dropout=float(c['hidden_dropout_prob']),
        attention_dropout=float(c['attention_probs_dropout_prob']),
        text_ffn=has_text or bool(c['use_qformer_text_input']),
        hidden_act=str(c['hidden_act']),
    )


def load_qformer(path: str | os.PathLike, *, dtype=jnp.float32, param_dtype=jnp.float32, **kwargs) -> QFormer:
    """A QFormer with the checkpoint's weights.

    ``kwargs``: ``attention_impl`` (passed to the module) and QFormerConfig field overrides such as
    ``hidden_dropout=0.0`` or ``text_ffn=True``.
    """
    attention_impl = kwargs.pop('attention_impl', None)
    fields = {f.name for f in dataclasses.fields(QFormerConfig)}
    unknown = sorted(set(kwargs) - fields)
    if unknown:
        raise TypeError(f"load_qformer: unknown arguments {unknown}; config overrides must be among {sorted(fields)}")
    ckpt = HFCheckpoint(path)
    _, model_type = config_of(ckpt, model_types=MODEL_TYPES, what='a Q-Former')
    cfg = dataclasses.replace(qformer_config_from_hf(ckpt.config), **kwargs)
    view = ckpt.under('qformer.') if model_type in FULL else ckpt
    if model_type in FULL and not view.has_prefix('encoder.layer.'):
        raise CheckpointError(f"{ckpt.path}: a {model_type!r} checkpoint without 'qformer.encoder.layer.*' tensors")
    model = QFormer(cfg, dtype=dtype, param_dtype=param_dtype, attention_impl=attention_impl, rngs=nnx.Rngs(0))
    used = _load_weights(model, view, layout=FULL.get(model_type, model_type))
    _check_unused(view, used, cfg)
    return model


def load_query_tokens(path: str | os.PathLike) -> np.ndarray:
    """The learned ``query_tokens`` (1, Q, H) of a whole BLIP-2 / InstructBLIP checkpoint."""
    ckpt = HFCheckpoint(path)
    _, model_type = config_of(ckpt, model_types=MODEL_TYPES, what='query tokens')
    if model_type not in FULL:
        raise CheckpointError(f"{ckpt.path}: a standalone {model_type!r} save holds no query_tokens; they live in "
                              f"the whole model's checkpoint (model_type one of {sorted(FULL)})")
    cfg = qformer_config_from_hf(ckpt.config)
    num_queries = int(ckpt.config.get('num_query_tokens', 32))
    return np.asarray(ckpt.get('query_tokens', (1, num_queries, cfg.hidden_size)), dtype=np.float32)


def _load_weights(model: QFormer, ckpt: HFCheckpoint, *, layout: str) -> set[str]:
    cfg, used = model.cfg, set()

    def get(name, shape):
        used.add(name)
        return ckpt.get(name, shape)

    def where(name):
        return f"{ckpt.path}: {ckpt.prefix}{name}"

    def dense(mod, name):
        w = get(f'{name}.weight', (mod.out_features, mod.in_features))
        assign(mod.kernel, w.T, where=where(f'{name}.weight'))
        assign(mod.bias, get(f'{name}.bias', (mod.out_features,)), where=where(f'{name}.bias'))

    def norm(mod, name):
        assign(mod.scale, get(f'{name}.weight', (cfg.hidden_size,)), where=where(f'{name}.weight'))
        assign(mod.bias, get(f'{name}.bias', (cfg.hidden_size,)), where=where(f'{name}.bias'))

    if layout == 'instructblip_qformer':
        for mod, name, rows in ((model.word_embeddings, 'embeddings.word_embeddings.weight', cfg.vocab_size),
                                (model.position_embeddings, 'embeddings.position_embeddings.weight',
                                 cfg.max_position_embeddings)):
            assign(mod.embedding, get(name, (rows, cfg.hidden_size)), where=where(name))
        norm(model.layernorm, 'embeddings.layernorm')
    else:
        norm(model.layernorm, 'layernorm')

    def attn(mod, name):
        for part in ('query', 'key', 'value'):
            dense(getattr(mod, part), f'{name}.attention.{part}')
        dense(mod.out, f'{name}.output.dense')
        norm(mod.norm, f'{name}.output.LayerNorm')

    def ffn(mod, inter, out):
        dense(mod.intermediate, f'{inter}.dense')
        dense(mod.output, f'{out}.dense')
        norm(mod.norm, f'{out}.LayerNorm')

    for i, layer in enumerate(model.layers):
        p = f'encoder.layer.{i}.'
        attn(layer.attention, p + 'attention')
        if layer.crossattention is not None:
            attn(layer.crossattention, p + 'crossattention')
        ffn(layer.ffn_query, p + 'intermediate_query', p + 'output_query')
        if layer.ffn_text is not None:
            ffn(layer.ffn_text, p + 'intermediate', p + 'output')
    return used


def _check_unused(ckpt: HFCheckpoint, used: set[str], cfg: QFormerConfig) -> None:
    """Tensors the config does not explain mean the config and the weights disagree (e.g. layer count)."""
    def skippable(name):
        if name in _IGNORED:
            return True
        if not cfg.text_ffn and name.startswith('encoder.layer.'):
            rest = name.split('.', 3)[3]
            return rest.startswith(_TEXT_FFN)
        return False

    extra = [n for n in ckpt.names() if n not in used and not skippable(n)]
    if extra:
        shown = ', '.join(repr(ckpt.prefix + n) for n in extra[:8])
        raise CheckpointError(f"{ckpt.path}: {len(extra)} Q-Former tensors not explained by config.json "
                              f"(num_hidden_layers={cfg.num_layers}, cross_attention_frequency="
                              f"{cfg.cross_attention_frequency}, text_ffn={cfg.text_ffn}): {shown}")
