"""Explaining clips with a parameter folder: what ``predict``, ``evaluate``, ``serve`` and the demo report share.

Three names, three levels: ``generate`` (one module up) turns token ids into token ids with a KV cache;
``inference.explainer`` turns prepared records into explanations (prompt, generate, decode);
``inference.videos`` turns raw videos into results (prepare's preprocessing, the explainer, labels, timeline);
``inference.scoring`` turns a prepared split into per-sample labels and scores. ``inference.settings`` holds
the one set of generation defaults.
"""
