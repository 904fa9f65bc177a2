"""Judging models: embeddings, ranks, metrics with intervals, reports and comparisons.

Holds: `embeddings` (every forward pass without gradients over pictures: pair sets, a
gallery, queries, pictures with a cue taken away; their cache keys), `ranking` (the one
tie-aware ranking kernel and what is built on it), `metrics` (metrics on ranks, bootstrap
intervals, `Ranked`: one model's ranks both ways; numpy only), `report` (tables, the one
interval formatter, paired gains, verdicts, sentences; no torch), `compare` (one model's
report, several models on the same pairs, a folder's hub bank), `hubs` (pictures near
everyone, and hub correction by CSLS against a bank of training pictures), `ensemble` (several
models' embeddings of the same pictures joined, so that a cosine is the mean of theirs).

May import: `models`, `data`, and the utilities. `metrics` and `report` import neither torch
nor ONNX Runtime.
"""
