"""A tiny instruct checkpoint folder from a committed Qwen fixture and the suite's ChatML demo tokenizer.

The committed fixtures (``tests/fixtures/hf/qwen*``: config.json + safetensors, made by transformers) have
vocabularies of 48 to 96 ids, too few for any byte-level tokenizer (256 bytes + specials). So the folder keeps
the fixture's config and every tensor, and only widens the embedding (and an untied LM head) to the tokenizer's
size with seeded rows of the same scale; beside them go the demo's Qwen-style tokenizer files (ChatML
``chat_template.jinja``, ``generation_config.json`` with ``<|im_end|>``), as in a Qwen2.5 instruct download.
"""
from __future__ import annotations

import json
import os
import pathlib
import shutil

import numpy as np
from safetensors.numpy import load_file, save_file

from microemo_jax.data.demo_tokenizers import train_demo_tokenizers
from microemo_jax.data.tokenizers import copy_tokenizer
from microemo_jax.inference.llm_extractor import LLMExtractor
from microemo_jax.metrics import protocol

FIXTURES = pathlib.Path(__file__).resolve().parents[1] / 'fixtures' / 'hf'
TEXTS = [protocol.LABEL_PROMPT, protocol.SENTIMENT_PROMPT, 'She smiles, then frowns; he is calm but tense.',
         '[happy, sad, angry] positive negative neutral']


def instruct_folder(out, fixture: str = 'qwen2_tied_bias', *, vocab_size: int = 512, seed: int = 0) -> str:
    """``out``/``fixture``: the fixture's weights (embedding widened) + a ChatML tokenizer of ``vocab_size``."""
    out = os.path.join(os.fspath(out), fixture)
    tok_dir, _ = train_demo_tokenizers(TEXTS, os.path.join(out, '_tok'), llm_vocab_size=vocab_size,
                                       qformer_vocab_size=120, style='qwen')
    copy_tokenizer(tok_dir, out)
    shutil.rmtree(os.path.join(out, '_tok'))
    src = FIXTURES / fixture
    with open(src / 'config.json', encoding='utf-8') as f:
        config = json.load(f)
    old = config['vocab_size']
    config['vocab_size'] = vocab_size
    with open(os.path.join(out, 'config.json'), 'w', encoding='utf-8') as f:
        json.dump(config, f, indent=2)
    rng = np.random.default_rng(seed)
    for shard in sorted(src.glob('model*.safetensors')):
        tensors = load_file(shard)
        for name in ('model.embed_tokens.weight', 'lm_head.weight'):
            if name in tensors:
                w = tensors[name]
                extra = rng.normal(0.0, float(w.std()), (vocab_size - old, w.shape[1])).astype(w.dtype)
                tensors[name] = np.concatenate([w, extra])
        save_file(tensors, os.path.join(out, shard.name), metadata={'format': 'pt'})
    if (src / 'model.safetensors.index.json').is_file():
        shutil.copyfile(src / 'model.safetensors.index.json', os.path.join(out, 'model.safetensors.index.json'))
    return out


def scripted_folder(out, reply: str, fixture: str = 'qwen3_qknorm_untied', *, seed: int = 0) -> str:
    """An instruct folder whose greedy reply to any chat prompt is ``reply`` then ``<|im_end|>``.

    The fixture's blocks are silenced (attention and MLP output projections zero), so the last hidden state is
    the current token's normalised embedding and the untied LM head alone picks the next token: a bigram model,
    whose head rows point each token of the chain (the generation prompt's last token, ``reply``'s tokens, the
    end of turn) at the next. It still runs as any checkpoint does (loader, template, KV-cache generation)."""
    folder = instruct_folder(out, fixture)
    ex = LLMExtractor(folder)
    chain = [ex.prompt_ids(['x'])[0][-1]] + ex.tokenizer(reply, add_special_tokens=False)['input_ids']
    if len(set(chain)) != len(chain) or ex.tokenizer.decode(chain[1:]) != reply:
        raise ValueError(f"reply {reply!r} repeats a token or does not round-trip: a bigram cannot say it")
    chain.append(ex.eos_ids[0])
    path = os.path.join(folder, 'model.safetensors')
    tensors = load_file(path)
    embed = np.random.default_rng(seed).normal(size=tensors['model.embed_tokens.weight'].shape).astype(np.float32)
    hidden = embed / np.sqrt(np.mean(embed ** 2, axis=1, keepdims=True))          # RMSNorm with unit scale
    head = np.zeros_like(embed)
    for token, following in zip(chain, chain[1:]):
        head[following] = hidden[token]
    logits = hidden[chain[:-1]] @ head.T
    assert list(logits.argmax(axis=1)) == chain[1:], 'the bigram head does not pick the chain; change the seed'
    for name in tensors:
        if name.endswith(('o_proj.weight', 'down_proj.weight')):
            tensors[name] = np.zeros_like(tensors[name])
    tensors.update({'model.embed_tokens.weight': embed, 'lm_head.weight': head,
                    'model.norm.weight': np.ones_like(tensors['model.norm.weight'])})
    save_file(tensors, path, metadata={'format': 'pt'})
    return folder
