"""Explain your own video: the emotions a person shows, and why, with a timeline picture.

    python -m microemo_jax.predict --params WORKDIR/params --video PATH [--subtitles PATH] [--out DIR]
        [--max-new-tokens 256] [--temperature 0] [--batch-size 1] [--asr whisper:PATH | pocketsphinx | none]

PATH is a video file or a folder of videos (``.mp4 .avi .mkv .webm .mov``; a ``NAME.srt``/``NAME.vtt``
beside a video is used as its subtitles). Each clip goes through the same preprocessing as ``prepare``
(frames at their true timestamps, the speaker's face tubelets, audio, utterances from the subtitles, else
from speech recognition on the voiced spans (``--asr``; pocketsphinx by default), else from voice activity)
with the tokenizers and shapes stored in the parameter folder, then through
the model. The explanation and its labels are printed; with ``--out`` each clip also gets ``FILE.json``
and ``FILE.timeline.png``, FILE being the video's file name with its extension (``a.mp4.json``), so videos
that share a stem (``a.mp4``, ``a.avi``) never overwrite each other's outputs. A clip that cannot be read is reported with its path and the reason and the
others go on; the exit status is non-zero if any clip failed.
"""
from __future__ import annotations

import sys

from microemo_jax import cli_checks
from microemo_jax.inference.settings import GenerationSettings
from microemo_jax.inference.videos import PredictError, Predictor, find_videos
from microemo_jax.params import ParamsFolderError


def main(argv=None) -> None:
    parser = cli_checks.Parser(prog='python -m microemo_jax.predict', description=__doc__.split('\n')[0])
    parser.add_argument('--params', required=True, type=cli_checks.existing_dir,
                        help='parameter folder written by train (WORKDIR/params)')
    parser.add_argument('--video', required=True, type=cli_checks.existing_path,
                        help='a video file, or a folder of videos')
    parser.add_argument('--subtitles', type=cli_checks.existing_file,
                        help='timed subtitles (.srt/.vtt) of --video (default: NAME.srt beside it)')
    parser.add_argument('--out', type=cli_checks.out_dir,
                        help="write FILE.json and FILE.timeline.png here (FILE: the video's file name, e.g. a.mp4.json)")
    parser.add_argument('--max-new-tokens', dest='max_new_tokens', type=cli_checks.positive_int,
                        default=GenerationSettings.max_new_tokens)
    parser.add_argument('--temperature', type=cli_checks.nonneg_float, default=GenerationSettings.temperature,
                        help='0: greedy decoding')
    parser.add_argument('--top-p', dest='top_p', type=cli_checks.probability, default=GenerationSettings.top_p)
    parser.add_argument('--top-k', dest='top_k', type=cli_checks.nonneg_int, default=GenerationSettings.top_k,
                        help='0: off')
    parser.add_argument('--seed', type=cli_checks.nonneg_int, default=GenerationSettings.seed,
                        help='sampling seed (with --temperature > 0)')
    parser.add_argument('--batch-size', dest='batch_size', type=cli_checks.positive_int, default=1)
    parser.add_argument('--question', choices=('description', 'ov'),
                        help="prompt: the explanation or the OV-label question (default: the config's data.question)")
    parser.add_argument('--asr', help='speech recognition for clips without subtitles: whisper:PATH (a Hugging Face '
                                      'Whisper folder), pocketsphinx (the default when installed), or none')
    args = parser.parse_args(argv)
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
            print(f"{result['file']}: {result['explanation']}")
            print(f"  labels: {', '.join(result['labels']) or '(none)'}"
                  + (f"\n  wrote {result['timeline']}" if args.out else ''), flush=True)
    except (PredictError, ParamsFolderError, FileNotFoundError, ValueError, OSError) as e:
        sys.exit(f'error: {e}')
    if failed:
        sys.exit(f"error: {len(failed)} of {len(clips)} clip(s) could not be explained: {', '.join(failed)}")


if __name__ == '__main__':
    main()
