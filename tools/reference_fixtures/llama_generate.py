"""Greedy tokens of transformers' ``LlamaForCausalLM.generate`` on the committed tiny LLaMA checkpoints.

Reads the checkpoints that the ``llama`` kind wrote (``llama_gqa_untied_llama3rope``: GQA, LLaMA-3 RoPE,
biases, untied head; ``llama_tied_sharded``: tied embeddings, default RoPE) so that this fixture holds
only token ids, and writes ``tests/fixtures/hf/llama_generate/reference.npz`` with, per checkpoint
``<name>``:

* ``<name>.input_ids`` / ``<name>.attention_mask``: a left-padded batch of 3 prompts of lengths 9, 5, 2;
* ``<name>.tokens``: greedy, ``NEW`` new tokens, no end-of-sequence id;
* ``<name>.eos_token_id`` and ``<name>.tokens_eos``: greedy with an end-of-sequence id chosen so that
  a row stops mid-way (the first row with a token not seen earlier in it, from step 3 on;
  ``pad_token_id`` = that id, so finished rows keep emitting it);
* ``<name>.margins``: the gap between the best and second-best logit at every greedy step (the fixture
  is only made when every gap is clear, so float32 rounding cannot flip an argmax).

The tokens are also checked against a plain loop of full forwards without a cache (position ids =
cumsum(mask) - 1), so the fixture does not depend on how ``generate`` builds its inputs.
"""
from __future__ import annotations

import os

import numpy as np
import torch
from transformers import GenerationConfig, LlamaForCausalLM

from reference_fixtures.common import case_dir, seed

CHECKPOINTS = ('llama_gqa_untied_llama3rope', 'llama_tied_sharded')
LENGTHS = (9, 5, 2)
NEW = 10
MIN_MARGIN = 1e-3   # smallest allowed gap between the best two logits


def _prompts(vocab: int) -> tuple[torch.Tensor, torch.Tensor]:
    s = max(LENGTHS)
    ids = torch.zeros(len(LENGTHS), s, dtype=torch.long)
    mask = torch.zeros(len(LENGTHS), s, dtype=torch.long)
    for row, n in enumerate(LENGTHS):
        ids[row, s - n:] = torch.randint(3, vocab, (n,))
        mask[row, s - n:] = 1
    return ids, mask


def _hf_greedy(model, ids, mask, eos: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    config = GenerationConfig(max_new_tokens=NEW, min_new_tokens=0, do_sample=False, num_beams=1,
                              eos_token_id=eos, pad_token_id=0 if eos is None else eos, bos_token_id=None,
                              output_scores=True, return_dict_in_generate=True)
    with torch.no_grad():
        out = model.generate(input_ids=ids, attention_mask=mask, generation_config=config)
    new = out.sequences[:, ids.shape[1]:]
    scores = torch.stack(out.scores, dim=1)  # (B, steps, vocab): raw logits, no processor for greedy
    return new, scores


def _loop_greedy(model, ids, mask) -> torch.Tensor:
    """Full forwards, no cache: the reference semantics of greedy decoding with a padded prompt."""
    out = []
    with torch.no_grad():
        for _ in range(NEW):
            positions = (mask.cumsum(-1) - 1).clamp(min=0)
            logits = model(input_ids=ids, attention_mask=mask, position_ids=positions).logits[:, -1]
            nxt = logits.argmax(-1, keepdim=True)
            out.append(nxt)
            ids = torch.cat([ids, nxt], 1)
            mask = torch.cat([mask, torch.ones_like(nxt)], 1)
    return torch.cat(out, 1)


def make(out_root: str) -> None:
    seed(8)
    path = case_dir(out_root, 'llama_generate')
    arrays = {}
    for name in CHECKPOINTS:
        ckpt = os.path.join(out_root, name)
        if not os.path.isdir(ckpt):
            raise SystemExit(f"{ckpt} is missing: make the 'llama' fixtures first (--only llama,llama_generate)")
        model = LlamaForCausalLM.from_pretrained(ckpt, dtype=torch.float32).eval()
        ids, mask = _prompts(model.config.vocab_size)
        tokens, scores = _hf_greedy(model, ids, mask, eos=None)
        assert tokens.shape == (len(LENGTHS), NEW), tokens.shape
        loop = _loop_greedy(model, ids, mask)
        assert torch.equal(tokens, loop), f'{name}: generate {tokens.tolist()} != full-forward loop {loop.tolist()}'
        assert torch.equal(tokens, scores.argmax(-1))
        top2 = scores.topk(2, dim=-1).values
        margins = (top2[..., 0] - top2[..., 1]).float()
        assert margins.min() > MIN_MARGIN, f'{name}: an argmax is too close to call ({margins.min():.2e})'
        rows = tokens.tolist()
        row, step = next((r, t) for r in range(len(rows)) for t in range(3, NEW - 2)
                         if rows[r][t] not in rows[r][:t])  # this row stops mid-way
        eos = rows[row][step]
        tokens_eos, _ = _hf_greedy(model, ids, mask, eos=eos)
        if tokens_eos.shape[1] < NEW:  # every row finished: transformers stops early, the rows stay eos
            tokens_eos = torch.cat([tokens_eos, torch.full((len(LENGTHS), NEW - tokens_eos.shape[1]), eos)], 1)
        assert (tokens_eos[row, step:] == eos).all() and torch.equal(tokens_eos[row, :step], tokens[row, :step])
        arrays.update({f'{name}.input_ids': ids.numpy(), f'{name}.attention_mask': mask.numpy(),
                       f'{name}.tokens': tokens.numpy(), f'{name}.eos_token_id': np.int64(eos),
                       f'{name}.tokens_eos': tokens_eos.numpy(), f'{name}.margins': margins.numpy()})
        print(f'  {name}: tokens {tokens.tolist()}, eos {eos} (row {row} step {step}): {tokens_eos.tolist()}, '
              f'smallest margin {margins.min():.3g}')
    np.savez_compressed(os.path.join(path, 'reference.npz'), **arrays)
