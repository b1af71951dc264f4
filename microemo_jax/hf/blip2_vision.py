"""Load the BLIP-2 / InstructBLIP vision tower from a Hugging Face checkpoint into ``VisionTransformer``.

Accepted: a standalone ``Blip2VisionModel`` / ``InstructBlipVisionModel`` save, or a whole
``Blip2ForConditionalGeneration`` / ``InstructBlipForConditionalGeneration`` (or ``Blip2Model``)
save, whose tower lives under ``vision_model.``. transformers stores the attention input projection
fused (``qkv.weight`` (3E, E), ``qkv.bias`` (3E,)); it is split into query/key/value here, and the key
third of the bias is dropped because softmax cancels it (see ``models/vit.py``).
Every tensor under the tower's prefix must be used, so a mismatched config cannot lose weights silently.
"""
from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from microemo_jax.hf.safetensors_io import CheckpointError, HFCheckpoint, assign, config_of, stack
from microemo_jax.models.vit import VisionConfig, VisionTransformer

# model_type -> sub-config key (None: the checkpoint is the tower itself); from transformers 5.24
MODEL_TYPES = {'blip_2_vision_model': None, 'instructblip_vision_model': None,
               'blip-2': 'vision_config', 'instructblip': 'vision_config'}
_PREFIX = {'blip_2_vision_model': '', 'instructblip_vision_model': '',
           'blip-2': 'vision_model.', 'instructblip': 'vision_model.'}

# Blip2VisionConfig defaults: what transformers assumes for keys a config.json leaves out.
_HF_DEFAULTS = dict(hidden_size=1408, intermediate_size=6144, num_hidden_layers=39, num_attention_heads=16,
                    image_size=224, patch_size=14, hidden_act='gelu', layer_norm_eps=1e-6, attention_dropout=0.0,
                    qkv_bias=True)


def vision_config_from_hf(config: dict) -> VisionConfig:
    """``VisionConfig`` from the dict of a ``Blip2VisionConfig`` / ``InstructBlipVisionConfig``."""
    c = {**_HF_DEFAULTS, **{k: v for k, v in config.items() if v is not None}}
    sizes = {}
    for key in ('image_size', 'patch_size'):
        v = c[key]
        if isinstance(v, (list, tuple)) and len(v) == 2 and v[0] == v[1]:
            v = v[0]
        if not isinstance(v, int) or isinstance(v, bool):
            raise CheckpointError(f"vision config: {key}={c[key]!r} is not supported (need one int; "
                                  f"non-square sizes are not supported by Blip2VisionModel either)")
        sizes[key] = v
    try:
        return VisionConfig(hidden_size=int(c['hidden_size']), intermediate_size=int(c['intermediate_size']),
                            num_layers=int(c['num_hidden_layers']), num_heads=int(c['num_attention_heads']),
                            patch_size=sizes['patch_size'], image_size=sizes['image_size'],
                            num_channels=3,  # Blip2VisionEmbeddings hard-codes a 3-channel conv
                            layer_norm_eps=float(c['layer_norm_eps']), qkv_bias=bool(c['qkv_bias']),
                            hidden_act=str(c['hidden_act']), attention_dropout=float(c['attention_dropout']))
    except ValueError as e:
        raise CheckpointError(f"vision config: {e}") from e


def load_blip2_vision(path: str | os.PathLike, *, dtype=jnp.float32, param_dtype=jnp.float32, scan: bool = False,
                      **kwargs) -> VisionTransformer:
    """A ``VisionTransformer`` holding the checkpoint's vision tower; ``kwargs`` go to the constructor
    (``remat_policy``, ``attention_impl``)."""
    ckpt = HFCheckpoint(path)
    raw, model_type = config_of(ckpt, model_types=MODEL_TYPES, what='the BLIP-2 vision tower')
    try:
        cfg = vision_config_from_hf(raw)
    except CheckpointError as e:
        raise CheckpointError(f"{ckpt.path}: {e}") from e
    view = ckpt.under(_PREFIX[model_type])
    # Shapes only: every parameter is overwritten below, so random init of a 1B-parameter tower is skipped.
    model = nnx.eval_shape(lambda: VisionTransformer(cfg, dtype=dtype, param_dtype=param_dtype, scan=scan,
                                                     rngs=nnx.Rngs(0), **kwargs))
    reader = _Reader(view)
    for target, name, value in _top_level(reader, cfg):
        assign(_variable(model, target), value, where=f"{ckpt.path}: {view.prefix}{name}")
    layers = [_layer(reader, cfg, i) for i in range(cfg.num_layers)]
    if scan:
        for j, (target, name, _) in enumerate(layers[0] if layers else []):
            value = stack([layer[j][2] for layer in layers])
            assign(_variable(model.encoder.blocks, target), value,
                   where=f"{ckpt.path}: {view.prefix}encoder.layers.*.{name}")
    else:
        for i, layer in enumerate(layers):
            for target, name, value in layer:
                assign(_variable(model.encoder.blocks[i], target), value,
                       where=f"{ckpt.path}: {view.prefix}encoder.layers.{i}.{name}")
    unused = sorted(set(view.names()) - reader.used)
    if unused:
        raise CheckpointError(f"{ckpt.path}: {len(unused)} tensor(s) under {view.prefix!r} do not fit the vision "
                              f"config ({cfg.num_layers} layers, qkv_bias={cfg.qkv_bias}): "
                              f"{[view.prefix + n for n in unused[:5]]}")
    _check_all_loaded(model, ckpt.path)
    return model


class _Reader:
    """Shape-checked reads that remember which tensors were consumed."""

    def __init__(self, view: HFCheckpoint):
        self.view, self.used = view, set()

    def __call__(self, name: str, shape: tuple[int, ...]) -> np.ndarray:
        self.used.add(name)
        return self.view.get(name, shape)


def _top_level(get: _Reader, cfg: VisionConfig) -> list[tuple[str, str, np.ndarray]]:
    """(our parameter path, HF name, array) for the embeddings and the final LayerNorm."""
    e, c, p = cfg.hidden_size, cfg.num_channels, cfg.patch_size
    conv = get('embeddings.patch_embedding.weight', (e, c, p, p))
    return [
        # conv weight (E, C, P, P) -> Dense kernel over patches flattened in (C, P, P) order
        ('embeddings.patch.kernel', 'embeddings.patch_embedding.weight', conv.reshape(e, c * p * p).T),
        ('embeddings.patch.bias', 'embeddings.patch_embedding.bias',
         get('embeddings.patch_embedding.bias', (e,))),
        ('embeddings.class_embedding', 'embeddings.class_embedding',
         get('embeddings.class_embedding', (1, 1, e)).reshape(e)),
        ('embeddings.position_embedding', 'embeddings.position_embedding',
         get('embeddings.position_embedding', (1, cfg.num_positions, e)).reshape(cfg.num_positions, e)),
        ('post_layernorm.scale', 'post_layernorm.weight', get('post_layernorm.weight', (e,))),
        ('post_layernorm.bias', 'post_layernorm.bias', get('post_layernorm.bias', (e,))),
    ]


def _layer(get: _Reader, cfg: VisionConfig, i: int) -> list[tuple[str, str, np.ndarray]]:
    """(path inside a VisionBlock, HF name inside the layer, array) for encoder layer ``i``."""
    e, m = cfg.hidden_size, cfg.intermediate_size

    def t(name, shape):
        return get(f'encoder.layers.{i}.{name}', shape)

    qkv = t('self_attn.qkv.weight', (3 * e, e))
    out = [
        ('layer_norm1.scale', 'layer_norm1.weight', t('layer_norm1.weight', (e,))),
        ('layer_norm1.bias', 'layer_norm1.bias', t('layer_norm1.bias', (e,))),
        ('self_attn.query.kernel', 'self_attn.qkv.weight[0:E]', qkv[:e].T),
        ('self_attn.key.kernel', 'self_attn.qkv.weight[E:2E]', qkv[e:2 * e].T),
        ('self_attn.value.kernel', 'self_attn.qkv.weight[2E:3E]', qkv[2 * e:].T),
    ]
    if cfg.qkv_bias:
        bias = t('self_attn.qkv.bias', (3 * e,))  # key third bias[E:2E] is cancelled by softmax
        out += [('self_attn.query.bias', 'self_attn.qkv.bias[0:E]', bias[:e]),
                ('self_attn.value.bias', 'self_attn.qkv.bias[2E:3E]', bias[2 * e:])]
    out += [
        ('self_attn.projection.kernel', 'self_attn.projection.weight', t('self_attn.projection.weight', (e, e)).T),
        ('self_attn.projection.bias', 'self_attn.projection.bias', t('self_attn.projection.bias', (e,))),
        ('layer_norm2.scale', 'layer_norm2.weight', t('layer_norm2.weight', (e,))),
        ('layer_norm2.bias', 'layer_norm2.bias', t('layer_norm2.bias', (e,))),
        ('mlp.fc1.kernel', 'mlp.fc1.weight', t('mlp.fc1.weight', (m, e)).T),
        ('mlp.fc1.bias', 'mlp.fc1.bias', t('mlp.fc1.bias', (m,))),
        ('mlp.fc2.kernel', 'mlp.fc2.weight', t('mlp.fc2.weight', (e, m)).T),
        ('mlp.fc2.bias', 'mlp.fc2.bias', t('mlp.fc2.bias', (e,))),
    ]
    return out


def _variable(module: nnx.Module, path: str) -> nnx.Variable:
    node = module
    for part in path.split('.'):
        node = getattr(node, part)
    return node


def _check_all_loaded(model: VisionTransformer, path: str) -> None:
    """Guard against a parameter left as an abstract shape (a mapping this loader forgot)."""
    missing = [jax.tree_util.keystr(k) for k, v in jax.tree_util.tree_leaves_with_path(nnx.state(model))
               if not isinstance(v, jax.Array)]
    if missing:
        raise CheckpointError(f"{path}: parameters not set from the checkpoint: {missing}")
