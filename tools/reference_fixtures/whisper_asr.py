"""A tiny ``WhisperForConditionalGeneration`` with a tokenizer, and transformers' greedy timestamped ``generate``.

Writes ``tests/fixtures/hf/whisper_asr/``: the checkpoint as ``save_pretrained`` wrote it (config.json,
generation_config.json, model.safetensors), a tokenizer folder's files beside it (tokenizer.json,
tokenizer_config.json: a byte-level BPE trained here plus Whisper's special tokens, laid out as in the
openai/whisper-* checkpoints: text tokens, ``<|endoftext|>``, ``<|startoftranscript|>``, languages,
``<|translate|>``, ``<|transcribe|>``, ``<|startoflm|>``, ``<|startofprev|>``, ``<|nospeech|>``,
``<|notimestamps|>``, then one token per 0.02 s from ``<|0.00|>``), and ``reference.npz``:

* ``input_features`` (B, 16 mel bins, 64 frames = the whole window of max_source_positions 32);
* ``en.sequences``: ``generate(input_features, language='en', task='transcribe', return_timestamps=True,
  return_dict_in_generate=True, force_unique_generate_call=True)`` sequences: the decoder prompt
  (sot, <|en|>, <|transcribe|>), the greedy tokens, padded with the eos id after a row stops;
* ``en.min_margin``: the smallest gap between the two best *processed* scores over all steps (the case is
  only kept when it is clear, so float32 rounding cannot flip an argmax);
* ``en.generate``: the plain ``generate(input_features, language='en', task='transcribe',
  return_timestamps=True)`` output: transformers decodes the window, and while a pass ends inside a
  segment (a timestamp pair, not a single timestamp, last) it seeks to the last pair's time and decodes
  the rest of the window again (zero-padded); the output is every pass's segment tokens, right-padded with eos;
* ``en.segments``: rows of (batch row, start s, end s, first token index, end token index) from
  the same call with ``return_segments=True`` (indices into that pass's generated tokens);
* ``detect.language``: the language id transformers detects with ``language=None`` and
  ``detect.sequences``: the whole timestamped greedy output then;
* ``teacher.logits``: the decoder's logits on ``en.sequences`` (teacher-forced, no cache), (B, L, vocab).

The input batch is drawn again (seeded) until the greedy outputs use every rule of
``WhisperTimeStampLogitsProcessor``: a pair of timestamps followed by text, a single timestamp before
eos or text after text, a row that ends with eos before ``MAX_NEW`` tokens, and a row that runs to the end.
"""
from __future__ import annotations

import json
import os

import numpy as np
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import GenerationConfig, PreTrainedTokenizerFast, WhisperConfig, WhisperForConditionalGeneration

from reference_fixtures.common import case_dir, save_reference, seed
from reference_fixtures.whisper import _randomise as randomise_weights

NAME = 'whisper_asr'
TEXT_VOCAB = 300
LANGUAGES = ('en', 'zh', 'de')
MAX_SOURCE_POSITIONS = 32           # 64 mel frames: a 0.64 s window
NUM_TIMESTAMPS = MAX_SOURCE_POSITIONS + 1   # <|0.00|> .. <|0.64|>
MAX_NEW = 20
BATCH = 4
MIN_MARGIN = 1e-3
CORPUS = ["I am so happy to see you today.", "Why would you say that to me?", "Thank you for coming.",
          "That is not what I meant at all.", "Well, I suppose we could try again tomorrow."] * 4


def _tokenizer(path: str) -> tuple[PreTrainedTokenizerFast, dict[str, int]]:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=TEXT_VOCAB, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tok.train_from_iterator(CORPUS, trainer)
    assert tok.get_vocab_size() == TEXT_VOCAB, tok.get_vocab_size()
    specials = (['<|endoftext|>', '<|startoftranscript|>'] + [f'<|{l}|>' for l in LANGUAGES]
                + ['<|translate|>', '<|transcribe|>', '<|startoflm|>', '<|startofprev|>', '<|nospeech|>',
                   '<|notimestamps|>'] + [f'<|{0.02 * i:.2f}|>' for i in range(NUM_TIMESTAMPS)])
    tok.add_special_tokens(specials)
    ids = {s: tok.token_to_id(s) for s in specials}
    assert ids['<|endoftext|>'] == TEXT_VOCAB and ids['<|0.00|>'] == ids['<|notimestamps|>'] + 1
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token='<|endoftext|>', eos_token='<|endoftext|>',
                                   unk_token='<|endoftext|>', pad_token='<|endoftext|>')
    fast.save_pretrained(path)
    return fast, ids


def _config(vocab: int, ids: dict[str, int]) -> WhisperConfig:
    eos = ids['<|endoftext|>']
    return WhisperConfig(
        vocab_size=vocab, num_mel_bins=16, d_model=32, encoder_layers=2, encoder_attention_heads=4,
        encoder_ffn_dim=64, decoder_layers=2, decoder_attention_heads=4, decoder_ffn_dim=64,
        max_source_positions=MAX_SOURCE_POSITIONS, max_target_positions=40, pad_token_id=eos, bos_token_id=eos,
        eos_token_id=eos, decoder_start_token_id=ids['<|startoftranscript|>'], activation_function='gelu',
        scale_embedding=True, tie_word_embeddings=True, begin_suppress_tokens=None, suppress_tokens=None)


def _generation_config(config: WhisperConfig, ids: dict[str, int]) -> GenerationConfig:
    eos = ids['<|endoftext|>']
    return GenerationConfig(
        decoder_start_token_id=config.decoder_start_token_id, eos_token_id=eos, pad_token_id=eos, bos_token_id=eos,
        max_length=config.max_target_positions, no_timestamps_token_id=ids['<|notimestamps|>'],
        is_multilingual=True, lang_to_id={f'<|{l}|>': ids[f'<|{l}|>'] for l in LANGUAGES},
        task_to_id={'translate': ids['<|translate|>'], 'transcribe': ids['<|transcribe|>']},
        prev_sot_token_id=ids['<|startofprev|>'],
        suppress_tokens=[5, 17, 42, ids['<|startoflm|>'], ids['<|startofprev|>'], ids['<|nospeech|>']],
        begin_suppress_tokens=[220 % TEXT_VOCAB, eos], max_initial_timestamp_index=10,
        forced_decoder_ids=[[1, None], [2, ids['<|transcribe|>']]])


def _randomise(model: torch.nn.Module, ids: dict[str, int]) -> None:
    randomise_weights(model)   # the encoder fixtures' draws, in the same order
    with torch.no_grad():
        emb = model.model.decoder.embed_tokens.weight   # tied with proj_out
        ts = ids['<|0.00|>']
        emb[ts:] += 0.4 * torch.randn(emb.shape[1])     # a shared direction: timestamps compete with text
        emb[ids['<|endoftext|>']] *= 2.0                # and eos is reachable within MAX_NEW tokens


def _margin(scores) -> float:
    s = torch.stack(scores, 1)  # (B, steps, vocab), processed
    top2 = torch.topk(s, 2, dim=-1).values
    finite = torch.isfinite(top2[..., 0])
    gap = top2[..., 0] - torch.where(torch.isfinite(top2[..., 1]), top2[..., 1], top2[..., 0] - 1e9)
    return float(gap[finite].min())


def _rules_used(seqs: np.ndarray, prompt_len: int, ts_begin: int, eos: int) -> dict[str, bool]:
    used = dict(pair_then_text=False, single_then_eos_or_text=False, stops_early=False, runs_full=False)
    for row in seqs[:, prompt_len:]:
        toks = list(row)
        n = toks.index(eos) + 1 if eos in toks else len(toks)
        used['stops_early'] |= eos in toks
        used['runs_full'] |= eos not in toks
        gen = toks[:n]
        for i in range(1, len(gen) - 1):
            if gen[i - 1] >= ts_begin and gen[i] >= ts_begin and gen[i + 1] < eos:
                used['pair_then_text'] = True
            if gen[i] >= ts_begin and gen[i - 1] < eos and gen[i + 1] <= eos:
                used['single_then_eos_or_text'] = True
    return used


def make(out_root: str) -> None:
    seed(300)
    path = case_dir(out_root, NAME)
    _, ids = _tokenizer(path)
    vocab = TEXT_VOCAB + len(ids)
    config = _config(vocab, ids)
    model = WhisperForConditionalGeneration(config).eval()
    _randomise(model, ids)
    model.generation_config = _generation_config(config, ids)
    model.save_pretrained(path, safe_serialization=True)
    model = WhisperForConditionalGeneration.from_pretrained(path, dtype=torch.float32).eval()
    gen_cfg = model.generation_config
    ts_begin, eos = ids['<|0.00|>'], ids['<|endoftext|>']
    frames = 2 * MAX_SOURCE_POSITIONS

    for attempt in range(200):  # noqa: B007  (printed after the loop)
        features = torch.randn(BATCH, config.num_mel_bins, frames) * 1.5
        kw = dict(return_timestamps=True, max_new_tokens=MAX_NEW, do_sample=False, num_beams=1)
        with torch.no_grad():
            out = model.generate(features, language='en', task='transcribe', return_dict_in_generate=True,
                                 output_scores=True, force_unique_generate_call=True, **kw)
        seqs = out.sequences.numpy()
        margin = _margin(out.scores)
        used = _rules_used(seqs, 3, ts_begin, eos)
        if margin >= MIN_MARGIN and all(used.values()):
            break
    else:
        raise SystemExit(f'{NAME}: no input batch in 200 draws used every timestamp rule with a clear margin')
    print(f'  attempt {attempt}: margin {margin:.4f}, rules {used}')
    assert (seqs[:, :3] == [ids['<|startoftranscript|>'], ids['<|en|>'], ids['<|transcribe|>']]).all(), seqs[:, :3]

    with torch.no_grad():
        segs_out = model.generate(features, language='en', task='transcribe', return_segments=True, **kw)
        plain = model.generate(features, language='en', task='transcribe', **kw)
    assert torch.equal(plain, segs_out['sequences']), 'return_segments changed the sequences'
    segments = []
    for row, row_segs in enumerate(segs_out['segments']):
        for s in row_segs:
            segments.append([row, float(s['start']), float(s['end']), s['idxs'][0] - 3, s['idxs'][1] - 3])
    with torch.no_grad():
        detected = model.detect_language(input_features=features, generation_config=gen_cfg,
                                         num_segment_frames=frames)
        det = model.generate(features, return_dict_in_generate=True, force_unique_generate_call=True, **kw)
        teacher = model(input_features=features, decoder_input_ids=out.sequences).logits
    save_reference(path, input_features=features, **{
        'en.sequences': seqs.astype(np.int64), 'en.min_margin': np.float32(margin),
        'en.segments': np.asarray(segments, np.float64).reshape(-1, 5), 'en.generate': plain,
        'detect.language': detected, 'detect.sequences': det.sequences, 'teacher.logits': teacher})
    with open(os.path.join(path, 'special_tokens.json'), 'w') as f:  # for humans reading the fixture
        json.dump(ids, f, indent=1)
