"""Raw videos -> explanations: the preprocessing of ``prepare`` on each clip, then generation, then the labels,
the utterances and the timeline picture (what ``predict``, ``serve`` and the demo report share).

Outputs are named after the video's whole file name, extension included (``a.mp4`` -> ``a.mp4.json`` and
``a.mp4.timeline.png``): file names in one folder are unique, so ``a.mp4`` and ``a.avi`` get one JSON each, and
the name does not depend on which other files are there. A clip's ``name`` stays its stem (the corpus name).
A ``Predictor`` also refuses to write one output path twice in a run, whatever names it is given.
"""
from __future__ import annotations

import dataclasses
import json
import os

import cv2
import numpy as np

from microemo_jax import params as params_lib
from microemo_jax.data import video as video_lib
from microemo_jax.data.raw.files import SUBTITLE_EXTENSIONS, VIDEO_EXTENSIONS
from microemo_jax.data.raw.sources import RawClip, Skip
from microemo_jax.data.records import record as record_lib
from microemo_jax.data.records.clip_processor import ClipProcessor, settings_from_config
from microemo_jax.inference.explainer import Explainer
from microemo_jax.inference.settings import GenerationSettings
from microemo_jax.metrics import extract_labels
from microemo_jax.plots import draw_timeline
from microemo_jax.safe_paths import inside


class PredictError(RuntimeError):
    """A clip or an argument cannot be used; the message names the path and the problem."""


def find_videos(path: str, subtitles: str | None):
    """[RawClip] for a video file or a folder of videos (sibling .srt/.vtt files become subtitles)."""
    if not os.path.lexists(path):
        raise PredictError(f"--video {path}: no such file or folder")
    if subtitles is not None and not os.path.isfile(subtitles):
        raise PredictError(f"--subtitles {subtitles}: no such file")
    if subtitles is not None and not subtitles.lower().endswith(SUBTITLE_EXTENSIONS):
        raise PredictError(f"--subtitles {subtitles}: expected a {' or '.join(SUBTITLE_EXTENSIONS)} file")
    if os.path.isdir(path):
        if subtitles:
            raise PredictError("--subtitles goes with a single --video file; in a folder, put NAME.srt beside "
                               "NAME.mp4")
        files = sorted(os.path.join(path, f) for f in os.listdir(path) if f.lower().endswith(VIDEO_EXTENSIONS))
        if not files:
            raise PredictError(f"--video {path}: the folder holds no video ({', '.join(VIDEO_EXTENSIONS)})")
    else:
        files = [path]
    return [RawClip(name=os.path.splitext(os.path.basename(video))[0], video=video,
                    subtitle_file=subtitles if subtitles is not None else subtitles_beside(video)) for video in files]


def output_name(video: str) -> str:
    """The stem of a clip's output files: the video's file name with its extension (``a.mp4``)."""
    return os.path.basename(video)


def subtitles_beside(video: str) -> str | None:
    """NAME.srt or NAME.vtt next to NAME.mp4 (the first that exists), else None."""
    stem = os.path.splitext(video)[0]
    return next((stem + ext for ext in SUBTITLE_EXTENSIONS if os.path.isfile(stem + ext)), None)


def raw_video(raw_dir: str, name: str) -> str | None:
    """The video of clip ``name`` in a raw corpus folder (``DIR/NAME.ext`` or ``DIR/video/NAME.ext``), else None."""
    for ext in VIDEO_EXTENSIONS:
        for candidate in (os.path.join(raw_dir, name + ext), os.path.join(raw_dir, 'video', name + ext)):
            if os.path.isfile(candidate):
                return candidate
    return None


def _rgb(jpeg: bytes):
    return cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)[..., ::-1]


class Predictor:
    """A parameter folder ready to explain raw videos (the preprocessing of ``prepare``, then generation)."""

    def __init__(self, params_dir: str, *, batch_size: int = 1, question: str | None = None, asr: str | None = None,
                 **generation):
        """``generation``: fields of ``GenerationSettings`` (max_new_tokens, temperature, top_p, top_k, seed)."""
        self.folder = params_lib.load(params_dir)
        cfg = self.folder.cfg
        settings = settings_from_config(cfg, 'folder', os.path.join(self.folder.path, params_lib.TOKENIZER_DIRS['llm']),
                                        os.path.join(self.folder.path, params_lib.TOKENIZER_DIRS['qformer']),
                                        asr=asr)
        if question:
            settings = dataclasses.replace(settings, question=question)
        self.processor = ClipProcessor(settings)
        self.generation = GenerationSettings(**generation)
        self.explainer = Explainer(self.folder, self.generation, batch_size=batch_size)
        self._written: dict[str, str] = {}  # output path -> the video that wrote it (this run)

    def preprocess(self, clip) -> tuple[dict, dict]:
        """(record, media) of a raw clip, or PredictError naming its path and what is wrong with it."""
        out = self.processor(clip)
        if isinstance(out, Skip):
            raise PredictError(f"{clip.video}: {out.reason}")
        return out, self.processor.media(clip)

    def result(self, clip, rec: dict, media: dict, explanation: str) -> dict:
        found = media['face_mask'].any(axis=1)
        return {
            'name': clip.name, 'file': output_name(clip.video), 'video': os.path.abspath(clip.video),
            'explanation': explanation,
            'labels': extract_labels(explanation),
            'utterances': [{'start': round(float(s), 3), 'end': round(float(e), 3), 'text': t}
                           for s, e, t in media['utterance_texts']],
            'utterance_source': media['utterance_source'],
            'timestamps': [round(float(t), 3) for t in media['timestamps']],
            'faces_found': int(found.sum()), 'face_frames': [bool(f) for f in found],
            # per frame, when the crops of its face tubelet were shown (between it and the next frame when
            # micro_expression.tubelets='apex' spotted the face's peak of motion there)
            'face_times': [[round(float(t), 3) for t in times[mask]]
                           for times, mask in zip(media['face_times'], media['face_mask'])],
            'generation': self.generation.as_dict(), 'params': self.folder.path,
        }

    def explain_clips(self, clips, *, out: str | None = None, on_error=None):
        """Yield one result dict per clip that could be read; ``on_error(clip, message)`` for the others."""
        ready = []
        for clip in clips:
            try:
                ready.append((clip, *self.preprocess(clip)))
            except PredictError as e:
                if on_error is None:
                    raise
                on_error(clip, str(e))
                continue
            if len(ready) == self.explainer.batch_size:
                yield from self._finish(ready, out)
                ready = []
        if ready:
            yield from self._finish(ready, out)

    def _finish(self, ready, out):
        texts = self.explainer.explain([rec for _, rec, _ in ready])
        for (clip, rec, media), text in zip(ready, texts):
            result = self.result(clip, rec, media, text)
            if out:
                result['timeline'] = self.write(result, media, out)
            yield result

    def write(self, result: dict, media: dict, out: str) -> str:
        """FILE.json and FILE.timeline.png in ``out`` (FILE: the video's file name); returns the picture's path."""
        os.makedirs(out, exist_ok=True)
        base = os.path.join(os.path.abspath(out), output_name(result['video']))
        earlier = self._written.get(base)
        if earlier is not None and earlier != result['video']:
            raise PredictError(f"{result['video']} and {earlier} would both write {base}.json: refusing to overwrite")
        self._written[base] = result['video']
        info = video_lib.probe(result['video'])
        frames = [_rgb(j) for j in record_lib.split_jpegs(media['frames_jpeg'], media['frame_offsets'])]
        picture = inside(out, os.path.basename(base) + '.timeline.png')   # never outside --out (safe_paths)
        draw_timeline(picture, frames=frames, timestamps=result['timestamps'], face_boxes=media['face_boxes'],
                      face_found=result['face_frames'], source_size=(info.width, info.height),
                      duration=info.duration, utterances=result['utterances'], labels=result['labels'],
                      explanation=result['explanation'], title=result['name'], face_times=result['face_times'])
        with open(inside(out, os.path.basename(base) + '.json'), 'w') as f:
            json.dump({**result, 'timeline': picture}, f, indent=2, ensure_ascii=False)
        return picture
