"""Turn a raw corpus into the pre-tokenized dataset that training streams (run once per corpus).

    python -m microemo_jax.prepare --source folder --raw DIR --out OUT \
        [--tokenizer LLM_TOKENIZER_DIR] [--qformer-tokenizer BERT_TOKENIZER_DIR] [--split-file SPLITS.csv] \
        [--config configs/emer.py:demo] [--workers N] [--shard-size 32] [--config.KEY=VALUE ...]
        [--asr whisper:PATH | pocketsphinx | none]

Per clip: decode and sample frames with their true timestamps, track the speaker's face and cut the
tubelets (or use the dataset's OpenFace crops), 16 kHz mono audio -> Whisper log-mel, utterances
{start, end, text} (timed subtitles > utterance file > ``--asr`` speech recognition on the voiced spans >
voice activity (Silero VAD) > whole clip; ``data/speech/``; the default ASR is pocketsphinx), chat-template
prompt tokenized with the local tokenizers, loss mask on the answer. Clips are processed in shards by ``--workers``
processes; each finished shard is stored under OUT/work/ (arrays in an .npz read without pickle, text in
a JSON sidecar) with a key of what produced it: the settings (tokenizers by content) and each input's
identity (path, size, mtime, its label row). A re-run reuses the shards whose key is unchanged and redoes
the others, saying which and why (stderr and the report). One run at a time per OUT (OUT/.lock names the
holder; a lock whose process is gone is taken over).

Splits are by video: all records of one video (``NAME``, ``NAME#ov``) share a split. ``--split-file``
(``name,split`` with train/validation/test) gives an official split; videos it does not list get the
default, a stable hash of the video name (``data.validation_fraction`` to validation, the rest to train).
Then the records become a TFDS ArrayRecord dataset (OUT/tfds/...), with OUT/prepare_report.json (counts,
the split and how it was made, cut answers, what was redone), OUT/splits.csv (video, split) and
OUT/skipped.jsonl accounting for every input: written, or skipped with its reason.

Without --tokenizer, small tokenizers are trained on the corpus text (OUT/tokenizers/) — right for the
demo corpus; for the paper model pass LLaMA-2's tokenizer and InstructBLIP's ``qformer_tokenizer``.

The work is the library's: ``data/records/build.py`` (the run and its report), ``data/records/clip_processor.py``
(one clip -> one record), ``data/records/work_shards.py`` (shards, their keys, workers), ``data/raw/splits.py``
(the split), ``data/records/tfds_builder.py`` (shard files and the dataset); this module is the command line.
"""
from __future__ import annotations

import json
import os
import sys

from microemo_jax import cli_checks
from microemo_jax.config import ConfigError, config_from_argv
from microemo_jax.data.raw.bench import BENCH_SOURCES
from microemo_jax.data.raw.sources import SOURCES
from microemo_jax.data.records.build import prepare
from microemo_jax.lock import LockHeld


def main(argv=None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not any(a == '--config' or a.startswith('--config=') for a in argv):
        argv = ['--config', os.path.join(os.path.dirname(__file__), '..', 'configs', 'emer.py') + ':demo'] + argv
    parser = cli_checks.Parser(prog='python -m microemo_jax.prepare', description=__doc__.split('\n')[0])
    parser.add_argument('--source', required=True, choices=SOURCES + tuple(BENCH_SOURCES),
                        help='raw layout; the MER-UniBench datasets prepare their test sets (docs/data.md)')
    parser.add_argument('--raw', required=True, type=cli_checks.existing_dir, help='folder of the raw corpus')
    parser.add_argument('--out', required=True, type=cli_checks.out_dir,
                        help='output folder (a re-run redoes only what changed)')
    parser.add_argument('--tokenizer', type=cli_checks.existing_dir, help='Hugging Face tokenizer folder of the LLM')
    parser.add_argument('--qformer-tokenizer', dest='qformer_tokenizer', type=cli_checks.existing_dir,
                        help='BERT tokenizer folder of the image Q-Former (default: TOKENIZER/qformer_tokenizer)')
    parser.add_argument('--workers', type=cli_checks.positive_int, default=max(1, (os.cpu_count() or 2) - 0))
    parser.add_argument('--shard-size', dest='shard_size', type=cli_checks.positive_int, default=32)
    parser.add_argument('--split-file', dest='split_file', type=cli_checks.existing_file,
                        help='CSV with columns name,split (train/validation/test): an official split, by video; '
                             'videos it does not list get the default hashed train/validation split')
    parser.add_argument('--asr', help="speech recognition for clips without subtitles or an utterance file: "
                                      "whisper:PATH (a Hugging Face Whisper folder), pocketsphinx (the default when "
                                      "installed), or none (voice-activity spans only)")
    parser.add_argument('--runner', default='local', choices=('local', 'beam'),
                        help="local: --workers processes on this machine; beam: an Apache Beam pipeline (the extra "
                             "environment `make beam-venv` builds), the runner and its options from --beam-options")
    parser.add_argument('--beam-options', dest='beam_options', default='',
                        help="Beam pipeline options as one string, given with '=' since it starts with dashes: "
                             "--beam-options=\"--runner=FlinkRunner --flink_master=host:8081\" (default: the "
                             "DirectRunner)")
    try:
        cfg, rest = config_from_argv(argv)
    except ConfigError as e:
        parser.error(str(e))
    args = parser.parse_args(rest)
    if not os.path.isdir(args.raw):
        sys.exit(f"error: --raw {args.raw} is not a folder")
    try:
        report = prepare(cfg, args.source, args.raw, args.out, tokenizer=args.tokenizer,
                         qformer_tokenizer=args.qformer_tokenizer, workers=args.workers, shard_size=args.shard_size,
                         split_file=args.split_file, asr=args.asr, runner=args.runner,
                         beam_options=args.beam_options)
    except (ConfigError, LockHeld, FileNotFoundError, ValueError) as e:
        sys.exit(f"error: {e}")
    except OSError as e:
        sys.exit(f"error: {e.filename + ': ' if e.filename else ''}{e.strerror or e}")
    print(json.dumps({k: v for k, v in report.items() if k != 'written_names'}, indent=2, ensure_ascii=False))


if __name__ == '__main__':
    main()
