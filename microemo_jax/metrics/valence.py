"""Sentiment of a label set, offline: the deterministic stand-in for MER-UniBench's second Qwen call.

WAF needs one sentiment per clip. The official pipeline asks Qwen2.5 to map the extracted labels to
positive / negative / neutral (``protocol.SENTIMENT_PROMPT``), sampling at temperature 0.7; we map each
label to a polarity with the table below and take the sign of the sum (no known label: ``neutral``, as
the official prompt's own example maps ``[]`` to ``neutral``).

Source of the table: written by hand for microemo-jax (Apache-2.0), no third-party word list copied. A
word takes the sign of its family in the emotion wheels MER-UniBench itself scores with (the level-1
clusters of AffectGPT's ``emotion_wheel/`` sheets): happy / joyful / joy / peaceful / powerful / genius
are positive; mad / angry / anger / sad / scared / fearful / fear / disgusted / disgust / bad are
negative; surprised has no sign. Words the wheels leave out follow the valence axis of Russell's
circumplex model of affect (J. Russell, 1980); words without a settled sign (surprise, nostalgia,
seriousness, vigilance) are neutral. A label not in the table is looked up as a lexicon form
("anxiety" -> anxious), then through its synonym group ("elated" -> excited), then by its last word
("slightly anxious" -> anxious); otherwise it does not count.
"""
from __future__ import annotations

import functools

from microemo_jax.metrics.lexicon import LEXICON, SYNONYM_GROUPS

_TABLE = """
positive: happy, joyful, cheerful, delighted, pleased, glad, excited, amused, satisfied, proud, confident,
    relaxed, relieved, calm, grateful, thankful, hopeful, optimistic, enthusiastic, eager, expectant,
    affectionate, sympathetic, curious, playful, determined, amazed, peaceful, powerful, genius, joy,
    love, loving, admiration, admiring, adoring, inspired, encouraging, supportive, friendly, positive,
    ecstatic, blissful, euphoric, triumphant, pleasant, comfortable, secure, trusting, trust, approving,
    respectful, empowered, valued, successful, touched, warmhearted, caring, interested, content,
    humorous, humor, appreciation, light-hearted, lighthearted, positivity, passion, enjoyment, contentment,
    praise, hope, encouragement, comfort, comforting, support, liking, relaxation, motivated, motivation,
    energetic, affirmation
negative: confused, puzzled, doubtful, suspicious, skeptical, hesitant, nervous, anxious, worried, tense,
    stressed, uneasy, fearful, scared, afraid, frightened, terrified, panicked, shocked, sad, unhappy,
    sorrowful, disappointed, depressed, heartbroken, grieving, hurt, lonely, helpless, hopeless, desperate,
    regretful, guilty, ashamed, embarrassed, awkward, shy, upset, distressed, aggrieved, wronged, angry,
    furious, irritated, annoyed, frustrated, impatient, dissatisfied, resentful, indignant, disgusted,
    contemptuous, disdainful, jealous, envious, bored, tired, exhausted, stubborn, defiant, resigned,
    reluctant, agitated, restless, sarcastic, mocking, overwhelmed, flustered, insecure, bitter, hostile,
    aggressive, mad, bad, negative, pain, painful, pressure, pressured, threatened, rejected, betrayed,
    humiliated, offended, insulted, disapproving, disapproval, accusatory, blaming, critical, complaining,
    miserable, pessimistic, discouraged, dread, horrified, misunderstood, conflicted, struggling,
    defensive, vulnerable, weak, powerless, neglected, abandoned, provoked, dismissive, condescending,
    hate, hatred, hateful, fear, anger, disgust, sadness, worry, anxiety, concerned, concern, uncertainty,
    discontent, despair, criticism, disinterested, disinterest, negativity, dislike, irritability,
    discomfort, overwhelm
neutral: neutral, serious, cautious, vigilant, alert, indifferent, surprised, astonished, stunned, speechless,
    nostalgic, arrogant, smug, thoughtful, contemplative, pensive, reflective, surprise, calmness
"""
SIGN = {'positive': 1, 'negative': -1, 'neutral': 0}


@functools.cache
def polarity_table() -> dict[str, int]:
    """word -> +1 / -1 / 0."""
    table, kind = {}, None
    for line in _TABLE.strip().splitlines():
        head, colon, rest = line.partition(':')
        if colon and head.strip() in SIGN:
            kind, line = head.strip(), rest
        for word in line.split(','):
            if word.strip():
                table[word.strip()] = SIGN[kind]
    return table


@functools.cache
def _forms() -> dict[str, str]:
    out = {}
    for label, forms in LEXICON.items():
        for form in (label, *forms):
            out[form] = label
    for group in SYNONYM_GROUPS:
        for word in group:
            out.setdefault(word, group[0])
    return out


def polarity(label: str) -> int | None:
    """+1, -1 or 0 for a known label (lower-cased, stripped), None for an unknown one."""
    word = label.lower().strip()
    table, forms = polarity_table(), _forms()
    for candidate in (word, forms.get(word), word.split()[-1] if ' ' in word else None):
        if candidate in table:
            return table[candidate]
        if candidate in forms and forms[candidate] in table:
            return table[forms[candidate]]
    return None


def sentiment_of(labels) -> str:
    """'positive', 'negative' or 'neutral': the sign of the summed polarities of the distinct known labels."""
    if isinstance(labels, str):
        raise TypeError(f"sentiment_of needs a list of labels, got the string {labels[:60]!r}")
    total = sum(p for p in (polarity(w) for w in dict.fromkeys(w.lower().strip() for w in labels)) if p is not None)
    return 'positive' if total > 0 else 'negative' if total < 0 else 'neutral'
