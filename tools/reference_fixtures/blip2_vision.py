"""Tiny BLIP-2 / InstructBLIP vision towers: checkpoints plus transformers' ``last_hidden_state``.

Cases (one folder each under tests/fixtures/hf/):
* ``blip2_vision_standalone``: a ``Blip2VisionModel`` saved alone (model_type 'blip_2_vision_model').
* ``blip2_vision_full``: a whole ``Blip2ForConditionalGeneration`` (tiny OPT, tiny Q-Former); the
  reference is its ``vision_model`` output.
* ``instructblip_vision_full``: a whole ``InstructBlipForConditionalGeneration`` with ``qkv_bias=False``
  (covers the bias-free path); the reference is its ``vision_model`` output.

Every parameter is re-drawn at a visible scale (default init leaves q/v biases at zero and the
embeddings near 1e-10, which would hide loader mistakes); this includes the key part of the fused
``qkv.bias``, which the JAX model drops because it cannot change the attention output.
"""
from __future__ import annotations

import torch
from transformers import (
    Blip2Config,
    Blip2ForConditionalGeneration,
    Blip2VisionConfig,
    Blip2VisionModel,
    InstructBlipConfig,
    InstructBlipForConditionalGeneration,
)

from reference_fixtures.common import case_dir, save_reference, seed


def _randomize(model: torch.nn.Module, std: float = 0.1) -> None:
    """Norm scales ~ 1 + N(0, std), every other tensor ~ N(0, std)."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if 'norm' in name and name.endswith('weight'):
                p.copy_(1.0 + std * torch.randn_like(p))
            else:
                p.copy_(std * torch.randn_like(p))


def _vision(image_size: int, patch_size: int, qkv_bias: bool = True) -> dict:
    return dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                image_size=image_size, patch_size=patch_size, layer_norm_eps=1e-6, qkv_bias=qkv_bias,
                hidden_act='gelu')


_QFORMER = dict(vocab_size=64, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
                max_position_embeddings=32, cross_attention_frequency=2)
_OPT = dict(model_type='opt', vocab_size=64, hidden_size=32, num_hidden_layers=1, ffn_dim=64, num_attention_heads=4,
            max_position_embeddings=64, word_embed_proj_dim=32, pad_token_id=1, bos_token_id=2, eos_token_id=2)


def _record(model: torch.nn.Module, vision: torch.nn.Module, path: str, image_size: int) -> None:
    model.eval()
    model.save_pretrained(path, safe_serialization=True)
    pixel_values = torch.randn(2, 3, image_size, image_size)
    with torch.no_grad():
        out = vision(pixel_values=pixel_values)
    save_reference(path, pixel_values=pixel_values, last_hidden_state=out.last_hidden_state)


def make(out_root: str) -> None:
    seed(10)
    path = case_dir(out_root, 'blip2_vision_standalone')
    model = Blip2VisionModel(Blip2VisionConfig(**_vision(28, 7)))
    _randomize(model)
    _record(model, model, path, 28)

    seed(11)
    path = case_dir(out_root, 'blip2_vision_full')
    config = Blip2Config(vision_config=_vision(32, 8), qformer_config=dict(_QFORMER), text_config=dict(_OPT),
                         num_query_tokens=4)
    model = Blip2ForConditionalGeneration(config)
    _randomize(model)
    _record(model, model.vision_model, path, 32)

    seed(12)
    path = case_dir(out_root, 'instructblip_vision_full')
    config = InstructBlipConfig(vision_config=_vision(28, 14, qkv_bias=False), qformer_config=dict(_QFORMER),
                                text_config=dict(_OPT), num_query_tokens=4)
    model = InstructBlipForConditionalGeneration(config)
    _randomize(model)
    _record(model, model.vision_model, path, 28)
