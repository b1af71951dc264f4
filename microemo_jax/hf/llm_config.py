"""transformers' config.json of a LLaMA, Qwen2/2.5 or Qwen3 causal LM <-> ``models.llama.LlamaConfig``.

One module, three families; what differs is read into config fields (``FAMILIES`` says which):

* ``llama``: ``attention_bias`` (q, k, v and o), ``mlp_bias``; head_dim defaults to hidden/heads.
* ``qwen2`` (Qwen2 and Qwen2.5): biases on q, k and v but not o, always; no MLP biases.
* ``qwen3``: RMSNorm on each head of q and k before RoPE; ``attention_bias`` (all four, off in the released
  models); ``head_dim`` its own field (128 when config.json omits it, as transformers' Qwen3Config).

RoPE is read in both spellings transformers has used: 5.x's ``rope_parameters`` (holding ``rope_theta`` and
``rope_type``) and the older top-level ``rope_theta`` plus ``rope_scaling`` (which wins when both are there,
as in transformers). The Qwen sliding window is read as transformers reads it (``use_sliding_window``,
``sliding_window``, ``max_window_layers``, ``layer_types``). Anything the model cannot honour is a
CheckpointError naming the key.
"""
from __future__ import annotations

from microemo_jax.hf.safetensors_io import CheckpointError
from microemo_jax.models import rope
from microemo_jax.models.llama import LlamaConfig

# model_type -> (transformers architecture, default head_dim or None for hidden/heads, default max positions)
FAMILIES = {
    'llama': ('LlamaForCausalLM', None, 2048),
    'qwen2': ('Qwen2ForCausalLM', None, 32768),
    'qwen3': ('Qwen3ForCausalLM', 128, 32768),
}
LAYER_TYPES = ('full_attention', 'sliding_attention')


def model_type_of(hf: dict, *, where: str = 'config.json') -> str:
    model_type = hf.get('model_type')
    if model_type not in FAMILIES:
        raise CheckpointError(f"{where}: model_type {model_type!r} is not supported; the language model must be "
                              f"one of {sorted(FAMILIES)} ({', '.join(a for a, _, _ in FAMILIES.values())})")
    return model_type


def _rope(hf: dict, where: str) -> tuple[float, tuple | None]:
    """(rope_theta, scaling parameters or None), following transformers' ``convert_rope_params_to_dict``."""
    rope_params = hf.get('rope_scaling') or hf.get('rope_parameters') or {}
    if not isinstance(rope_params, dict):
        raise CheckpointError(f"{where}: rope_parameters / rope_scaling must be an object, got {rope_params!r}")
    rope_params = dict(rope_params)
    nested = [k for k in rope_params if k in LAYER_TYPES]
    if nested:  # per-layer-type RoPE: fine only when every layer type has the same one
        values = [rope_params[k] for k in nested]
        if any(v != values[0] for v in values) or not isinstance(values[0], dict):
            raise CheckpointError(f"{where}: rope_parameters differ between layer types {nested}; not supported")
        rope_params = dict(values[0])
    theta = float(rope_params.get('rope_theta', hf.get('rope_theta') or 10000.0))
    factor = rope_params.get('partial_rotary_factor', hf.get('partial_rotary_factor'))
    if factor is not None and float(factor) != 1.0:
        raise CheckpointError(f"{where}: partial_rotary_factor {factor} is not supported (only 1.0: RoPE over "
                              f"the whole head)")
    rope_type = rope_params.get('rope_type', rope_params.get('type', 'default'))
    if rope_type == 'default':
        return theta, None
    if rope_type not in rope.ROPE_TYPES:
        raise CheckpointError(f"{where}: rope_scaling / rope_parameters rope_type {rope_type!r} is not supported "
                              f"('default' or one of {sorted(rope.ROPE_TYPES)})")
    params = {k: v for k, v in rope_params.items() if k not in ('rope_theta', 'type', 'partial_rotary_factor')}
    params['rope_type'] = rope_type
    if rope_type in ('llama3', 'yarn'):  # transformers: a top-level value wins, else max_position_embeddings
        if hf.get('original_max_position_embeddings') is not None:
            params['original_max_position_embeddings'] = hf['original_max_position_embeddings']
        params.setdefault('original_max_position_embeddings', hf.get('max_position_embeddings'))
    if rope_type == 'yarn' and 'factor' in params and params['factor'] is None and hf.get('max_position_embeddings'):
        params['factor'] = hf['max_position_embeddings'] / params['original_max_position_embeddings']
    try:
        return theta, rope.check_rope_params(params)
    except ValueError as e:
        raise CheckpointError(f"{where}: rope_scaling / rope_parameters: {e}") from None


def _sliding(hf: dict, num_layers: int, where: str) -> tuple[int | None, tuple[int, ...]]:
    """(window, layers that use it), as transformers' Qwen2Config / Qwen3Config derive them."""
    window = hf.get('sliding_window') if hf.get('use_sliding_window', False) else None
    types = hf.get('layer_types')
    if types is None:
        first = int(hf.get('max_window_layers', 28))
        types = ['sliding_attention' if window is not None and i >= first else 'full_attention'
                 for i in range(num_layers)]
    if len(types) != num_layers or any(t not in LAYER_TYPES for t in types):
        raise CheckpointError(f"{where}: layer_types must list {num_layers} of {LAYER_TYPES}, got {types}")
    layers = tuple(i for i, t in enumerate(types) if t == 'sliding_attention')
    if window is None or not layers:
        return None, ()
    return int(window), layers


def llm_config_from_hf(hf: dict, *, where: str = 'config.json') -> LlamaConfig:
    """The LlamaConfig of a transformers LlamaForCausalLM / Qwen2ForCausalLM / Qwen3ForCausalLM config dict."""
    family = model_type_of(hf, where=where)
    _, default_head_dim, default_positions = FAMILIES[family]
    act = hf.get('hidden_act', 'silu')
    if act != 'silu':
        raise CheckpointError(f"{where}: hidden_act {act!r} is not supported (these families use 'silu')")
    try:
        heads, hidden, layers = int(hf['num_attention_heads']), int(hf['hidden_size']), int(hf['num_hidden_layers'])
        theta, scaling = _rope(hf, where)
        window, sliding_layers = _sliding(hf, layers, where) if family != 'llama' else (None, ())
        try:
            return LlamaConfig(
                vocab_size=int(hf['vocab_size']), hidden_size=hidden, intermediate_size=int(hf['intermediate_size']),
                num_layers=layers, num_heads=heads, num_kv_heads=int(hf.get('num_key_value_heads') or heads),
                head_dim=int(hf.get('head_dim') or default_head_dim or hidden // heads),
                rms_norm_eps=float(hf.get('rms_norm_eps', 1e-6)), rope_theta=theta, rope_scaling=scaling,
                max_position_embeddings=int(hf.get('max_position_embeddings') or default_positions),
                tie_word_embeddings=bool(hf.get('tie_word_embeddings', False)),
                attention_bias=family != 'qwen2' and bool(hf.get('attention_bias', False)),
                mlp_bias=family == 'llama' and bool(hf.get('mlp_bias', False)),
                qkv_bias=family == 'qwen2', qk_norm=family == 'qwen3',
                sliding_window=window, sliding_layers=sliding_layers)
        except ValueError as e:
            raise CheckpointError(f"{where}: {e}") from None
    except KeyError as e:
        raise CheckpointError(f"{where}: {family} config lacks {e.args[0]!r}") from None


def family_of(cfg: LlamaConfig) -> str:
    """The transformers model_type that computes what ``cfg`` computes (for export)."""
    if cfg.qk_norm:
        if cfg.mlp_bias or (cfg.qkv_bias and not cfg.attention_bias):
            raise ValueError("no transformers family has q/k norms with MLP biases or q/k/v-only biases")
        return 'qwen3'
    if cfg.qkv_bias and not cfg.attention_bias:
        if cfg.mlp_bias:
            raise ValueError("no transformers family has q/k/v-only biases with MLP biases")
        return 'qwen2'
    if cfg.sliding_window is not None:
        raise ValueError("a sliding window needs a Qwen family (qkv_bias or qk_norm)")
    return 'llama'


def llm_config_to_hf(cfg: LlamaConfig, *, dtype: str = 'float32') -> dict:
    """config.json for transformers (5.x spelling: ``rope_parameters``) of the family ``family_of(cfg)``."""
    family = family_of(cfg)
    rope_params = {'rope_type': 'default', 'rope_theta': cfg.rope_theta}
    if cfg.rope_params is not None:
        rope_params = {**cfg.rope_params, 'rope_theta': cfg.rope_theta}
    out = {
        'architectures': [FAMILIES[family][0]], 'model_type': family, 'vocab_size': cfg.vocab_size,
        'hidden_size': cfg.hidden_size, 'intermediate_size': cfg.intermediate_size,
        'num_hidden_layers': cfg.num_layers, 'num_attention_heads': cfg.num_heads,
        'num_key_value_heads': cfg.num_kv_heads, 'head_dim': cfg.head_dim, 'hidden_act': 'silu',
        'max_position_embeddings': cfg.max_position_embeddings, 'rms_norm_eps': cfg.rms_norm_eps,
        'rope_parameters': rope_params, 'tie_word_embeddings': cfg.tie_word_embeddings, 'attention_dropout': 0.0,
        'dtype': dtype, 'use_cache': True,
    }
    if family == 'llama':
        out.update(attention_bias=cfg.attention_bias, mlp_bias=cfg.mlp_bias)
    else:
        if family == 'qwen3':
            out['attention_bias'] = cfg.attention_bias
        sliding = set(cfg.sliding_layers)
        out.update(use_sliding_window=cfg.sliding_window is not None, sliding_window=cfg.sliding_window,
                   max_window_layers=min(sliding, default=cfg.num_layers),
                   layer_types=['sliding_attention' if i in sliding else 'full_attention'
                                for i in range(cfg.num_layers)])
    return out
