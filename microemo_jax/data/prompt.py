"""The instruction prompt: the tokenizer's chat template (or LLaMA-2's), modality placeholders, timestamps,
loss mask.

One prompt per clip, following TimeChat (template, timestamp sentences) and AffectGPT (questions,
subtitle tag, OV answer)::

    <s>[INST] <<SYS>>\\n{system}\\n<</SYS>>\\n\\n<Video>{Nv slots}</Video> <Audio>{Na slots}</Audio> The video
    contains N frames sampled at t1, t2, ... seconds. [Face close-ups start at f1, f2, ... seconds.]
    Transcribed speech: s - e seconds, text; ... The subtitle of this video is:
    <Subtitle>{subtitle}</Subtitle>. {question} [/INST] {answer}</s>

The face close-up sentence is there when the face tubelets do not start at the frames (micro-expression
spotting moves them to each interval's peak of facial motion): the prompt says when everything it shows is.

That is the LLaMA-2 template TimeChat uses, for a tokenizer without a chat template (the demo's). A tokenizer
with one (a Qwen2.5/Qwen3 instruct folder: ``chat_template.jinja`` or ``tokenizer_config.json``) gets its own
around the same user text, as the model was instruction-tuned on it (``data/chat_template.py`` renders it in a
sandbox): for ChatML, ``<|im_start|>system ...<|im_end|> <|im_start|>user\\n<Video>... {question}<|im_end|>
<|im_start|>assistant\\n{answer}<|im_end|>``. The answer's loss covers the tokens the template writes after it up
to the first end-of-sequence id (``eos_token_ids``, from generation_config.json), so the model learns to stop.

The ids are built piece by piece (as TimeChat splits at ``<ImageHere>``) so the slots, which the model
fills with projected video/audio tokens, never merge with neighbouring text. Each piece after the
first starts with the template's space, which byte-level BPE and SentencePiece/Metaspace tokenizers
both attach to the next word. Text from the data is encoded with ``split_special_tokens=True``: a
subtitle that says ``</s>`` stays text.
"""
from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Sequence

import numpy as np

from microemo_jax.data.chat_template import ChatFrame, chat_frame

DESCRIPTION_QUESTION = "Please infer the person's emotional state and provide your reasoning process."
OV_QUESTION = "Please recognize all possible emotional states of the character."
DEFAULT_SYSTEM = ' '    # TimeChat's (empty) system prompt: "<<SYS>>\n \n<</SYS>>"


def ov_answer(labels: Sequence[str]) -> str:
    """AffectGPT's OV target: "The character's emotional state is a, b, c."."""
    labels = [str(x).strip() for x in labels if str(x).strip()]
    if not labels:
        raise ValueError("ov_answer needs at least one label (MER's loaders use ['neutral'] for an empty set)")
    return f"The character's emotional state is {', '.join(labels)}."


def question_for(answer_kind: str) -> str:
    """The question that goes with a target kind ('description' or 'ov')."""
    questions = {'description': DESCRIPTION_QUESTION, 'ov': OV_QUESTION}
    if answer_kind not in questions:
        raise ValueError(f"unknown answer kind {answer_kind!r}; expected one of {sorted(questions)}")
    return questions[answer_kind]


def _check_times(values, what: str) -> list[float]:
    out = [float(t) for t in values]
    for t in out:
        if not math.isfinite(t) or t < 0:
            raise ValueError(f"{what} must be finite and >= 0 seconds, got {t!r}")
    return out


def _fmt(t: float) -> str:
    return f"{round(t, 1) + 0.0:.1f}"     # + 0.0: never print "-0.0"


def timestamp_sentences(timestamps: Sequence[float]) -> list[str]:
    """TimeChat's per-frame text for the image Q-Former: 'This frame is sampled at 0.5 second.'."""
    return [f"This frame is sampled at {_fmt(t)} second." for t in _check_times(timestamps, 'frame timestamps')]


def _pad_id(tokenizer) -> int:
    for attr in ('pad_token_id', 'unk_token_id'):
        value = getattr(tokenizer, attr, None)
        if value is not None:
            return int(value)
    return 0


TIMESTAMP_TOKENIZERS = ('bert', 'llm')


def timestamp_tokenizer(kind: str, *, qformer_tokenizer, llm_tokenizer):
    """The tokenizer for the timestamp sentences: ``kind`` is ``model.frame_encoder.timestamp_tokenizer``,
    'bert' (the image Q-Former's own, InstructBLIP practice) or 'llm' (TimeChat, which tokenizes them with
    LLaMA's tokenizer and feeds those ids to the Q-Former)."""
    if kind not in TIMESTAMP_TOKENIZERS:
        raise ValueError(f"timestamp tokenizer {kind!r} must be one of {TIMESTAMP_TOKENIZERS}")
    return llm_tokenizer if kind == 'llm' else qformer_tokenizer


def timestamp_token_ids(tokenizer, timestamps: Sequence[float], max_tokens: int) -> tuple[np.ndarray, np.ndarray]:
    """(ids int32 (T, max_tokens), mask int32 (T, max_tokens)) of the timestamp sentences.

    Encoded with the tokenizer's own special tokens ([CLS] ... [SEP] for BERT, ``<s>`` first for LLaMA, as
    TimeChat's call does), right-padded with its pad id (else its unk id, as TimeChat pads LLaMA's). A
    sentence longer than ``max_tokens`` is an error rather than a silent cut of the time value.
    """
    sentences = timestamp_sentences(timestamps)
    ids = np.full((len(sentences), max_tokens), _pad_id(tokenizer), np.int32)
    mask = np.zeros((len(sentences), max_tokens), np.int32)
    for i, sentence in enumerate(sentences):
        tokens = tokenizer(sentence, add_special_tokens=True)['input_ids']
        if len(tokens) > max_tokens:
            raise ValueError(f"timestamp sentence {sentence!r} is {len(tokens)} tokens, more than max_tokens="
                             f"{max_tokens}: raise model.frame_encoder.max_timestamp_tokens")
        ids[i, :len(tokens)] = tokens
        mask[i, :len(tokens)] = 1
    return ids, mask


class PromptTooLong(ValueError):
    """The fixed part of the prompt (template, placeholders, timestamps, question) exceeds ``max_len``."""
    reason = 'prompt_too_long'

    def __init__(self, message: str, *, needed: int, max_len: int):
        super().__init__(message)
        self.needed, self.max_len = needed, max_len


@dataclasses.dataclass(frozen=True)
class TokenizedPrompt:
    input_ids: np.ndarray           # int32 (S,)
    loss_mask: np.ndarray           # bool (S,): answer tokens and the closing eos
    modality_positions: np.ndarray  # int32 (Nv + Na,): video slots, then audio slots
    shortened: tuple[str, ...] = ()  # which parts were cut to fit max_len: 'speech', 'subtitle', 'answer'
    words: tuple[int, int] = (0, 0)  # [start, end) of the transcribed speech and subtitle parts ((0, 0): none)


def placeholder_id(tokenizer) -> int:
    """The id written at modality slots (the model overwrites those embeddings): unk, else pad."""
    for attr in ('unk_token_id', 'pad_token_id'):
        value = getattr(tokenizer, attr, None)
        if value is not None:
            return int(value)
    raise ValueError("the LLM tokenizer has neither an unk nor a pad token to mark modality slots with")


def _collapse(text: str) -> str:
    return ' '.join(str(text).split())


def _encode(tokenizer, text: str) -> list[int]:
    if not text:
        return []
    return list(tokenizer.encode(text, add_special_tokens=False, split_special_tokens=True))


def _encode_template(tokenizer, text: str) -> list[int]:
    """Template text: its special tokens (``<|im_start|>``, ``<s>``) are the special ids."""
    return list(tokenizer.encode(text, add_special_tokens=False, split_special_tokens=False)) if text else []


@functools.lru_cache(maxsize=8)
def _cached_frame(template: str, bos: str, eos: str) -> ChatFrame:
    return chat_frame(template, bos_token=bos, eos_token=eos)


def chat_frame_of(tokenizer) -> ChatFrame | None:
    """The frame of the tokenizer's own chat template, or None when it has none (then LLaMA-2's is used)."""
    template = getattr(tokenizer, 'chat_template', None)
    if isinstance(template, dict):  # several named templates: the default one
        template = template.get('default')
    if not template:
        return None
    return _cached_frame(template, tokenizer.bos_token or '', tokenizer.eos_token or '')


def _answer_end(tokenizer, after_answer: str, eos_ids: Sequence[int]) -> list[int]:
    """What the template writes after an answer, up to and including the first end-of-sequence id (generation
    stops there); the first eos id appended when the template writes none."""
    ids = _encode_template(tokenizer, after_answer)
    for i, token in enumerate(ids):
        if token in eos_ids:
            return ids[:i + 1]
    return ids + [int(eos_ids[0])]


@dataclasses.dataclass
class _Part:
    """A shortenable piece: prefix + body + suffix; dropped whole when the body would go."""
    name: str
    prefix: list[int]
    body: list[int]
    suffix: list[int]

    def ids(self) -> list[int]:
        return self.prefix + self.body + self.suffix if self.body else []


def build_prompt(tokenizer, *, timestamps: Sequence[float], utterances: Sequence[tuple[float, float, str]],
                 subtitle: str, question: str, answer: str | None = None, num_video_tokens: int,
                 num_audio_tokens: int, max_len: int, system: str = DEFAULT_SYSTEM,
                 face_times: Sequence[float] | None = None,
                 eos_token_ids: Sequence[int] | None = None) -> TokenizedPrompt:
    """Tokenize one clip's prompt (and answer, for training) with the tokenizer's chat template, or LLaMA-2's
    when it has none (``system`` is the LLaMA-2 system text; a chat template brings its own).
    ``eos_token_ids``: the ids that end generation (default: the tokenizer's eos); ``face_times``: when the
    face close-ups start, said in the prompt when they are not the frames' times.

    Over ``max_len`` the prompt is shortened in this order: the transcribed speech, the subtitle, then
    the answer's tail (its eos first: a cut answer does not teach the model to stop there; at least one
    answer token is kept). Slots, timestamps and the question are never cut; if they alone do not fit,
    ``PromptTooLong`` is raised.
    """
    if num_video_tokens < 0 or num_audio_tokens < 0:
        raise ValueError(f"token counts must be >= 0, got video={num_video_tokens} audio={num_audio_tokens}")
    times = _check_times(timestamps, 'frame timestamps')
    if not times:
        raise ValueError("build_prompt needs at least one frame timestamp")
    if answer is not None and not answer.strip():
        raise ValueError("answer is empty: pass answer=None for an inference prompt")
    eos_ids = list(eos_token_ids or ([] if tokenizer.eos_token_id is None else [tokenizer.eos_token_id]))
    if answer is not None and not eos_ids:
        raise ValueError("the LLM tokenizer has no eos token; training prompts end with it")
    slot = placeholder_id(tokenizer)
    frame = chat_frame_of(tokenizer)
    if frame is None:  # LLaMA-2 / TimeChat
        bos = [] if tokenizer.bos_token_id is None else [int(tokenizer.bos_token_id)]
        head = _encode(tokenizer, f"[INST] <<SYS>>\n{system}\n<</SYS>>\n\n<Video>")
    else:  # the template writes its own bos (or none)
        bos, head = [], _encode_template(tokenizer, frame.before_user + "<Video>")
    if num_audio_tokens:
        between = _encode(tokenizer, "</Video> <Audio>")
        after = _encode(tokenizer, "</Audio>")
    else:
        between, after = [], _encode(tokenizer, "</Video>")
    frames = _encode(tokenizer, f" The video contains {len(times)} frames sampled at "
                                f"{', '.join(_fmt(t) for t in times)} seconds.")
    if face_times is not None and len(face_times):
        frames += _encode(tokenizer, " Face close-ups start at "
                                     f"{', '.join(_fmt(t) for t in _check_times(face_times, 'face times'))} seconds.")
    spoken = []
    for start, end, text in utterances:
        start, end = _check_times((start, end), 'utterance times')
        if _collapse(text):
            spoken.append(f"{_fmt(start)} - {_fmt(end)} seconds, {_collapse(text)}")
    ends_sentence = bool(spoken) and spoken[-1][-1] in '.!?…。！？'
    speech = _Part('speech', _encode(tokenizer, " Transcribed speech:"), _encode(tokenizer, ' ' + '; '.join(spoken)),
                   _encode(tokenizer, '' if ends_sentence else '.')) if spoken else None
    subtitle = _collapse(subtitle or '')
    sub = _Part('subtitle', _encode(tokenizer, " The subtitle of this video is: <Subtitle>"),
                _encode(tokenizer, subtitle), _encode(tokenizer, "</Subtitle>.")) if subtitle else None
    if frame is None:
        tail = _encode(tokenizer, f" {question.strip()} [/INST]")
        eos = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else eos_ids[0]
        target = [] if answer is None else _encode(tokenizer, ' ' + answer.strip()) + [int(eos)]
    else:
        tail = _encode(tokenizer, f" {question.strip()}") + _encode_template(tokenizer, frame.before_answer)
        target = [] if answer is None else (_encode(tokenizer, frame.answer_prefix + answer.strip())
                                            + _answer_end(tokenizer, frame.after_answer, eos_ids))

    fixed = (len(bos) + len(head) + num_video_tokens + len(between) + num_audio_tokens + len(after) + len(frames)
             + len(tail))
    over = fixed + sum(len(p.ids()) for p in (speech, sub) if p) + len(target) - max_len
    shortened = []
    for part in (speech, sub):
        if over <= 0 or part is None:
            continue
        shortened.append(part.name)
        if over >= len(part.body):
            over -= len(part.ids())
            part.body = []
        else:
            part.body = part.body[:len(part.body) - over]
            over = 0
    if over > 0:
        keep = len(target) - over
        if answer is None or keep < 1:
            needed = fixed + (1 if answer is not None else 0)
            raise PromptTooLong(
                f"prompt needs {needed} tokens with speech and subtitle dropped"
                f"{' and the answer cut to one token' if answer is not None else ''}, but max_len={max_len} "
                f"({num_video_tokens} video + {num_audio_tokens} audio slots, {len(times)} timestamps, "
                f"{len(tail)} question tokens): raise data.max_seq_len or use fewer frames", needed=needed,
                max_len=max_len)
        target = target[:keep]
        shortened.append('answer')

    ids = bos + head
    video_pos = list(range(len(ids), len(ids) + num_video_tokens))
    ids += [slot] * num_video_tokens + between
    audio_pos = list(range(len(ids), len(ids) + num_audio_tokens))
    ids += [slot] * num_audio_tokens + after + frames
    words_start = len(ids)
    for part in (speech, sub):
        if part is not None:
            ids += part.ids()
    words = (words_start, len(ids)) if len(ids) > words_start else (0, 0)
    ids += tail
    loss = np.zeros(len(ids) + len(target), bool)
    loss[len(ids):] = True
    ids += target
    assert len(ids) <= max_len, (len(ids), max_len)
    return TokenizedPrompt(input_ids=np.asarray(ids, np.int32), loss_mask=loss,
                           modality_positions=np.asarray(video_pos + audio_pos, np.int32), shortened=tuple(shortened),
                           words=words)
