"""MER-UniBench's protocol text, verbatim: the one question every clip is asked and the two extraction prompts.

These are facts of the benchmark, not our wording: a model is only comparable with the published table
when it is asked the same question, and an LLM extractor only reproduces the official labels with the
same prompts. Source: AffectGPT (github.com/zeroQiaoba/AffectGPT, Apache-2.0) at commit fffca79:

* ``AffectGPT/my_affectgpt/datasets/datasets/base_dataset.py`` L266 (question) and L270 (answer form);
* ``AffectGPT/toolkit/utils/qwen.py`` L273-280 (reason -> labels, ``reason_to_openset_qwen``),
  L360-366 (labels -> sentiment, ``openset_to_sentiment_qwen``), L15-31 (``func_postprocess_qwen``,
  re-implemented in ``clean_response``) and L65-77 (each prompt is the only, user, message of a chat);
* ``AffectGPT/my_affectgpt/evaluation/ew_metric.py`` L27 (sampling parameters).

The official text's line continuations are kept as they evaluate: the sentiment prompt's source is
indented, so its sentences are joined by a space and twelve more.
"""
from __future__ import annotations

BENCHMARK_QUESTION = "Please recognize all possible emotional states of the character."
ANSWER_TEMPLATE = "The character's emotional state is {labels}."

LABEL_PROMPT = (
    "Please assume the role of an expert in the field of emotions. "
    "We provide clues that may be related to the emotions of the characters. Based on the provided clues, "
    "please identify the emotional states of the main character. "
    "The main character is the one with the most detailed clues. "
    "Please separate different emotional categories with commas and output only the clearly identifiable "
    "emotional categories in a list format. "
    "If none are identified, please output an empty list. "
    "Input: We cannot recognize his emotional state; Output: [] "
    "Input: His emotional state is happy, sad, and angry; Output: [happy, sad, angry] "
    "Input: {reason}; Output: ")

_INDENT = ' ' * 12   # the indentation of qwen.py L361-366, inside the string
SENTIMENT_PROMPT = (
    "Please act as an expert in the field of emotions. " + _INDENT
    + "We provide a few words to describe the emotions of a character. " + _INDENT
    + "Please choose the most likely sentiment from the given candidates: [positive, negative, neutral] " + _INDENT
    + "Please direct output answer without analyzing process. " + _INDENT
    + "Input: [joyful]; Output: positive " + _INDENT
    + "Input: []; Output: neutral " + _INDENT
    + "Input: {reason}; Output: ")

OFFICIAL_SAMPLING = {'temperature': 0.7, 'top_p': 0.8, 'repetition_penalty': 1.05, 'max_tokens': 512}
"""How the official pipeline samples Qwen2.5-7B-Instruct (vLLM). Our ``llm:`` extractor decodes greedily
instead, so that the labels are reproducible; that is a deviation and is reported as such."""

_PREFIXES = ("输入", "输出", "翻译", "让我们来翻译一下：", "output", "Output", "input", "Input")


def label_prompt(reason: str) -> str:
    """The official reason -> labels prompt for one explanation (``str.replace``: braces in text are safe)."""
    return LABEL_PROMPT.replace('{reason}', reason)


def sentiment_prompt(labels: str) -> str:
    """The official labels -> sentiment prompt; ``labels`` is the label string, e.g. ``[happy, excited]``."""
    return SENTIMENT_PROMPT.replace('{reason}', labels)


def clean_response(text: str) -> str:
    """An LLM answer tidied as the official pipeline tidies it: stripped; each of the prefixes above removed
    once, in that order, where the text starts with it; then one leading ':' or '：'; newlines removed."""
    text = text.strip()
    for prefix in _PREFIXES:
        if text.startswith(prefix):
            text = text[len(prefix):]
    text = text.strip()
    for colon in (':', '：'):
        if text.startswith(colon):
            text = text[len(colon):]
    return text.strip().replace('\n', '').strip()
