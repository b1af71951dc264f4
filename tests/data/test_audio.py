"""load_audio / log_mel on real files encoded here with PyAV (every container/codec/rate/layout we accept)."""
from __future__ import annotations

import fractions

import av
import numpy as np
import pytest

from microemo_jax.data.speech.decode import Audio, AudioError, load_audio, log_mel
from microemo_jax.data.speech.log_mel import log_mel_spectrogram

SR = 16000


# ------------------------------------------------------------------------------------------ helpers

def tone(seconds: float, rate: int, freq: float = 440.0, amp: float = 0.5, onset: float = 0.0) -> np.ndarray:
    """A sine of ``freq`` Hz that starts at ``onset`` seconds (silence before)."""
    t = np.arange(round(seconds * rate)) / rate
    return (amp * np.sin(2 * np.pi * freq * t) * (t >= onset)).astype(np.float32)


def _as_format(chunk: np.ndarray, fmt: av.AudioFormat) -> np.ndarray:
    """(channels, n) float in [-1, 1] -> the array layout/dtype ``AudioFrame.from_ndarray`` wants for ``fmt``."""
    x = np.clip(chunk, -1.0, 1.0)
    base = fmt.name.rstrip('p')
    if base == 's16':
        x = np.round(x * 32767).astype(np.int16)
    elif base == 's32':
        x = np.round(x * 2147483647).astype(np.int32)
    elif base == 'u8':
        x = np.round(x * 127 + 128).astype(np.uint8)
    else:
        x = x.astype(np.float32)
    return np.ascontiguousarray(x if fmt.is_planar else x.T.reshape(1, -1))


def write_media(path: str, signal: np.ndarray | None, rate: int = 44100, *, codec: str = 'aac',
                layout: str | None = None, video: str | None = None, seconds: float | None = None,
                container_format: str | None = None) -> str:
    """Write ``signal`` ((n,) mono or (channels, n)) with ``codec``, optionally plus a tiny 64x64 ``video`` stream."""
    if signal is not None:
        signal = np.atleast_2d(signal)
        layout = layout or {1: 'mono', 2: 'stereo'}[signal.shape[0]]
        seconds = signal.shape[1] / rate
    with av.open(path, 'w', format=container_format) as c:
        vs = None
        if video:
            vs = c.add_stream(video, rate=10)
            vs.width = vs.height = 64
            vs.pix_fmt = 'yuv420p'
        if signal is not None:
            a = c.add_stream(codec, rate=rate)
            a.layout = layout
            fmt = a.codec_context.format
            step = a.codec_context.frame_size or 1024
            for i in range(0, signal.shape[1], step):
                chunk = signal[:, i:i + step]
                frame = av.AudioFrame.from_ndarray(_as_format(chunk, fmt), format=fmt.name, layout=layout)
                frame.sample_rate, frame.pts, frame.time_base = rate, i, fractions.Fraction(1, rate)
                for p in a.encode(frame):
                    c.mux(p)
            for p in a.encode(None):
                c.mux(p)
        if vs is not None:
            for k in range(max(1, round(seconds * 10))):
                f = av.VideoFrame.from_ndarray(np.full((64, 64, 3), 20 * k % 256, np.uint8), format='rgb24')
                f.pts = k
                for p in vs.encode(f):
                    c.mux(p)
            for p in vs.encode(None):
                c.mux(p)
    return path


def peak_hz(x: np.ndarray, rate: int = SR) -> float:
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.argmax(spec) * rate / len(x))


def amplitude(x: np.ndarray, freq: float, rate: int = SR) -> float:
    """Amplitude of the ``freq`` component (robust to the short glitches lossy encoders add at a cut)."""
    t = np.arange(len(x)) / rate
    return float(2 * np.abs(np.dot(x, np.exp(-2j * np.pi * freq * t))) / len(x))


def onset(x: np.ndarray, level: float = 0.2) -> int:
    return int(np.argmax(np.abs(x) > level))


# ---------------------------------------------------------------------------------- valid odd inputs

def test_aac_mp4_44k_stereo_drops_priming_and_keeps_length_and_pitch(tmp_path):
    sig = np.stack([tone(1.0, 44100), tone(1.0, 44100)])
    a = load_audio(write_media(str(tmp_path / 'clip.mp4'), sig, 44100, video='libx264'))
    assert isinstance(a, Audio) and a.has_audio and a.sample_rate == SR
    assert (a.source_rate, a.source_channels) == (44100, 2)
    assert a.waveform.dtype == np.float32 and a.waveform.ndim == 1
    assert abs(len(a.waveform) - SR) <= 4, len(a.waveform)  # 1024 priming samples would add 371
    assert abs(peak_hz(a.waveform) - 440) < 2
    assert amplitude(a.waveform, 440) == pytest.approx(0.5, abs=0.03)


def test_aac_onset_is_where_it_was_encoded(tmp_path):
    # Priming left in would move the onset 1024 / 44100 s = 371 samples late at 16 kHz.
    sig = tone(1.0, 44100, onset=0.5)
    a = load_audio(write_media(str(tmp_path / 'late.m4a'), sig, 44100, container_format='mp4'))
    assert abs(onset(a.waveform) - 8000) < 60, onset(a.waveform)


def test_stereo_is_averaged_to_mono(tmp_path):
    left, right = tone(1.0, 22050, 440, 0.5), tone(1.0, 22050, 1000, 0.5)
    a = load_audio(write_media(str(tmp_path / 'lr.wav'), np.stack([left, right]), 22050, codec='pcm_s16le'))
    assert len(a.waveform) == SR
    assert amplitude(a.waveform, 440) == pytest.approx(0.25, abs=0.01)
    assert amplitude(a.waveform, 1000) == pytest.approx(0.25, abs=0.01)
    # Opposite channels cancel: a downmix that kept one channel would not.
    b = load_audio(write_media(str(tmp_path / 'anti.wav'), np.stack([left, -left]), 22050, codec='pcm_s16le'))
    assert np.abs(b.waveform).max() < 1e-3


@pytest.mark.parametrize('ext,video', [('wav', None), ('mov', 'mpeg4')])
def test_mono_8k_pcm_is_upsampled(tmp_path, ext, video):
    a = load_audio(write_media(str(tmp_path / f'm8k.{ext}'), tone(1.0, 8000, 440), 8000, codec='pcm_s16le',
                               video=video))
    assert (a.source_rate, a.source_channels) == (8000, 1)
    assert len(a.waveform) == SR
    assert abs(peak_hz(a.waveform) - 440) < 2
    assert amplitude(a.waveform, 440) == pytest.approx(0.5, abs=0.01)
    # Upsampling must not alias: nothing above the 4 kHz source Nyquist.
    spec = np.abs(np.fft.rfft(a.waveform))
    assert spec[4200:].max() < 1e-2 * spec.max()


def test_opus_webm_48k(tmp_path):
    sig = np.stack([tone(1.0, 48000, 660, onset=0.5)] * 2)
    a = load_audio(write_media(str(tmp_path / 'clip.webm'), sig, 48000, codec='libopus', video='libvpx-vp9'))
    assert (a.source_rate, a.source_channels) == (48000, 2)
    # WebM stores no audio-stream duration: the container's (video) duration may add a few ms of padding.
    assert SR - 4 <= len(a.waveform) <= SR + 0.1 * SR
    assert abs(peak_hz(a.waveform[8000:16000]) - 660) < 3
    assert abs(onset(a.waveform) - 8000) < 60  # Opus pre-skip removed


def test_no_audio_track_is_valid_and_empty(tmp_path):
    a = load_audio(write_media(str(tmp_path / 'silent film.mp4'), None, video='libx264', seconds=1.0))
    assert not a.has_audio and a.waveform.shape == (0,) and a.waveform.dtype == np.float32
    assert (a.source_rate, a.source_channels) == (0, 0)
    assert log_mel(a.waveform, num_mel_bins=16, max_frames=800).shape == (16, 0)


def test_timestamp_gap_becomes_silence(tmp_path):
    # Matroska keeps packet timestamps: 0.25 s of tone, a 0.5 s hole, 0.25 s of tone stays 1 s long.
    path, sig = str(tmp_path / 'gap.mkv'), tone(0.5, SR)
    with av.open(path, 'w') as c:
        a = c.add_stream('pcm_s16le', rate=SR)
        a.layout = 'mono'
        for i in range(0, len(sig), 800):
            frame = av.AudioFrame.from_ndarray(_as_format(sig[None, i:i + 800], a.codec_context.format),
                                               format='s16', layout='mono')
            frame.sample_rate, frame.time_base = SR, fractions.Fraction(1, SR)
            frame.pts = i if i < 4000 else i + 8000
            for p in a.encode(frame):
                c.mux(p)
        for p in a.encode(None):
            c.mux(p)
    w = load_audio(path).waveform
    assert len(w) == SR
    assert np.abs(w[4000:12000]).max() == 0.0
    assert amplitude(w[12000:], 440) == pytest.approx(0.5, abs=0.02)


def test_clip_under_one_second(tmp_path):
    a = load_audio(write_media(str(tmp_path / 'short.mp4'), tone(0.3, 44100), 44100, video='mpeg4'))
    assert abs(len(a.waveform) - 4800) <= 4
    assert log_mel(a.waveform, num_mel_bins=16, max_frames=800).shape == (16, len(a.waveform) // 160)


@pytest.mark.parametrize('name,codec,rate,fmt', [
    ('speech.mp3', 'libmp3lame', 44100, None),
    ('speech.flac', 'flac', 44100, None),
    ('speech.m4a', 'aac', 48000, 'mp4'),
    ('u8 é 11k.wav', 'pcm_u8', 11025, None),   # unsigned 8-bit, non-ASCII name with spaces
    ('f32.wav', 'pcm_f32le', 24000, None),
])
def test_standalone_audio_files(tmp_path, name, codec, rate, fmt):
    a = load_audio(write_media(str(tmp_path / name), tone(1.0, rate, 440), rate, codec=codec, container_format=fmt))
    assert a.source_rate == rate and a.has_audio
    assert abs(len(a.waveform) - SR) <= 4, len(a.waveform)
    assert abs(peak_hz(a.waveform) - 440) < 2
    assert amplitude(a.waveform, 440) == pytest.approx(0.5, abs=0.03)


def test_output_is_clipped_to_unit_range(tmp_path):
    square = np.sign(tone(1.0, 44100, 200, 1.0)).astype(np.float32)  # AAC overshoots a full-scale square
    a = load_audio(write_media(str(tmp_path / 'loud.m4a'), square, 44100, container_format='mp4'))
    assert np.abs(a.waveform).max() <= 1.0


# --------------------------------------------------------------------------------------- bad inputs

def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_audio(str(tmp_path / 'nope.wav'))


def test_zero_bytes(tmp_path):
    (tmp_path / 'empty.wav').write_bytes(b'')
    with pytest.raises(AudioError) as e:
        load_audio(str(tmp_path / 'empty.wav'))
    assert e.value.reason == 'zero_bytes' and 'empty.wav' in str(e.value)


def test_not_a_media_file(tmp_path):
    (tmp_path / 'notes.wav').write_text('this is not audio\n' * 50)
    with pytest.raises(AudioError) as e:
        load_audio(str(tmp_path / 'notes.wav'))
    assert e.value.reason == 'corrupt_audio' and 'notes.wav' in str(e.value)


def test_corrupt_audio_packets(tmp_path):
    path = write_media(str(tmp_path / 'bad.m4a'), tone(1.0, 44100), 44100, container_format='mp4')
    data = bytearray(open(path, 'rb').read())
    start = data.find(b'mdat') + 8 + 2000  # garble AAC payload, keep the container index intact
    data[start:start + 2000] = np.random.default_rng(0).integers(0, 256, 2000, dtype=np.uint8).tobytes()
    open(path, 'wb').write(bytes(data))
    with pytest.raises(AudioError) as e:
        load_audio(path)
    assert e.value.reason == 'corrupt_audio' and e.value.path == path and 'bad.m4a' in str(e.value)


def test_truncated_wav(tmp_path):
    path = write_media(str(tmp_path / 'cut.wav'), tone(1.0, 16000), 16000, codec='pcm_s16le')
    data = open(path, 'rb').read()
    open(path, 'wb').write(data[:len(data) // 2])
    with pytest.raises(AudioError) as e:
        load_audio(path)
    assert e.value.reason == 'truncated_audio' and 'cut.wav' in str(e.value)


# ------------------------------------------------------------------------------------------- log-mel

def test_log_mel_frames_and_normalisation():
    rng = np.random.default_rng(0)
    x = (tone(2.0, SR, 300) + 0.01 * rng.standard_normal(2 * SR)).astype(np.float32)
    m = log_mel(x, num_mel_bins=16, max_frames=800)
    assert m.shape == (16, 200) and m.dtype == np.float32
    np.testing.assert_allclose(m, log_mel_spectrogram(x, 16), rtol=0, atol=1e-6)
    assert m.max() - m.min() <= 2.0 + 1e-6  # clamp at (max - 8) dB, then / 4

    cut = log_mel(x, num_mel_bins=16, max_frames=50)
    assert cut.shape == (16, 50)
    # Normalised over what the model sees (the first 0.5 s), as Whisper truncates before normalising.
    np.testing.assert_allclose(cut, log_mel_spectrogram(x[:50 * 160], 16), atol=1e-6)


def test_log_mel_tiny_and_silent_inputs():
    assert log_mel(np.zeros(0, np.float32), num_mel_bins=8, max_frames=10).shape == (8, 0)
    assert log_mel(np.ones(159, np.float32), num_mel_bins=8, max_frames=10).shape == (8, 0)
    one = log_mel(tone(0.011, SR), num_mel_bins=8, max_frames=10)  # 176 samples: too few for the centred STFT alone
    assert one.shape == (8, 1) and np.isfinite(one).all()
    np.testing.assert_allclose(log_mel(np.zeros(SR, np.float32), num_mel_bins=8, max_frames=800), -1.5)


def test_clip_log_mel_pads_like_the_extractor_when_the_model_pads_to_the_window():
    """model.audio.pad_to_30s: prepare stores the extractor's frames of the clip padded to the window (its
    normalisation and last frames), not the clip's own; without it the clip's own log-mel."""
    from microemo_jax.data.speech.decode import clip_log_mel, log_mel
    from microemo_jax.data.speech.log_mel import log_mel_for_window
    rng = np.random.default_rng(0)
    wave = (0.1 * rng.standard_normal(16000 * 3 // 2)).astype(np.float32)
    own = clip_log_mel(wave, num_mel_bins=16, max_frames=800)
    np.testing.assert_array_equal(own, log_mel(wave, num_mel_bins=16, max_frames=800))
    padded = clip_log_mel(wave, num_mel_bins=16, max_frames=800, window_frames=800)
    np.testing.assert_allclose(padded, log_mel_for_window(wave, 16, 800), rtol=0, atol=0)
    assert padded.shape[1] >= own.shape[1] and not np.allclose(padded[:, own.shape[1] - 2:own.shape[1]],
                                                               own[:, -2:])
    assert clip_log_mel(wave, num_mel_bins=16, max_frames=50, window_frames=800).shape == (16, 50)
