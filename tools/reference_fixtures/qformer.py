"""Q-Former fixtures: tiny random BLIP-2 / InstructBLIP Q-Formers and what transformers returns on them.

Cases (all float32, eager attention, eval mode):

* ``qformer_blip2_standalone``: a ``Blip2QFormerModel`` save (no text embeddings, no text FFN).
* ``qformer_instructblip_standalone``: an ``InstructBlipQFormerModel`` save, run with text
  (one row with text padding).
* ``qformer_instructblip_full``: a whole ``InstructBlipForConditionalGeneration`` (tiny vision and OPT
  text towers) whose ``qformer`` is run with text, plus its ``query_tokens``.

Every case also records a run with an ``encoder_attention_mask`` that pads encoder positions, since
MicroEmo feeds padded frames and audio.
"""
from __future__ import annotations

import torch
from transformers import (
    Blip2QFormerConfig,
    Blip2QFormerModel,
    InstructBlipConfig,
    InstructBlipForConditionalGeneration,
    InstructBlipQFormerConfig,
    InstructBlipQFormerModel,
)

from reference_fixtures.common import case_dir, save_reference, seed

HIDDEN, HEADS, INTERMEDIATE, ENC, VOCAB, QUERIES = 32, 4, 48, 24, 99, 6
BATCH, ENC_LEN, TEXT_LEN = 2, 7, 5


def _qformer_kwargs(num_layers: int) -> dict:
    return dict(vocab_size=VOCAB, hidden_size=HIDDEN, num_hidden_layers=num_layers, num_attention_heads=HEADS,
                intermediate_size=INTERMEDIATE, max_position_embeddings=16, cross_attention_frequency=2,
                encoder_hidden_size=ENC, layer_norm_eps=1e-6, pad_token_id=0)


def _randomize(model: torch.nn.Module) -> None:
    """Every parameter random (norm scales around 1) so that a wrongly mapped tensor shows up."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.lower().endswith('layernorm.weight') or name.endswith('layer_norm.weight'):
                p.copy_(1.0 + 0.2 * torch.randn_like(p))
            elif name.endswith('query_tokens'):
                p.copy_(torch.randn_like(p))
            else:
                p.copy_(0.15 * torch.randn_like(p))


def _encoder_inputs():
    enc = torch.randn(BATCH, ENC_LEN, ENC)
    enc_mask = torch.ones(BATCH, ENC_LEN, dtype=torch.long)
    enc_mask[1, -3:] = 0  # row 1: last 3 encoder positions are padding
    return enc, enc_mask


def _text_inputs():
    ids = torch.randint(1, VOCAB, (BATCH, TEXT_LEN))
    text_mask = torch.ones(BATCH, TEXT_LEN, dtype=torch.long)
    text_mask[1, -2:] = 0  # row 1: last 2 text tokens are padding
    ids[1, -2:] = 0
    # InstructBlipQFormerModel's attention_mask covers queries + text (the full model prepends ones).
    mask = torch.cat([torch.ones(BATCH, QUERIES, dtype=torch.long), text_mask], dim=1)
    return ids, mask


def _blip2_standalone(out_root: str) -> None:
    seed(101)
    path = case_dir(out_root, 'qformer_blip2_standalone')
    cfg = Blip2QFormerConfig(**_qformer_kwargs(3), attn_implementation='eager')
    model = Blip2QFormerModel(cfg).eval()
    _randomize(model)
    query = torch.randn(BATCH, QUERIES, HIDDEN)
    enc, enc_mask = _encoder_inputs()
    with torch.no_grad():
        out = model(query_embeds=query, encoder_hidden_states=enc).last_hidden_state
        out_masked = model(query_embeds=query, encoder_hidden_states=enc,
                           encoder_attention_mask=enc_mask).last_hidden_state
    model.save_pretrained(path, safe_serialization=True)
    save_reference(path, query_embeds=query, encoder_hidden_states=enc, last_hidden_state=out,
                   encoder_attention_mask=enc_mask, last_hidden_state_masked=out_masked)


def _instructblip_standalone(out_root: str) -> None:
    seed(102)
    path = case_dir(out_root, 'qformer_instructblip_standalone')
    cfg = InstructBlipQFormerConfig(**_qformer_kwargs(4), attn_implementation='eager')
    model = InstructBlipQFormerModel(cfg).eval()
    _randomize(model)
    query = torch.randn(BATCH, QUERIES, HIDDEN)
    enc, enc_mask = _encoder_inputs()
    ids, mask = _text_inputs()
    with torch.no_grad():
        out = model(input_ids=ids, attention_mask=mask, query_embeds=query,
                    encoder_hidden_states=enc).last_hidden_state
        out_masked = model(input_ids=ids, attention_mask=mask, query_embeds=query, encoder_hidden_states=enc,
                           encoder_attention_mask=enc_mask).last_hidden_state
        out_no_text = model(input_ids=None, query_embeds=query, encoder_hidden_states=enc).last_hidden_state
    model.save_pretrained(path, safe_serialization=True)
    save_reference(path, query_embeds=query, encoder_hidden_states=enc, input_ids=ids, attention_mask=mask,
                   last_hidden_state=out, encoder_attention_mask=enc_mask, last_hidden_state_masked=out_masked,
                   last_hidden_state_no_text=out_no_text)


def _instructblip_full(out_root: str) -> None:
    seed(103)
    path = case_dir(out_root, 'qformer_instructblip_full')
    cfg = InstructBlipConfig(
        vision_config=dict(hidden_size=ENC, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
                           image_size=28, patch_size=14),
        qformer_config=_qformer_kwargs(2),
        text_config=dict(model_type='opt', vocab_size=VOCAB, hidden_size=16, word_embed_proj_dim=16,
                         ffn_dim=32, num_hidden_layers=1, num_attention_heads=2, max_position_embeddings=32),
        num_query_tokens=QUERIES,
    )
    cfg._attn_implementation = 'eager'
    cfg.qformer_config._attn_implementation = 'eager'
    model = InstructBlipForConditionalGeneration(cfg).eval()
    _randomize(model)
    enc, enc_mask = _encoder_inputs()
    ids, mask = _text_inputs()
    query = model.query_tokens.expand(BATCH, -1, -1)
    with torch.no_grad():
        out = model.qformer(input_ids=ids, attention_mask=mask, query_embeds=query,
                            encoder_hidden_states=enc).last_hidden_state
        out_masked = model.qformer(input_ids=ids, attention_mask=mask, query_embeds=query,
                                   encoder_hidden_states=enc, encoder_attention_mask=enc_mask).last_hidden_state
    model.save_pretrained(path, safe_serialization=True)
    save_reference(path, query_tokens=model.query_tokens, encoder_hidden_states=enc, input_ids=ids,
                   attention_mask=mask, last_hidden_state=out, encoder_attention_mask=enc_mask,
                   last_hidden_state_masked=out_masked)


def make(out_root: str) -> None:
    _blip2_standalone(out_root)
    _instructblip_standalone(out_root)
    _instructblip_full(out_root)
