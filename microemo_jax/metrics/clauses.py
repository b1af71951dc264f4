"""Which of the emotions named in a sentence the person feels: contrast and concealment, read from clause structure.

A description often names an emotion only to overrule it: "She stays calm despite being furious
inside", "His cheerful tone masks deep sadness", "Although he looks relaxed, he is nervous". Word
lists alone read all of them as felt. We read the clause structure instead, per sentence (a sentence
that opens with "But"/"However"/... continues the one before it):

1. The sentence is cut into segments at contrast words (*but, yet, however, ...*: to the next contrast)
   and concessions (*although, though, despite, in spite of, ...*: to the next comma). A contrast segment
   without a verb or subject of its own ("tired **but happy**") shares the markers of the one before.
2. Each mention is *pretended* ("pretends to be happy", "forced cheerfulness"), *shown* (it names an
   outward display: "calm **exterior**", the mask of a concealment: "**cheerful** tone masks ...",
   "... behind a **calm** smile", or sits in a segment of appearance: looks, seems, stays, on the
   surface, or right after "outwardly"), *felt inside* (right after "inwardly"/"secretly", right before
   "inside"; in a segment that says so: inside, deep down, feels, actually, betrays; or what a
   concealment verb hides: "hides his **anger**", "her **fear** is hidden"), or plain.
3. Pretended emotions are dropped. If the sentence says what is felt inside, that wins: shown emotions,
   and plain ones in the other segments, are dropped. Otherwise a shown emotion set against a plain one
   is dropped. Finally, a concession's emotion gives way to the main clause's ("Despite her calm face,
   her words show she is furious"), unless the main clause says "also"/"too"/"both".
"""
from __future__ import annotations

from typing import NamedTuple

from microemo_jax.metrics.clause_cues import (
    BE,
    BOTH,
    CONCEAL,
    CONCEAL_PHRASES,
    CONCESSION,
    CONCESSION_ENDS,
    CONTRAST,
    DISPLAY,
    DISPLAY_NOUNS,
    DISPLAY_PHRASES,
    INNER,
    INNER_PHRASES,
    INTENSIFIERS,
    LOCAL_INNER,
    LOCAL_SHOWN,
    MASK_PREPOSITIONS,
    PASSIVE_FILLERS,
    PRETENSE,
    SUBJECTS,
)


class Mention(NamedTuple):
    start: int          # token index of the first word
    end: int            # one past the last word
    label: str


_PRETENSE_REACH = 4
_SENTENCE_ENDS = {'.', '!', '?'}
_CLAUSE_MARKS = {',', ';', ':', '(', ')'}
_BREAKS = _CLAUSE_MARKS | CONTRAST | CONCESSION


def _phrase_at(tokens, i, phrases) -> int:
    """Length of the phrase of ``phrases`` that starts at token i (0 if none)."""
    for phrase in phrases:
        if tuple(tokens[i:i + len(phrase)]) == phrase:
            return len(phrase)
    return 0


def _units(tokens) -> list[tuple[int, int]]:
    """Token ranges of sentences, a sentence that opens with a contrast word joined to the one before."""
    units, start = [], 0
    for i, tok in enumerate(tokens + ['.']):
        if tok in _SENTENCE_ENDS or i == len(tokens):
            if i > start:
                if units and tokens[start] in CONTRAST:
                    units[-1] = (units[-1][0], i)
                else:
                    units.append((start, i))
            start = i + 1
    return units


def _segments(tokens, a: int, b: int) -> list[dict]:
    segs, current = [], {'start': a, 'kind': 'main'}
    i = a
    while i < b:
        tok = tokens[i]
        starts = 'concession' if tok in CONCESSION or tuple(tokens[i:i + 3]) == ('in', 'spite', 'of') \
            else 'contrast' if tok in CONTRAST and i > a else None
        if starts:
            segs.append({**current, 'end': i})
            current = {'start': i, 'kind': starts}
        elif current['kind'] == 'concession' and tok in CONCESSION_ENDS:
            segs.append({**current, 'end': i + 1})
            current = {'start': i + 1, 'kind': 'main'}
        i += 1
    segs.append({**current, 'end': b})
    segs = [s for s in segs if s['end'] > s['start']]
    previous = None
    for s in segs:
        words = tokens[s['start']:s['end']]
        s['inner'] = any(t in INNER for t in words) or _has_phrase(tokens, s, INNER_PHRASES)
        s['display'] = any(t in DISPLAY for t in words) or _has_phrase(tokens, s, DISPLAY_PHRASES)
        s['both'] = any(t in BOTH for t in words)
        own = any(t in BE or t in SUBJECTS or t.endswith(("'s", "'re", "'m")) or t in INNER or t in DISPLAY
                  for t in words[1:])
        if s['kind'] == 'contrast' and not own and previous is not None:
            s['inner'], s['display'] = s['inner'] or previous['inner'], s['display'] or previous['display']
        previous = s
    return segs


def _has_phrase(tokens, seg, phrases) -> bool:
    return any(_phrase_at(tokens, i, phrases) for i in range(seg['start'], seg['end']))


def _conceal_verbs(tokens, seg) -> list[tuple[int, int]]:
    out = []
    for i in range(seg['start'], seg['end']):
        n = _phrase_at(tokens, i, CONCEAL_PHRASES) or (1 if tokens[i] in CONCEAL else 0)
        if n:
            out.append((i, i + n))
    return out


def _role(tokens, m: Mention, seg: dict) -> str:
    """'pretended', 'shown', 'inner' or 'plain' for one mention in its segment."""
    for j in range(m.start - 1, max(seg['start'] - 1, m.start - 1 - _PRETENSE_REACH), -1):
        if tokens[j] in _BREAKS:
            break
        if tokens[j] in PRETENSE:
            return 'pretended'
    if any(t in DISPLAY_NOUNS for t in tokens[m.end:min(m.end + 2, seg['end'])]):
        return 'shown'
    for v_start, v_end in _conceal_verbs(tokens, seg):
        if v_end <= m.start:                               # after the verb: its object, or the mask after it
            between = tokens[v_end:m.start]
            if any(t in _CLAUSE_MARKS for t in between):
                continue                                   # "hide anger, betrayed ...: she is furious"
            return 'shown' if any(t in MASK_PREPOSITIONS for t in between) else 'inner'
        between = tokens[m.end:v_start]
        if between and all(t in PASSIVE_FILLERS for t in between) and any(t in BE for t in between):
            return 'inner'                                 # "her anger is hidden"
        if len(between) <= 2 and not any(t in PASSIVE_FILLERS or t in _BREAKS or t == 'and' for t in between):
            return 'shown'                                 # "her cheerful tone masks ..."
    before = [t for t in tokens[max(seg['start'], m.start - 2):m.start] if t not in INTENSIFIERS]
    if before and before[-1] in LOCAL_SHOWN:
        return 'shown'
    if (before and before[-1] in LOCAL_INNER) or tokens[m.end:m.end + 1] == ['inside'] \
            or _phrase_at(tokens, m.end, {('deep', 'down')}):
        return 'inner'
    if seg['inner']:
        return 'inner'
    return 'shown' if seg['display'] else 'plain'


def felt(tokens: list[str], mentions: list[Mention]) -> list[Mention]:
    """The mentions that name what the person feels, in their original order (see the module docstring)."""
    kept = []
    for a, b in _units(tokens):
        segs = _segments(tokens, a, b)
        here = []
        for m in mentions:
            if a <= m.start < b:
                seg = next(s for s in segs if s['start'] <= m.start < s['end'])
                here.append((m, seg, _role(tokens, m, seg)))
        here = [x for x in here if x[2] != 'pretended']
        inner_segs = {id(seg) for _, seg, role in here if role == 'inner'}
        if inner_segs:
            here = [x for x in here if x[2] == 'inner' or (x[2] == 'plain' and id(x[1]) in inner_segs)]
        elif any(r == 'plain' for _, _, r in here) and any(r == 'shown' for _, _, r in here) \
                and len({id(s) for _, s, _ in here}) > 1:
            here = [x for x in here if x[2] != 'shown']
        main = [x for x in here if x[1]['kind'] != 'concession']
        if main and len(main) < len(here) and not any(s['both'] for _, s, _ in main):
            here = [x for x in here if x[1]['kind'] != 'concession' or x[2] == 'inner']
        kept.extend(m for m, _, _ in here)
    return kept
