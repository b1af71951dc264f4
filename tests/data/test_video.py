"""decode_clip / probe / sample_times on real files written with PyAV (see tests/support/media.py)."""
from __future__ import annotations

import os

import cv2
import numpy as np
import pytest

from microemo_jax.data.video import REASONS, MediaError, decode_clip, probe, sample_times
from tests.support.media import (
    corrupt_after_header,
    index_frames,
    is_upright,
    orientation_frame,
    read_index,
    truncate_file,
    write_audio_only_mp4,
    write_audio_with_cover,
    write_empty,
    write_h264_mp4,
    write_mjpeg_avi,
    write_mpeg4_mov,
    write_text,
    write_video,
    write_vp9_webm,
    write_wav,
)

FPS = 25


@pytest.fixture(scope='module')
def media_dir(tmp_path_factory):
    return tmp_path_factory.mktemp('video')


@pytest.fixture(scope='module')
def mp4_2s(media_dir):
    """50 index frames (2 s at 25 fps), H.264 + AAC stereo 44.1 kHz."""
    return write_h264_mp4(media_dir / 'clip.mp4', index_frames(50), audio=dict(sample_rate=44100, channels=2))


# ----------------------------------------------------------------------------------------------- sampling
def test_sample_times_uniform_is_segment_centres():
    np.testing.assert_allclose(sample_times(2.0, 4), [0.25, 0.75, 1.25, 1.75])
    np.testing.assert_allclose(sample_times(0.0, 3), [0, 0, 0])


def test_sample_times_random_is_one_point_per_segment():
    t = sample_times(2.0, 8, 'random', np.random.default_rng(0))
    seg = np.floor(t / 0.25).astype(int)
    np.testing.assert_array_equal(seg, np.arange(8))                     # one per segment, hence sorted
    assert not np.allclose(t, sample_times(2.0, 8))                       # not the centres
    np.testing.assert_array_equal(t, sample_times(2.0, 8, 'random', np.random.default_rng(0)))
    with pytest.raises(ValueError, match='rng'):
        sample_times(2.0, 8, 'random')
    with pytest.raises(ValueError, match='mode'):
        sample_times(2.0, 8, 'middle')


# ----------------------------------------------------------------------------------------------- containers
@pytest.mark.parametrize('writer,name,audio,codec', [
    (write_h264_mp4, 'h264.mp4', dict(sample_rate=44100, channels=2), 'h264'),
    (write_vp9_webm, 'vp9.webm', dict(channels=1), 'vp9'),
    (write_mjpeg_avi, 'mjpeg.avi', dict(sample_rate=16000, channels=1), 'mjpeg'),
    (write_mpeg4_mov, 'mpeg4.mov', None, 'mpeg4'),
    (write_h264_mp4, 'silent.mp4', None, 'h264'),
])
def test_every_container_decodes_uniform_samples(media_dir, writer, name, audio, codec):
    path = writer(media_dir / name, index_frames(50), audio=audio)
    clip = decode_clip(path, 8, frame_size=32, tubelet_length=2)
    assert clip.frames.shape == (8, 32, 32, 3) and clip.frames.dtype == np.uint8
    # uniform centres of 8 segments of 2 s -> nearest frames at 25 fps
    expected = np.rint((np.arange(8) + 0.5) * 0.25 * FPS).astype(int)
    assert np.abs(clip.frame_indices - expected).max() <= 1
    assert [read_index(f) for f in clip.frames] == list(clip.frame_indices)
    np.testing.assert_allclose(clip.timestamps, clip.frame_indices / FPS, atol=1e-4)
    info = clip.info
    assert (info.codec, info.has_audio, info.width, info.height, info.rotation) == (codec, audio is not None, 64, 64, 0)
    assert info.fps == pytest.approx(FPS) and info.duration == pytest.approx(2.0, abs=0.05)


def test_probe_matches_stream(mp4_2s):
    info = probe(mp4_2s)
    assert (info.width, info.height, info.codec, info.has_audio, info.num_frames) == (64, 64, 'h264', True, 50)
    assert info.duration == pytest.approx(2.0) and info.fps == pytest.approx(FPS)


def test_random_mode_is_reproducible_and_distinct(mp4_2s):
    a = decode_clip(mp4_2s, 8, frame_size=16, mode='random', rng=np.random.default_rng(3))
    b = decode_clip(mp4_2s, 8, frame_size=16, mode='random', rng=np.random.default_rng(3))
    np.testing.assert_array_equal(a.frame_indices, b.frame_indices)
    assert np.all(np.diff(a.frame_indices) > 0)
    assert not np.array_equal(a.frame_indices, decode_clip(mp4_2s, 8, frame_size=16).frame_indices)


# ----------------------------------------------------------------------------------------------- tubelets
def test_tubelets_are_consecutive_native_frames(media_dir):
    path = write_h264_mp4(media_dir / 'tub.mp4', index_frames(20))      # 0.8 s: anchors 2.5 frames apart
    clip = decode_clip(path, 8, frame_size=32, tubelet_length=4)
    assert clip.tubelets.shape == (8, 4, 64, 64, 3)
    for i, anchor in enumerate(clip.frame_indices):
        for k in range(4):
            if anchor + k < 20:
                assert clip.tubelet_mask[i, k]
                assert read_index(clip.tubelets[i, k]) == anchor + k
            else:                                                        # past the end: masked, zeros
                assert not clip.tubelet_mask[i, k] and not clip.tubelets[i, k].any()
    assert not clip.tubelet_mask[-1].all()                                # the last anchor runs off the end
    # tubelet frames are the same pictures as the anchors (before the square resize)
    assert read_index(clip.tubelets[0, 0]) == read_index(clip.frames[0])


def test_tubelet_max_side_downscales_keeping_aspect(media_dir):
    path = write_h264_mp4(media_dir / 'wide.mp4', index_frames(10, height=48, width=128))
    clip = decode_clip(path, 2, frame_size=32, tubelet_length=2, tubelet_max_side=64)
    assert clip.tubelets.shape[2:4] == (24, 64)
    assert clip.tubelet_scale == pytest.approx(2.0)
    assert clip.frames.shape[1:3] == (32, 32)                            # squashed, whole frame
    assert read_index(clip.frames[0]) == read_index(clip.tubelets[0, 0]) == clip.frame_indices[0]


# ----------------------------------------------------------------------------------------------- odd inputs
def test_clip_shorter_than_t_frames(media_dir):
    path = write_h264_mp4(media_dir / 'five.mp4', index_frames(5))      # 0.2 s, 5 frames, T = 8
    clip = decode_clip(path, 8, frame_size=16, tubelet_length=2)
    assert len(clip.frames) == len(clip.timestamps) == 5
    np.testing.assert_array_equal(clip.frame_indices, np.arange(5))
    np.testing.assert_allclose(clip.timestamps, np.arange(5) / FPS, atol=1e-4)
    assert clip.tubelet_mask.sum() == 9                                  # last anchor has no next frame


def test_as_many_samples_as_frames_takes_every_frame(media_dir):
    # segment centres fall exactly between frames here: ties must not push samples off the end
    path = write_mjpeg_avi(media_dir / 'every.avi', index_frames(20))
    clip = decode_clip(path, 20, frame_size=16, tubelet_length=1)
    np.testing.assert_array_equal(clip.frame_indices, np.arange(20))


def test_single_frame_video(media_dir):
    clip = decode_clip(write_h264_mp4(media_dir / 'one.mp4', index_frames(1)), 8, frame_size=16)
    assert len(clip.frames) == 1 and clip.timestamps[0] == 0 and read_index(clip.frames[0]) == 0


def test_variable_frame_rate_timestamps_are_true_pts(media_dir):
    gaps = [0.01, 0.05, 0.02, 0.2, 0.03, 0.01, 0.15, 0.04, 0.3, 0.02] * 3
    pts = np.round(np.concatenate([[0.0], np.cumsum(gaps)]), 3)          # 31 frames over ~2.5 s
    path = write_h264_mp4(media_dir / 'vfr.mp4', index_frames(len(pts)), pts_seconds=pts)
    clip = decode_clip(path, 8, frame_size=32, tubelet_length=3)
    idx = np.array([read_index(f) for f in clip.frames])
    np.testing.assert_array_equal(idx, clip.frame_indices)
    np.testing.assert_allclose(clip.timestamps, pts[idx], atol=1e-4)     # the real pts, not index / fps
    assert not np.allclose(clip.timestamps, idx / clip.info.fps, atol=0.01)
    # each sample is served by the frame nearest to it (all distinct here)
    targets = sample_times(clip.info.duration, 8)
    np.testing.assert_array_equal(idx, [np.argmin(np.abs(pts - t)) for t in targets])
    for i, anchor in enumerate(idx):                                     # tubelets: next native frames
        assert [read_index(f) for f in clip.tubelets[i][clip.tubelet_mask[i]]] == list(
            range(anchor, min(anchor + 3, len(pts))))


@pytest.mark.parametrize('rotation', [90, 180, 270])
def test_display_matrix_rotation_is_applied(media_dir, rotation):
    up = orientation_frame(64, 48)                                       # upright: 64 tall, 48 wide
    stored = np.rot90(up, -rotation // 90)                               # what a phone stores
    path = write_h264_mp4(media_dir / f'rot{rotation}.mp4', np.stack([stored] * 10), rotation=rotation)
    assert not is_upright(stored) or rotation == 0
    clip = decode_clip(path, 4, frame_size=32, tubelet_length=2)
    assert clip.info.rotation == rotation
    assert (clip.info.width, clip.info.height) == (48, 64)
    assert clip.tubelets.shape[2:4] == (64, 48)
    assert all(is_upright(f) for f in clip.frames)
    assert all(is_upright(f) for f in clip.tubelets[clip.tubelet_mask])
    assert probe(path).rotation == rotation and (probe(path).width, probe(path).height) == (48, 64)


def test_legacy_rotate_tag_is_applied(media_dir):
    up = orientation_frame(64, 48)
    # 'rotate=90' means "turn 90 degrees clockwise to show": the stored picture is the upright one turned
    # 90 degrees counter-clockwise.
    path = write_video(media_dir / 'tag.mkv', np.stack([np.rot90(up, 1)] * 5), rotate_tag=90)
    clip = decode_clip(path, 2, frame_size=32, tubelet_length=1)
    assert clip.info.rotation == 270 and all(is_upright(f) for f in clip.frames)


@pytest.mark.parametrize('name', ['clip été 表情 1.mp4', 'with space.webm', 'http:colon.mp4', "quote'd.avi"])
def test_odd_file_names(media_dir, name):
    writer = {'.mp4': write_h264_mp4, '.webm': write_vp9_webm, '.avi': write_mjpeg_avi}[os.path.splitext(name)[1]]
    path = writer(media_dir / name, index_frames(10))
    clip = decode_clip(path, 4, frame_size=16)
    assert [read_index(f) for f in clip.frames] == list(clip.frame_indices)
    assert probe(path).width == 64


def test_live_recorded_webm_without_any_duration(media_dir):
    # a browser/ffmpeg-to-pipe WebM declares no duration: the video packets say where it ends
    path = write_vp9_webm(media_dir / 'live.webm', index_frames(50), audio=dict(channels=1, seconds=3.0),
                          streamed=True)
    clip = decode_clip(path, 8, frame_size=16, tubelet_length=1)
    assert clip.info.duration == pytest.approx(2.0, abs=0.05)          # the video's end, not the audio's
    expected = np.rint((np.arange(8) + 0.5) * 0.25 * FPS).astype(int)
    assert np.abs(clip.frame_indices - expected).max() <= 1
    assert [read_index(f) for f in clip.frames] == list(clip.frame_indices)


def test_cut_off_tail_is_decoded_with_what_is_there(media_dir):
    full = write_vp9_webm(media_dir / 'tail.webm', index_frames(50))
    path = truncate_file(full, media_dir / 'tail_cut.webm', 0.97)
    clip = decode_clip(path, 8, frame_size=16, tubelet_length=2)
    assert len(clip.frames) == 8
    assert clip.decoded_duration < clip.info.duration                   # a few frames are missing...
    assert clip.decoded_duration > 0.9 * clip.info.duration             # ...but few enough to keep the clip
    assert [read_index(f) for f in clip.frames] == list(clip.frame_indices)


# ----------------------------------------------------------------------------------------------- bad inputs
def _jpeg(path):
    ok, buf = cv2.imencode('.jpg', orientation_frame(64, 64))
    path.write_bytes(buf.tobytes())
    return str(path)


def _half(writer, **kw):
    def make(path):
        full = writer(str(path) + '.full' + os.path.splitext(str(path))[1], index_frames(50), **kw)
        return truncate_file(full, path, 0.5)
    return make


def _garbled(writer, keep, **kw):
    def make(path):
        full = writer(str(path) + '.full' + os.path.splitext(str(path))[1], index_frames(50), **kw)
        return corrupt_after_header(full, path, keep)
    return make


BAD = [
    ('missing.mp4', lambda p: str(p), 'missing_file'),
    ('empty.mp4', write_empty, 'zero_bytes'),
    ('text.mp4', write_text, 'not_a_video'),
    ('notes.txt', write_text, 'not_a_video'),
    ('sound.wav', write_wav, 'not_a_video'),
    ('photo.mp4', _jpeg, 'not_a_video'),
    ('audio_only.mp4', write_audio_only_mp4, 'no_video_stream'),
    ('song_with_cover.m4a', write_audio_with_cover, 'no_video_stream'),      # cover art is not a video
    ('half.mp4', _half(write_h264_mp4, audio=dict(channels=1)), 'truncated'),          # index (moov) lost
    ('half_faststart.mp4', _half(write_h264_mp4, faststart=True), 'truncated'),       # index kept, media cut
    ('half.avi', _half(write_mjpeg_avi), 'truncated'),
    ('half.webm', _half(write_vp9_webm), 'truncated'),
    ('half.mov', _half(write_mpeg4_mov), 'truncated'),
    ('garbled.mp4', _garbled(write_h264_mp4, 64), 'corrupt'),
    ('garbled_faststart.mp4', _garbled(write_h264_mp4, 2048, faststart=True), 'corrupt'),
    ('garbled.webm', _garbled(write_vp9_webm, 2048), 'corrupt'),
    ('garbled.avi', _garbled(write_mjpeg_avi, 2048), 'corrupt'),
]


@pytest.mark.parametrize('name,make,reason', BAD, ids=[b[0] for b in BAD])
def test_bad_input_gives_specific_reason(media_dir, name, make, reason):
    path = make(media_dir / name)
    with pytest.raises(MediaError) as err:
        decode_clip(path, 8, frame_size=16)
    assert err.value.reason == reason, str(err.value)
    assert err.value.reason in REASONS
    assert name in str(err.value) and err.value.path == os.fspath(path)
    if reason in ('missing_file', 'zero_bytes', 'not_a_video', 'no_video_stream'):
        with pytest.raises(MediaError) as err:                           # probe agrees on what it can see
            probe(path)
        assert err.value.reason == reason
