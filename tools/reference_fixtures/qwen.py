"""Tiny Qwen2ForCausalLM / Qwen3ForCausalLM checkpoints, their logits and their greedy tokens on a left-padded batch.

Cases (two per family that differ in size and settings; each guards a family difference):
* ``qwen2_tied_bias``: q/k/v biases (not o), tied head, rope_theta 1e6, GQA 4:2, 2 layers, the 5.x config
  spelling (``rope_parameters``, ``layer_types``, null EOS id).
* ``qwen2_untied_yarn_sharded``: untied head, GQA 6:2 with head_dim 8 != hidden 24 / 6 heads, YaRN RoPE written in the
  OLD spelling (top-level ``rope_theta`` + ``rope_scaling`` with ``type``), a sliding window on the last layer
  that is wider than every input (so it is honoured), 3 layers, sharded safetensors with an index.
* ``qwen3_qknorm_untied``: per-head q/k RMSNorm, head_dim 16 with hidden 32 / 4 heads, GQA 4:2, untied,
  rope_theta 1e6, no biases.
* ``qwen3_tied_bias_linear``: q/k norm, tied head, ``attention_bias`` (q, k, v and o), multi-query (8:1), head_dim 8
  with hidden 24 / 8 heads, linear RoPE scaling, rms_norm_eps 1e-5, 3 layers.
* ``qwen3_dynamic``: dynamic-NTK RoPE with max_position_embeddings 8 < the 12 input positions, so the rescaled
  base is in use (logits only: transformers keeps the rescaling as state across generate steps).

``reference.npz`` holds, as for the LLaMA fixtures, ``input_ids`` (2, 12) with row 1 left-padded,
``attention_mask``, ``position_ids`` (cumsum(mask) - 1, clipped at 0) and ``logits`` of the model reloaded from
the folder; and, except for ``qwen3_dynamic``, ``gen.input_ids`` / ``gen.attention_mask`` (3 left-padded
prompts of lengths 9, 5, 2), ``gen.tokens`` (greedy, 10 new tokens, no EOS), ``gen.eos_token_id`` and
``gen.tokens_eos`` (greedy stopping at an id that ends a row mid-way), ``gen.margins`` (best minus
second-best logit per step; the fixture is refused if one is under 1e-3).
"""
from __future__ import annotations

import json
import os

import numpy as np
import torch
from transformers import Qwen2Config, Qwen2ForCausalLM, Qwen3Config, Qwen3ForCausalLM

from reference_fixtures.common import case_dir, save_reference, seed
from reference_fixtures.llama import _inputs, _randomise
from reference_fixtures.llama_generate import LENGTHS, MIN_MARGIN, NEW, _hf_greedy, _loop_greedy, _prompts


def _to_old_rope_spelling(path: str) -> None:
    """config.json: ``rope_parameters`` -> top-level ``rope_theta`` + ``rope_scaling`` using the key ``type``."""
    config_path = os.path.join(path, 'config.json')
    with open(config_path) as f:
        cfg = json.load(f)
    rope = dict(cfg.pop('rope_parameters'))
    cfg['rope_theta'] = rope.pop('rope_theta')
    rope['type'] = rope.pop('rope_type')
    cfg['rope_scaling'] = rope
    with open(config_path, 'w') as f:
        json.dump(cfg, f, indent=2, sort_keys=True)


def _generation(model, name: str) -> dict[str, np.ndarray]:
    ids, mask = _prompts(model.config.vocab_size)
    tokens, scores = _hf_greedy(model, ids, mask, eos=None)
    assert tokens.shape == (len(LENGTHS), NEW), tokens.shape
    loop = _loop_greedy(model, ids, mask)
    assert torch.equal(tokens, loop), f'{name}: generate {tokens.tolist()} != full-forward loop {loop.tolist()}'
    top2 = scores.topk(2, dim=-1).values
    margins = (top2[..., 0] - top2[..., 1]).float()
    assert margins.min() > MIN_MARGIN, f'{name}: an argmax is too close to call ({margins.min():.2e})'
    rows = tokens.tolist()
    row, step = next((r, t) for r in range(len(rows)) for t in range(3, NEW - 2) if rows[r][t] not in rows[r][:t])
    eos = rows[row][step]
    tokens_eos, _ = _hf_greedy(model, ids, mask, eos=eos)
    if tokens_eos.shape[1] < NEW:  # every row finished: transformers stops early, the rows stay eos
        tokens_eos = torch.cat([tokens_eos, torch.full((len(LENGTHS), NEW - tokens_eos.shape[1]), eos)], 1)
    assert (tokens_eos[row, step:] == eos).all() and torch.equal(tokens_eos[row, :step], tokens[row, :step])
    print(f'  {name}: greedy {rows}, eos {eos} (row {row} step {step}), smallest margin {margins.min():.3g}')
    return {'gen.input_ids': ids.numpy(), 'gen.attention_mask': mask.numpy(), 'gen.tokens': tokens.numpy(),
            'gen.eos_token_id': np.int64(eos), 'gen.tokens_eos': tokens_eos.numpy(), 'gen.margins': margins.numpy()}


def _case(out_root: str, name: str, model_cls, config, *, std: float, n_seed: int, old_spelling: bool = False,
          max_shard_size: str | None = None, generate: bool = True) -> None:
    seed(n_seed)
    path = case_dir(out_root, name)
    model = model_cls(config).eval()
    _randomise(model, std)
    model.save_pretrained(path, **({'max_shard_size': max_shard_size} if max_shard_size else {}))
    if old_spelling:
        _to_old_rope_spelling(path)
    reloaded = model_cls.from_pretrained(path, dtype=torch.float32).eval()
    for (n1, p1), (n2, p2) in zip(model.state_dict().items(), reloaded.state_dict().items()):
        assert n1 == n2 and torch.equal(p1, p2), f'{name}: {n1} changed on reload'
    reread = {k: v for k, v in reloaded.config.rope_parameters.items() if k != 'type'}  # the old key stays there
    assert reread == model.config.rope_parameters, (reread, model.config.rope_parameters)
    inputs = _inputs(config.vocab_size)
    with torch.no_grad():
        logits = reloaded(**inputs).logits
        assert torch.equal(logits, model(**inputs).logits)
    arrays = {'logits': logits, **inputs}
    if generate:
        arrays.update(_generation(reloaded, name))
    save_reference(path, **arrays)
    print(f'  {name}: {sorted(os.listdir(path))}')


def make(out_root: str) -> None:
    _case(out_root, 'qwen2_tied_bias', Qwen2ForCausalLM, Qwen2Config(
        vocab_size=96, hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, rms_norm_eps=1e-6, max_position_embeddings=128, tie_word_embeddings=True,
        rope_parameters={'rope_type': 'default', 'rope_theta': 1e6}), std=0.2, n_seed=21)
    _case(out_root, 'qwen2_untied_yarn_sharded', Qwen2ForCausalLM, Qwen2Config(
        vocab_size=80, hidden_size=24, intermediate_size=32, num_hidden_layers=3, num_attention_heads=6,
        num_key_value_heads=2, head_dim=8, rms_norm_eps=1e-5, max_position_embeddings=64, tie_word_embeddings=False,
        use_sliding_window=True, sliding_window=48, max_window_layers=2,
        rope_parameters={'rope_type': 'yarn', 'rope_theta': 5e5, 'factor': 4.0,
                         'original_max_position_embeddings': 16}),
          std=0.15, n_seed=22, old_spelling=True, max_shard_size='24KB')
    _case(out_root, 'qwen3_qknorm_untied', Qwen3ForCausalLM, Qwen3Config(
        vocab_size=96, hidden_size=32, intermediate_size=32, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, head_dim=16, rms_norm_eps=1e-6, max_position_embeddings=128,
        tie_word_embeddings=False, rope_parameters={'rope_type': 'default', 'rope_theta': 1e6}), std=0.2, n_seed=31)
    _case(out_root, 'qwen3_tied_bias_linear', Qwen3ForCausalLM, Qwen3Config(
        vocab_size=64, hidden_size=24, intermediate_size=32, num_hidden_layers=3, num_attention_heads=8,
        num_key_value_heads=1, head_dim=8, rms_norm_eps=1e-5, max_position_embeddings=256, tie_word_embeddings=True,
        attention_bias=True, rope_parameters={'rope_type': 'linear', 'rope_theta': 10000.0, 'factor': 2.0}),
          std=0.2, n_seed=32)
    _case(out_root, 'qwen3_dynamic', Qwen3ForCausalLM, Qwen3Config(
        vocab_size=48, hidden_size=16, intermediate_size=24, num_hidden_layers=1, num_attention_heads=2,
        num_key_value_heads=1, head_dim=8, max_position_embeddings=8, tie_word_embeddings=True,
        rope_parameters={'rope_type': 'dynamic', 'rope_theta': 10000.0, 'factor': 2.0}),
          std=0.3, n_seed=33, generate=False)
