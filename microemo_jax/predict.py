"""Explain your own video: the emotions a person shows, and why, with a timeline picture.

    python -m microemo_jax.predict --params WORKDIR/params --video PATH [--subtitles PATH] [--out DIR]
        [--max-new-tokens 256] [--temperature 0] [--batch-size 1] [--asr whisper:PATH | pocketsphinx | none]

PATH is a video file or a folder of videos (``.mp4 .avi .mkv .webm .mov``; a ``NAME.srt``/``NAME.vtt``
beside a video is used as its subtitles). Each clip goes through the same preprocessing as ``prepare``
(frames at their true timestamps, the speaker's face tubelets, audio, utterances from the subtitles, else
from speech recognition on the voiced spans (``--asr``; pocketsphinx by default), else from voice activity)
with the tokenizers and shapes stored in the parameter folder, then through
the model. The explanation and its labels are printed; with ``--out`` each clip also gets ``NAME.json``
and ``NAME.timeline.png``. A clip that cannot be read is reported with its path and the reason and the
others go on; the exit status is non-zero if any clip failed.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys

from microemo_jax.data.raw_files import SUBTITLE_EXTENSIONS, VIDEO_EXTENSIONS


class PredictError(RuntimeError):
    """A clip or an argument cannot be used; the message names the path and the problem."""


def find_videos(path: str, subtitles: str | None):
    """[RawClip] for a video file or a folder of videos (sibling .srt/.vtt files become subtitles)."""
    from microemo_jax.data.sources import RawClip
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
    import cv2
    import numpy as np
    return cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)[..., ::-1]


class Predictor:
    """A parameter folder ready to explain raw videos (the preprocessing of ``prepare``, then generation)."""

    def __init__(self, params_dir: str, *, max_new_tokens: int = 256, temperature: float = 0.0, top_p: float = 1.0,
                 top_k: int = 0, seed: int = 0, batch_size: int = 1, question: str | None = None,
                 asr: str | None = None):
        from microemo_jax import params as params_lib
        from microemo_jax.inference import Explainer, GenerationSettings
        from microemo_jax.data.clip_processor import ClipProcessor, settings_from_config
        self.folder = params_lib.load(params_dir)
        cfg = self.folder.cfg
        settings = settings_from_config(cfg, 'folder', os.path.join(self.folder.path, params_lib.TOKENIZER_DIRS['llm']),
                                        os.path.join(self.folder.path, params_lib.TOKENIZER_DIRS['qformer']),
                                        asr=asr)
        if question:
            settings = dataclasses.replace(settings, question=question)
        self.processor = ClipProcessor(settings)
        self.generation = GenerationSettings(max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p,
                                             top_k=top_k, seed=seed)
        self.explainer = Explainer(self.folder, self.generation, batch_size=batch_size)

    def preprocess(self, clip) -> tuple[dict, dict]:
        """(record, media) of a raw clip, or PredictError naming its path and what is wrong with it."""
        from microemo_jax.data.sources import Skip
        out = self.processor(clip)
        if isinstance(out, Skip):
            raise PredictError(f"{clip.video}: {out.reason}")
        return out, self.processor.media(clip)

    def result(self, clip, rec: dict, media: dict, explanation: str) -> dict:
        from microemo_jax.metrics import extract_labels
        found = media['face_mask'].any(axis=1)
        return {
            'name': clip.name, 'video': os.path.abspath(clip.video), 'explanation': explanation,
            'labels': extract_labels(explanation),
            'utterances': [{'start': round(float(s), 3), 'end': round(float(e), 3), 'text': t}
                           for s, e, t in media['utterance_texts']],
            'utterance_source': media['utterance_source'],
            'timestamps': [round(float(t), 3) for t in media['timestamps']],
            'faces_found': int(found.sum()), 'face_frames': [bool(f) for f in found],
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
        """NAME.json and NAME.timeline.png in ``out``; returns the picture's path."""
        from microemo_jax.data import record as record_lib
        from microemo_jax.data import video as video_lib
        from microemo_jax.plots import draw_timeline
        os.makedirs(out, exist_ok=True)
        info = video_lib.probe(result['video'])
        frames = [_rgb(j) for j in record_lib.split_jpegs(media['frames_jpeg'], media['frame_offsets'])]
        picture = os.path.join(out, f"{result['name']}.timeline.png")
        draw_timeline(picture, frames=frames, timestamps=result['timestamps'], face_boxes=media['face_boxes'],
                      face_found=result['face_frames'], source_size=(info.width, info.height),
                      duration=info.duration, utterances=result['utterances'], labels=result['labels'],
                      explanation=result['explanation'], title=result['name'])
        with open(os.path.join(out, f"{result['name']}.json"), 'w') as f:
            json.dump({**result, 'timeline': picture}, f, indent=2, ensure_ascii=False)
        return picture


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog='python -m microemo_jax.predict', description=__doc__.split('\n')[0])
    parser.add_argument('--params', required=True, help='parameter folder written by train (WORKDIR/params)')
    parser.add_argument('--video', required=True, help='a video file, or a folder of videos')
    parser.add_argument('--subtitles', help='timed subtitles (.srt/.vtt) of --video (default: NAME.srt beside it)')
    parser.add_argument('--out', help='write NAME.json and NAME.timeline.png here')
    parser.add_argument('--max-new-tokens', dest='max_new_tokens', type=int, default=256)
    parser.add_argument('--temperature', type=float, default=0.0, help='0: greedy decoding')
    parser.add_argument('--top-p', dest='top_p', type=float, default=1.0)
    parser.add_argument('--top-k', dest='top_k', type=int, default=0)
    parser.add_argument('--seed', type=int, default=0, help='sampling seed (with --temperature > 0)')
    parser.add_argument('--batch-size', dest='batch_size', type=int, default=1)
    parser.add_argument('--question', choices=('description', 'ov'),
                        help="prompt: the explanation or the OV-label question (default: the config's data.question)")
    parser.add_argument('--asr', help='speech recognition for clips without subtitles: whisper:PATH (a Hugging Face '
                                      'Whisper folder), pocketsphinx (the default when installed), or none')
    args = parser.parse_args(argv)
    from microemo_jax.params import ParamsFolderError
    failed = []

    def report(clip, message):
        failed.append(clip.name)
        print(f'error: {message}', file=sys.stderr, flush=True)

    try:
        clips = find_videos(args.video, args.subtitles)
        predictor = Predictor(args.params, max_new_tokens=args.max_new_tokens, temperature=args.temperature,
                              top_p=args.top_p, top_k=args.top_k, seed=args.seed, batch_size=args.batch_size,
                              question=args.question, asr=args.asr)
        for result in predictor.explain_clips(clips, out=args.out, on_error=report):
            print(f"{result['name']}: {result['explanation']}")
            print(f"  labels: {', '.join(result['labels']) or '(none)'}"
                  + (f"\n  wrote {result['timeline']}" if args.out else ''), flush=True)
    except (PredictError, ParamsFolderError, FileNotFoundError, ValueError, OSError) as e:
        sys.exit(f'error: {e}')
    if failed:
        sys.exit(f"error: {len(failed)} of {len(clips)} clip(s) could not be explained: {', '.join(failed)}")


if __name__ == '__main__':
    main()
