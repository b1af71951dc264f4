"""Utterance spans: subtitle/utterance-file parsing, the energy VAD (fallback) and the source priority of find_utterances."""
from __future__ import annotations

import fractions

import av
import numpy as np
import pytest

from microemo_jax.data.speech.decode import load_audio
from microemo_jax.data.speech.spans import Utterance
from microemo_jax.data.speech.subtitles import SubtitleError, parse_srt, parse_vtt, read_subtitles, read_utterance_file
from microemo_jax.data.speech.utterances import find_utterances, merge_closest
from microemo_jax.data.speech.vad import detect_voice_activity

SR = 16000
U = Utterance


# ------------------------------------------------------------------------------------------ helpers

def voiced(seconds: float, f0: float = 140.0, amp: float = 0.2) -> np.ndarray:
    """A buzzy vowel-like sound: 11 harmonics of ``f0``, amplitude-modulated at a syllable rate of 4 Hz."""
    t = np.arange(round(seconds * SR)) / SR
    harmonics = sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, 12))
    return amp * harmonics * (0.55 + 0.45 * np.sin(2 * np.pi * 4 * t))


def speech_in_noise(total: float, bursts: list[tuple[float, float]], noise: float = 0.003, seed: int = 0):
    x = np.random.default_rng(seed).normal(0, noise, round(total * SR))
    for start, end in bursts:
        a = round(start * SR)
        x[a:a + round((end - start) * SR)] += voiced(end - start)
    return x.astype(np.float32)


def write_wav(path: str, x: np.ndarray) -> str:
    with av.open(path, 'w') as c:
        a = c.add_stream('pcm_s16le', rate=SR)
        a.layout = 'mono'
        frame = av.AudioFrame.from_ndarray(np.round(np.clip(x, -1, 1) * 32767).astype(np.int16)[None],
                                           format='s16', layout='mono')
        frame.sample_rate, frame.pts, frame.time_base = SR, 0, fractions.Fraction(1, SR)
        for p in list(a.encode(frame)) + list(a.encode(None)):
            c.mux(p)
    return path


# --------------------------------------------------------------------------------------------- SRT

SRT = ('\ufeff1\r\n00:00:01,000 --> 00:00:02,500\r\n<i>Hello</i> there,\r\n<font color="red">Tom</font> &amp; Jerry\r\n'
       '\r\n2\r\n00:00:03.250 --> 00:00:04,000 X1:10 X2:20 Y1:5 Y2:9\r\n{\\an8}Bye now.')  # no trailing newline


def test_srt_real_world_variants():
    assert parse_srt(SRT) == [U(1.0, 2.5, 'Hello there, Tom & Jerry'), U(3.25, 4.0, 'Bye now.')]


def test_srt_without_blank_lines_and_with_stray_blank_inside_a_cue():
    text = ('1\n00:00:01,000 --> 00:00:02,000\nfirst\n2\n00:00:02,000 --> 00:00:03,000\nsecond\n\nstill second\n\n\n'
            '3\n0:00:04,5 --> 0:00:05,75\nthird, 42 < 43\n')
    assert parse_srt(text) == [U(1.0, 2.0, 'first'), U(2.0, 3.0, 'second still second'),
                               U(4.5, 5.75, 'third, 42 < 43')]


def test_srt_empty_and_zero_length_cues():
    assert parse_srt('') == [] and parse_srt('\ufeff\r\n\r\n') == []
    assert parse_srt('1\n00:00:01,000 --> 00:00:01,000\n') == [U(1.0, 1.0, '')]


@pytest.mark.parametrize('text,line,fragment', [
    ('1\n00:00:01,000 --> 00:00:02,000\nok\n\n2\n00:00:0x,000 --> 00:00:04,000\nbad\n', 6, "'00:00:0x,000'"),
    ('1\n00:00:05,000 --> 00:00:02,000\nbackwards\n', 2, 'before it starts'),
    ('1\n00:00:01,000 -> 00:00:02,000\ntypo arrow\n', 2, 'malformed cue timing'),
    ('1\n00:00:01,000 --> 00:01:60,000\nsixty seconds\n', 2, "'00:01:60,000'"),
    ('Title: my film\n\n1\n00:00:01,000 --> 00:00:02,000\nx\n', 1, 'before the first cue'),
    ('1\r\n00:00:01,000 --> \r\nno end\r\n', 2, 'malformed cue timing'),
])
def test_srt_malformed_names_file_and_line(text, line, fragment):
    with pytest.raises(SubtitleError) as e:
        parse_srt(text, where='clips/a b.srt')
    assert e.value.reason == 'malformed_subtitles' and e.value.line == line
    assert str(e.value).startswith(f'clips/a b.srt:{line}: ') and fragment in str(e.value)


# --------------------------------------------------------------------------------------------- VTT

VTT = """WEBVTT - made by hand
Kind: captions
Language: en

NOTE this is a comment
that spans two lines

STYLE
::cue { color: yellow }

intro
00:01.000 --> 00:02.500 align:start position:10% line:0
<v Alice>Hi <c.loud>there</c></v>
<00:00:02.000>everyone

2
01:00:03.000 --> 01:00:04.000
<b>late</b>
"""


def test_vtt_real_world_variants():
    assert parse_vtt(VTT) == [U(1.0, 2.5, 'Hi there everyone'), U(3603.0, 3604.0, 'late')]


def test_vtt_without_header_blank_line_and_with_crlf_bom():
    assert parse_vtt('\ufeffWEBVTT\r\n00:00.500 --> 00:01.000\r\nx') == [U(0.5, 1.0, 'x')]


def test_vtt_malformed_names_line():
    with pytest.raises(SubtitleError) as e:
        parse_vtt('WEBVTT\n\n00:01.000 --> 00:02.000\nok\n\n00:03.000 --> 00:xx.000\nbad\n', where='v.vtt')
    assert e.value.line == 6 and str(e.value).startswith('v.vtt:6:')


# ------------------------------------------------------------------------------------- reading files

def test_read_subtitles_encodings_and_extension(tmp_path):
    (tmp_path / 'a.srt').write_bytes(SRT.encode('utf-8'))  # with BOM
    assert read_subtitles(tmp_path / 'a.srt')[0].text == 'Hello there, Tom & Jerry'
    (tmp_path / 'b.srt').write_bytes('1\n00:00:01,000 --> 00:00:02,000\nCafé “olé”\n'.encode('cp1252'))
    assert read_subtitles(str(tmp_path / 'b.srt'))[0].text == 'Café “olé”'
    (tmp_path / 'c.vtt').write_bytes('WEBVTT\n\n00:01.000 --> 00:02.000\n你好\n'.encode('utf-16'))
    assert read_subtitles(str(tmp_path / 'c.vtt')) == [U(1.0, 2.0, '你好')]
    (tmp_path / 'd.srt').write_bytes(b'1\n00:00:01,000 --> 00:00:02,000\n\x81\x8d caf\xe9\n')  # not cp1252
    assert read_subtitles(str(tmp_path / 'd.srt'))[0].text.endswith('café')
    (tmp_path / 'e.ass').write_text('[Script Info]')
    with pytest.raises(ValueError, match='e.ass'):
        read_subtitles(str(tmp_path / 'e.ass'))


def test_read_subtitles_error_names_path(tmp_path):
    path = tmp_path / 'broken.srt'
    path.write_text('1\n00:00:01,000 --> 00:00:02,000\nok\n\n2\n00:00:03 --> 00:00:04;000\nx\n')
    with pytest.raises(SubtitleError) as e:
        read_subtitles(path)
    assert e.value.path == str(path) and e.value.line == 6 and 'broken.srt:6' in str(e.value)


def test_read_utterance_file(tmp_path):
    path = tmp_path / 'asr.txt'
    path.write_text('start\tend\ttext\n0.5\t1.25\t Hello  world \n\n2\t3.0\n'
                    '00:00:03.5\t4\ttab\tinside\n5 6 no tabs here\n')
    assert read_utterance_file(path) == [U(0.5, 1.25, 'Hello world'), U(2.0, 3.0, ''),
                                         U(3.5, 4.0, 'tab inside'), U(5.0, 6.0, 'no tabs here')]


@pytest.mark.parametrize('body,line', [('0.5\t1\tok\nabc\t2\tbad start\n', 2), ('1\t0.5\tbackwards\n', 1),
                                       ('0.5\n', 1), ('nan\t1\tx\n', 1)])
def test_read_utterance_file_malformed(tmp_path, body, line):
    path = tmp_path / 'asr.txt'
    path.write_text(body)
    with pytest.raises(SubtitleError) as e:
        read_utterance_file(path)
    assert e.value.reason == 'malformed_utterance_file' and e.value.line == line and f'asr.txt:{line}' in str(e.value)


# ------------------------------------------------------------------------------ voice activity (VAD)

def test_vad_finds_two_bursts_in_noise():
    x = speech_in_noise(3.0, [(0.4, 1.2), (1.8, 2.5)])
    found = detect_voice_activity(x, SR)
    assert len(found) == 2 and all(u.text == '' for u in found)
    for u, (start, end) in zip(found, [(0.4, 1.2), (1.8, 2.5)]):
        assert abs(u.start - start) <= 0.06 and abs(u.end - end) <= 0.06, found


@pytest.mark.parametrize('noise', [0.0, 0.003, 0.1])
def test_vad_finds_nothing_in_stationary_noise_or_silence(noise):
    x = np.random.default_rng(1).normal(0, noise, 3 * SR) if noise else np.zeros(3 * SR)
    assert detect_voice_activity(x, SR) == []


def test_vad_merges_short_gaps_and_drops_blips():
    # 0.15 s gap < min_silence (merged); 0.1 s blip < min_speech (dropped).
    x = speech_in_noise(3.0, [(0.3, 0.9), (1.05, 1.6), (2.4, 2.5)])
    found = detect_voice_activity(x, SR)
    assert len(found) == 1 and abs(found[0].start - 0.3) <= 0.06 and abs(found[0].end - 1.6) <= 0.06
    # With a shorter min_silence the gap splits the stretch; with a shorter min_speech the blip survives.
    assert len(detect_voice_activity(x, SR, min_silence_ms=90)) == 2
    assert len(detect_voice_activity(x, SR, min_speech_ms=60)) == 2


def test_vad_edge_inputs():
    assert detect_voice_activity(np.zeros(0), SR) == []
    assert detect_voice_activity(np.zeros(100), SR) == []
    x = np.concatenate([np.zeros(SR // 2), voiced(1.0), np.zeros(SR // 2)])  # speech in digital silence
    (u,) = detect_voice_activity(x, SR)
    assert abs(u.start - 0.5) <= 0.06 and abs(u.end - 1.5) <= 0.06


# ----------------------------------------------------------------------------------- find_utterances

@pytest.fixture
def sources(tmp_path):
    srt = tmp_path / 'clip.srt'
    srt.write_text('1\n00:00:00,500 --> 00:00:01,500\nfrom subtitles\n')
    utt = tmp_path / 'clip.txt'
    utt.write_text('0.2\t0.9\tfrom asr\n')
    wav = write_wav(str(tmp_path / 'clip.wav'), speech_in_noise(3.0, [(1.0, 2.0)]))
    return srt, utt, load_audio(wav).waveform


def test_priority_order(sources):
    srt, utt, waveform = sources
    assert find_utterances(3.0, subtitle_path=srt, utterance_path=utt, waveform=waveform) == (
        [U(0.5, 1.5, 'from subtitles')], 'subtitles')
    assert find_utterances(3.0, utterance_path=utt, waveform=waveform) == ([U(0.2, 0.9, 'from asr')], 'utterance_file')
    found, source = find_utterances(3.0, waveform=waveform, vad='energy')  # a synthetic buzz: the energy detector
    assert source == 'vad' and len(found) == 1 and abs(found[0].start - 1.0) < 0.06 and abs(found[0].end - 2.0) < 0.06
    assert find_utterances(3.0) == ([U(0.0, 3.0, '')], 'whole')
    assert find_utterances(3.0, waveform=np.zeros(0, np.float32)) == ([U(0.0, 3.0, '')], 'whole')
    quiet = np.random.default_rng(0).normal(0, 0.003, 3 * SR)
    assert find_utterances(3.0, waveform=quiet, vad='energy') == ([U(0.0, 3.0, '')], 'whole')


def test_falls_through_when_a_source_has_nothing_in_the_clip(tmp_path, sources):
    _, utt, _ = sources
    late = tmp_path / 'late.vtt'
    late.write_text('WEBVTT\n\n00:10.000 --> 00:12.000\nafter the clip\n')
    assert find_utterances(3.0, subtitle_path=late, utterance_path=utt)[1] == 'utterance_file'
    empty = tmp_path / 'empty.srt'
    empty.write_text('')
    assert find_utterances(3.0, subtitle_path=empty)[1] == 'whole'


def test_missing_or_malformed_given_files_raise(tmp_path, sources):
    _, utt, _ = sources
    with pytest.raises(FileNotFoundError, match='nope.srt'):
        find_utterances(3.0, subtitle_path=tmp_path / 'nope.srt', utterance_path=utt)
    bad = tmp_path / 'bad.srt'
    bad.write_text('1\n00:00:02,000 --> 00:00:01,000\nx\n')
    with pytest.raises(SubtitleError, match='bad.srt:2'):
        find_utterances(3.0, subtitle_path=bad, utterance_path=utt)
    with pytest.raises(ValueError):
        find_utterances(0.0)


def test_clipping_sorting_and_empty_spans(tmp_path):
    srt = tmp_path / 's.srt'
    srt.write_text('1\n00:00:02,000 --> 00:00:05,000\nruns past the end\n\n'
                   '2\n00:00:00,000 --> 00:00:01,000\nfirst\n\n'
                   '3\n00:00:01,500 --> 00:00:01,500\npoint cue\n\n'
                   '4\n00:00:04,000 --> 00:00:06,000\nafter the end\n')
    found, source = find_utterances(3.0, subtitle_path=srt)
    assert source == 'subtitles'
    # Sorted, clipped to 3 s, the outside cue dropped, the zero-length cue's text joined to its nearest span.
    assert found == [U(0.0, 1.0, 'first point cue'), U(2.0, 3.0, 'runs past the end')]


def test_merging_closest_neighbours_keeps_all_text(tmp_path):
    utt = tmp_path / 'u.txt'
    utt.write_text('0\t1\ta\n1.1\t2\tb\n3\t4\tc\n4.5\t5\td\n6\t7\te\n')
    found, _ = find_utterances(8.0, utterance_path=utt, max_utterances=3)
    # Gaps 0.1 (a|b), 1.0, 0.5 (c|d), 1.0: a+b merge first, then c+d.
    assert found == [U(0.0, 2.0, 'a b'), U(3.0, 5.0, 'c d'), U(6.0, 7.0, 'e')]
    found, _ = find_utterances(8.0, utterance_path=utt, max_utterances=1)
    assert found == [U(0.0, 7.0, 'a b c d e')]
    assert len(find_utterances(8.0, utterance_path=utt, max_utterances=8)[0]) == 5


def test_merge_closest_prefers_overlaps_and_rejects_zero():
    utts = [U(0, 2, 'x'), U(1.5, 3, 'y'), U(3.05, 4, 'z')]  # overlap -0.5 beats gap 0.05
    assert merge_closest(utts, 2) == [U(0, 3, 'x y'), U(3.05, 4, 'z')]
    assert merge_closest([U(0, 5, 'long'), U(1, 2, 'inside')], 1) == [U(0, 5, 'long inside')]
    with pytest.raises(ValueError):
        merge_closest(utts, 0)


def test_utf16_and_binary_subtitles(tmp_path):
    """UTF-16 without a BOM is read; binary data is refused with the file's name (it used to surface as a bare
    'truncated data' UnicodeDecodeError, or as its garbage bytes quoted in the error)."""
    text = '1\n00:00:01,000 --> 00:00:02,000\nHéllo 你好\n'
    for encoding in ('utf-16-le', 'utf-16-be', 'utf-16', 'utf-32'):
        (tmp_path / 'a.srt').write_bytes(text.encode(encoding))
        assert read_subtitles(tmp_path / 'a.srt') == [U(1.0, 2.0, 'Héllo 你好')], encoding
    (tmp_path / 'odd.srt').write_bytes(text.encode('utf-16') + b'\n')  # a BOM, then an odd byte count
    (tmp_path / 'bin.srt').write_bytes(bytes(range(256)) * 4)
    (tmp_path / 'bin.vtt').write_bytes(b'\xff\xfe' + bytes(range(256)) * 4)
    for name in ('odd.srt', 'bin.srt', 'bin.vtt'):
        with pytest.raises(SubtitleError) as e:
            read_subtitles(tmp_path / name)
        assert e.value.reason == 'unreadable_subtitles' and str(tmp_path / name) in str(e.value), name
        assert '\x00' not in str(e.value) and '\x01' not in str(e.value)
