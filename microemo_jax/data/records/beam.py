"""``prepare --runner beam``: the per-shard work (decode, faces, audio, utterances, tokenize, write the work
shard) as an Apache Beam pipeline, for corpora one machine cannot prepare in a day.

Each pending work shard (``data/work_shards.run_shards``: the settings and each input's identity key a shard,
finished ones are reused) is one element; a ``DoFn`` builds one ``ClipProcessor`` per Beam worker (``setup``)
and runs ``work_shards.process_shard`` on it, which writes the shard into the work folder. The main process
then reads the shards' metadata back and assembles the TFDS ArrayRecord dataset exactly as after the
multiprocess path, so both runners give the same records. The work folder, ``--raw`` and ``--out`` must be
visible to every worker (a shared file system for Flink/Spark clusters; see the README for Dataflow).

Apache Beam is an extra that cannot share requirements.lock (it needs numpy<2.5, protobuf<7, pyarrow<26,
python-dateutil<3): ``make beam-venv`` builds ``.venv-beam`` from requirements-beam.lock.
"""
from __future__ import annotations

import shlex


def _import_beam():
    try:
        import apache_beam as beam  # optional dependency (the beam extra)
        from apache_beam.options.pipeline_options import PipelineOptions  # optional dependency (the beam extra)
    except ImportError as e:
        raise ImportError("--runner beam needs apache-beam, which cannot share requirements.lock: build its "
                          "environment with `make beam-venv` and run prepare with .venv-beam/bin/python") from e
    return beam, PipelineOptions


def run_jobs(jobs: list, settings, beam_options: str = '') -> None:
    """Run ``work_shards.process_shard`` over ``jobs`` on Beam (default runner: DirectRunner); blocks until done."""
    beam, PipelineOptions = _import_beam()

    class ProcessShard(beam.DoFn):
        def __init__(self, settings):
            self.settings = settings

        def setup(self):
            from microemo_jax.data.records import work_shards  # on the worker, as Beam unpickles the DoFn there
            work_shards.init_worker(self.settings)

        def process(self, job):
            from microemo_jax.data.records import work_shards  # on the worker, as Beam unpickles the DoFn there
            index, n, _ = work_shards.process_shard(job)
            yield index, n

    options = PipelineOptions(shlex.split(beam_options or ''))
    with beam.Pipeline(options=options) as p:
        _ = (p | 'Shards' >> beam.Create(jobs, reshuffle=True)
               | 'Prepare' >> beam.ParDo(ProcessShard(settings)))
