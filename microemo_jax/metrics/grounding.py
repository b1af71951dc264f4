"""Temporal grounding: the times an explanation states, and how far they fall from the gold explanation's.

``stated_times(text)`` finds the moments a free text dates ("at 1.7 s", "around 2 seconds", "from 0.4s",
"between 1.2 and 1.5 seconds", "1.7s into the clip", "the 2-second mark", "at 1700 ms", "t = 1.7", "0:01.7").
Written by hand with regular expressions because no maintained library dates events in English prose
without a model (dateparser and duckling read calendar dates and clock times, not seconds into a clip).

The rules, each one a test in ``tests/metrics/test_grounding.py``:

* a number followed by a unit of seconds (s, sec, secs, second, seconds; also ms/milliseconds, divided by
  1000) states a moment; number words one..twenty, "N and a half" and "half a second" count as numbers;
* a range ("between A and B s", "from A to B s", "A-B s") states one moment, its start A (the demo's gold
  explanations date an event by its onset); ``StatedTime.end`` keeps B;
* a duration is not a moment: a quantity after "for", "lasting", "lasts", "within", "during", "over",
  "of", "takes", "took" or the article "a"/"an" (hedges such as "about" in between), or followed by
  "long"/"-long" ("flashes for 120 ms", "a 0.2 s flash", "a flash of 120 ms");
* text in double quotes is speech the explanation quotes (the subtitle), not the explanation's own times;
* "the 90s"/"the 1990s" (a bare ``s`` glued to a round number after "the" or an apostrophe, no "mark" after
  it) is a decade;
* ``m:ss`` or ``m:ss.f`` is a time code unless am/pm/o'clock follow.

``match_times(gold, stated)`` pairs each gold moment with a stated one: the closest pair of all first, then
the closest among the rest, each time used once (so with one stated and two gold times, the stated time
answers the gold event it is nearest to, and the other gold event counts as not dated).

``median_time(gold_texts)`` is the time baseline: one constant moment, the training split's median, stated for
every clip. A model whose error is not below that constant's has not located anything.
"""
from __future__ import annotations

import dataclasses
import re

import numpy as np

from microemo_jax.metrics.intervals import ratio

_WORDS = ('zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen '
          'sixteen seventeen eighteen nineteen twenty').split()
_WORD_VALUE = {w: float(i) for i, w in enumerate(_WORDS)}
_NUM = (r'(?:(?<![\w.])(?:\d+(?:\.\d+)?|\.\d+)(?![\d])'
        r'|\b(?:' + '|'.join(_WORDS) + r')(?:\s+and\s+a\s+half)?\b|\bhalf\s+a)')
_SEC = r'(?:seconds?|secs?|s)\b'
_MSEC = r'(?:milliseconds?|msecs?|ms)\b'
_UNIT = rf'(?:{_MSEC}|{_SEC})'
_HEDGE = r'(?:(?:about|around|roughly|approximately|approx\.?|nearly|almost|some|just|only|exactly|ca\.?|~)\s*)*'

_RANGE = re.compile(
    rf'(?P<lead>\bbetween\s+|\bfrom\s+)?{_HEDGE}(?P<a>{_NUM})\s*(?P<ua>{_UNIT})?\s*'
    rf'(?P<sep>-|–|—|\bto\b|\bthrough\b|\buntil\b|\btill\b|\band\b)\s*{_HEDGE}(?P<b>{_NUM})\s*-?\s*(?P<ub>{_UNIT})',
    re.IGNORECASE)
_POINT = re.compile(rf'(?P<a>{_NUM})\s*-?\s*(?P<ua>{_UNIT})', re.IGNORECASE)
_TIMECODE = re.compile(r'(?<![\w:.])(?P<m>\d{1,2}):(?P<s>[0-5]\d(?:\.\d+)?)(?![\w:])'
                       r'(?!\s*(?:[ap]\.?m\b|o\'?clock))', re.IGNORECASE)
_T_EQUALS = re.compile(rf'\bt\s*=\s*(?P<a>{_NUM})(?:\s*(?P<ua>{_UNIT}))?', re.IGNORECASE)
_QUOTED = re.compile(r'"[^"]*"|“[^”]*”')
_DURATION_BEFORE = re.compile(rf'(?:\bfor|\blasting|\blasts?|\bwithin|\bduring|\bover|\bof|\btakes?|\btook'
                              rf'|\ba|\ban)\s+{_HEDGE}$', re.IGNORECASE)
_DURATION_AFTER = re.compile(r'^\s*-?\s*long\b', re.IGNORECASE)
_DECADE_BEFORE = re.compile(r"(?:\bthe\s+|')$", re.IGNORECASE)


@dataclasses.dataclass(frozen=True)
class StatedTime:
    """One moment a text states: ``seconds`` (a range's start), ``end`` (a range's end, else None) and where
    in the text it was found (``span``, character offsets, and its ``text``)."""
    seconds: float
    end: float | None
    span: tuple[int, int]
    text: str


def _number(token: str) -> float:
    t = ' '.join(token.lower().split())
    if t == 'half a':
        return 0.5
    half = t.endswith(' and a half')
    t = t[:-len(' and a half')] if half else t
    value = _WORD_VALUE[t] if t in _WORD_VALUE else float(t)
    return value + (0.5 if half else 0.0)


def _scale(unit: str | None) -> float:
    return 0.001 if unit and re.fullmatch(_MSEC, unit, re.IGNORECASE) else 1.0


def _is_duration(text: str, start: int, end: int) -> bool:
    return bool(_DURATION_BEFORE.search(text[max(0, start - 40):start])
                or _DURATION_AFTER.match(text[end:end + 8]))


def _is_decade(text: str, m: re.Match) -> bool:
    a, unit = m.group('a'), m.group('ua')
    glued = m.group(0)[len(a):] == unit       # "90s", not "90 s"
    return (unit.lower() == 's' and glued and a.isdigit() and len(a) >= 2 and a.endswith('0')
            and bool(_DECADE_BEFORE.search(text[max(0, m.start() - 5):m.start()]))
            and not re.match(r'\s*mark\b', text[m.end():m.end() + 8], re.IGNORECASE))


def stated_times(text: str) -> list[StatedTime]:
    """The moments ``text`` states, in text order (see the module doc for what counts)."""
    text = str(text or '')
    work = _QUOTED.sub(lambda q: ' ' * len(q.group(0)), text)   # quoted speech: blanked, offsets kept
    found: list[StatedTime] = []
    taken = [False] * len(work)

    def take(start, end, seconds, stop=None, *, check_duration=True):
        if any(taken[start:end]) or (check_duration and _is_duration(work, start, end)):
            return
        taken[start:end] = [True] * (end - start)
        found.append(StatedTime(round(seconds, 6), None if stop is None else round(stop, 6), (start, end),
                                text[start:end]))

    for m in _RANGE.finditer(work):
        if m.group('sep').lower() == 'and' and (m.group('lead') or '').strip().lower() != 'between':
            continue                                     # "1 and 2 seconds": two numbers, not a range
        scale_b = _scale(m.group('ub'))
        scale_a = _scale(m.group('ua')) if m.group('ua') else scale_b
        start = m.start('a') if not m.group('lead') else m.start()
        take(start, m.end(), _number(m.group('a')) * scale_a, _number(m.group('b')) * scale_b)
    for m in _POINT.finditer(work):
        if not _is_decade(work, m):
            take(m.start(), m.end(), _number(m.group('a')) * _scale(m.group('ua')))
    for m in _T_EQUALS.finditer(work):
        take(m.start(), m.end(), _number(m.group('a')) * _scale(m.group('ua')))
    for m in _TIMECODE.finditer(work):
        take(m.start(), m.end(), 60 * int(m.group('m')) + float(m.group('s')))
    return sorted(found, key=lambda t: t.span)


def match_times(gold: list[float], stated: list[float]) -> list[tuple[float, float]]:
    """(gold, stated) pairs: the closest pair first, then the closest among the rest, each time used once;
    ties go to the earlier gold time, then the earlier stated time."""
    candidates = sorted((abs(g - s), i, j) for i, g in enumerate(gold) for j, s in enumerate(stated))
    used_g, used_s, pairs = set(), set(), []
    for _, i, j in candidates:
        if i not in used_g and j not in used_s:
            used_g.add(i)
            used_s.add(j)
            pairs.append((i, j))
    return [(gold[i], stated[j]) for i, j in sorted(pairs)]


def clip_grounding(gold_text: str, text: str) -> dict:
    """One clip: the gold and stated moments (seconds), the matched pairs and their absolute errors."""
    return times_grounding([t.seconds for t in stated_times(gold_text)], [t.seconds for t in stated_times(text)])


def times_grounding(gold: list[float], said: list[float]) -> dict:
    """``clip_grounding`` of moments already read: the gold ones and the stated ones."""
    pairs = match_times(gold, said)
    return {'gold_times': gold, 'stated_times': said, 'pairs': pairs,
            'errors': [round(abs(g - s), 6) for g, s in pairs]}


def median_time(gold_texts) -> float | None:
    """The median of every moment the gold texts state (None: they state none). Stated for every clip, it is the
    constant answer with the least absolute error on those texts: the time baseline a model has to beat."""
    times = [t.seconds for text in gold_texts for t in stated_times(text)]
    return round(float(np.median(times)), 6) if times else None


def grounding_summary(clips: list[dict], bootstrap=None) -> dict:
    """The grounding block of a set of clips (each a ``clip_grounding`` result).

    ``mae_s``: the mean absolute error over every matched gold event (a clip with two matched events weighs
    twice); ``mae_s_interval``: its bootstrap interval over clips (``bootstrap``: a ``metrics.intervals.Bootstrap``);
    ``n_gold_timed``: clips whose gold explanation states a time; ``share_stating_time``: the share of those
    whose explanation states one too (``share_stating_time_untimed``: the same share among the clips whose gold
    states none); ``n_events`` / ``n_matched``: gold moments, and those a stated time answered.
    """
    timed = [c for c in clips if c['gold_times']]
    untimed = [c for c in clips if not c['gold_times']]
    sums = np.array([sum(c['errors']) for c in clips], np.float64)
    matched = np.array([len(c['errors']) for c in clips], np.float64)
    n_matched = int(matched.sum())
    out = {
        'mae_s': round(float(sums.sum() / n_matched), 6) if n_matched else None, 'mae_s_interval': None,
        'n_clips': len(clips), 'n_gold_timed': len(timed),
        'n_stating_time': sum(1 for c in timed if c['stated_times']),
        'share_stating_time': (round(sum(1 for c in timed if c['stated_times']) / len(timed), 6) if timed
                               else None),
        'share_stating_time_untimed': (round(sum(1 for c in untimed if c['stated_times']) / len(untimed), 6)
                                       if untimed else None),
        'n_events': sum(len(c['gold_times']) for c in clips), 'n_matched': n_matched,
    }
    if bootstrap is not None and n_matched:
        out['mae_s_interval'] = bootstrap.interval(ratio(sums, matched, bootstrap.counts(len(clips))))
    return out
