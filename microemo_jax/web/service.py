"""The model behind the web page: checks each upload, explains one clip at a time with ``predict``'s
preprocessing and generation, and keeps each request's outputs (timeline picture, JSON) for a while."""
from __future__ import annotations

import glob
import os
import shutil
import tempfile
import threading
import time

from microemo_jax.inference.videos import PredictError
from microemo_jax.web import model_facts, upload
from microemo_jax.web.upload import Limits, ServeError, readable

KEEP_OUTPUTS_S = 3600  # request folders (timeline pictures, JSON) older than this are removed


class Service:
    """The model behind the page: checks uploads, explains one clip at a time, keeps its outputs a while."""

    def __init__(self, predictor, *, limits: Limits = Limits(), scores: str | None = None, workdir: str | None = None):
        self.predictor = predictor
        self.limits = limits
        folder = predictor.folder
        self.info = folder.info
        self.summary = model_facts.load_summary(model_facts.find_scores(folder.path, scores))
        self.summary = model_facts.same_tokenizers(self.summary, folder.tokenizers, explicit=bool(scores))
        self.held_out = {c.name: c for c in model_facts.held_out_clips(self.info, self.summary)}
        self.require_faces = limits.require_faces or bool(folder.cfg.data.get('require_faces'))
        self.workdir = workdir or tempfile.mkdtemp(prefix='microemo-serve-')
        self._lock = threading.Lock()  # the queue runs one request at a time; this guards direct callers too
        self.model_markdown = model_facts.model_markdown(folder.path, folder.cfg, self.info, self.summary,
                                                         predictor.generation.as_dict(), self.limits)

    def close(self) -> None:
        shutil.rmtree(self.workdir, ignore_errors=True)

    def check(self, video, subtitles):
        """A RawClip for an upload, or ServeError saying what is wrong with it (by the uploaded file's name)."""
        return upload.check(video, subtitles, self.limits)

    # -- work --------------------------------------------------------------------------------------------
    def explain(self, video, subtitles=None, progress=None) -> dict:
        """The result dict of ``predict --out`` for one upload (``progress(fraction, text)`` if given)."""
        say = progress or (lambda fraction, text: None)
        say(0.02, 'Checking the upload')
        clip = self.check(video, subtitles)
        with self._lock:
            t0 = time.time()
            say(0.1, 'Reading the video: frames, faces, audio, utterances')
            try:
                rec, media = self.predictor.preprocess(clip)
            except PredictError as e:
                raise ServeError(readable(str(e), clip.video, clip.subtitle_file)) from None
            if self.require_faces and not media['face_mask'].any():
                raise ServeError(f'{os.path.basename(clip.video)}: no face found in any sampled frame; this server '
                                 f'needs a visible face (upload a clip where the speaker faces the camera).')
            say(0.4, 'Generating the explanation')
            text, = self.predictor.explainer.explain([rec])
            result = self.predictor.result(clip, rec, media, text)
            say(0.9, 'Drawing the timeline')
            result['timeline'] = self.predictor.write(result, media, self._request_dir())
            result['seconds'] = round(time.time() - t0, 2)
        return result

    def _request_dir(self) -> str:
        now = time.time()
        for old in glob.glob(os.path.join(glob.escape(self.workdir), 'req-*')):
            try:
                if now - os.path.getmtime(old) > KEEP_OUTPUTS_S:
                    shutil.rmtree(old, ignore_errors=True)
            except OSError:
                pass
        os.makedirs(self.workdir, exist_ok=True)
        return tempfile.mkdtemp(prefix='req-', dir=self.workdir)
