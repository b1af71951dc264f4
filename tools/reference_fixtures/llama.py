"""Tiny LlamaForCausalLM checkpoints and the logits transformers computes on them.

Cases:
* ``llama_gqa_untied_llama3rope``: GQA (4 heads, 2 KV heads), head_dim != hidden/heads, attention biases,
  untied output head, LLaMA-3 RoPE scaling; config.json rewritten in the OLD spelling (top-level
  ``rope_theta`` + ``rope_scaling``) that pre-5.x transformers wrote and Llama-3.x hub configs still use.
* ``llama_tied_sharded``: tied embeddings, default RoPE, several safetensors shards + index, config in
  the spelling transformers 5.x writes (``rope_parameters``).

Parameters are re-drawn with a larger spread than the default init (and norms/biases made non-trivial)
so that attention is far from uniform and every tensor mapping matters. ``reference.npz`` holds
input_ids (B=2, S=12), attention_mask (row 1 left-padded), position_ids (cumsum(mask) - 1, clipped at
0, as our model defaults to; transformers defaults to arange) and the logits of the model *reloaded from
the written folder* (so the rewritten config is proven to load in transformers).
"""
from __future__ import annotations

import json
import os

import torch
from transformers import LlamaConfig, LlamaForCausalLM

from reference_fixtures.common import case_dir, save_reference, seed

BATCH, SEQ, PAD = 2, 12, 3


def _randomise(model: torch.nn.Module, std: float) -> None:
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith('norm.weight'):
                p.copy_(1.0 + 0.2 * torch.randn_like(p))
            elif name.endswith('bias'):
                p.copy_(0.1 * torch.randn_like(p))
            else:
                p.copy_(std * torch.randn_like(p))


def _inputs(vocab: int) -> dict[str, torch.Tensor]:
    ids = torch.randint(0, vocab, (BATCH, SEQ))
    mask = torch.ones(BATCH, SEQ, dtype=torch.long)
    mask[1, :PAD] = 0
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    return {'input_ids': ids, 'attention_mask': mask, 'position_ids': positions}


def _to_old_rope_spelling(path: str) -> None:
    """config.json: ``rope_parameters`` -> top-level ``rope_theta`` + ``rope_scaling`` (pre-5.x format)."""
    config_path = os.path.join(path, 'config.json')
    with open(config_path) as f:
        cfg = json.load(f)
    rope = dict(cfg.pop('rope_parameters'))
    cfg['rope_theta'] = rope.pop('rope_theta')
    cfg['rope_scaling'] = rope  # keeps rope_type 'llama3', factor, low/high_freq_factor, original_max...
    with open(config_path, 'w') as f:
        json.dump(cfg, f, indent=2, sort_keys=True)


def _case(out_root: str, name: str, config: LlamaConfig, *, std: float, old_spelling: bool,
          max_shard_size: str | None, n_seed: int) -> None:
    seed(n_seed)
    path = case_dir(out_root, name)
    model = LlamaForCausalLM(config).eval()
    _randomise(model, std)
    kwargs = {'max_shard_size': max_shard_size} if max_shard_size else {}
    model.save_pretrained(path, **kwargs)
    if old_spelling:
        _to_old_rope_spelling(path)
    reloaded = LlamaForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
    for (n1, p1), (n2, p2) in zip(model.state_dict().items(), reloaded.state_dict().items()):
        assert n1 == n2 and torch.equal(p1, p2), f'{name}: {n1} changed on reload'
    assert reloaded.config.rope_parameters == model.config.rope_parameters, (
        reloaded.config.rope_parameters, model.config.rope_parameters)
    inputs = _inputs(config.vocab_size)
    with torch.no_grad():
        logits = reloaded(**inputs).logits
        logits_orig = model(**inputs).logits
    assert torch.equal(logits, logits_orig)
    save_reference(path, logits=logits, **inputs)
    files = sorted(os.listdir(path))
    print(f'  {name}: {files}')


def make(out_root: str) -> None:
    _case(out_root, 'llama_gqa_untied_llama3rope', LlamaConfig(
        vocab_size=160, hidden_size=48, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, head_dim=16, rms_norm_eps=1e-5, max_position_embeddings=128,
        tie_word_embeddings=False, attention_bias=True,
        rope_parameters={'rope_type': 'llama3', 'rope_theta': 10000.0, 'factor': 8.0, 'low_freq_factor': 1.0,
                         'high_freq_factor': 4.0, 'original_max_position_embeddings': 64}),
          std=0.15, old_spelling=True, max_shard_size=None, n_seed=1)
    _case(out_root, 'llama_tied_sharded', LlamaConfig(
        vocab_size=128, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=4, rms_norm_eps=1e-6, max_position_embeddings=64, tie_word_embeddings=True,
        rope_parameters={'rope_type': 'default', 'rope_theta': 10000.0}),
          std=0.2, old_spelling=False, max_shard_size='40KB', n_seed=2)
