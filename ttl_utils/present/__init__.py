"""What people look at: figures, the findings behind them, and the talk.

Holds: `plots` (one theme, `save_fig`, charts of ranks, curves and statistics), `pictures`
(pairs, views, saliency overlays, look-alikes, text-free photo rows), `findings` (each notebook's
headline in `results.json`, the arrays behind it in `results-series.json`), `pages` (the talk's
pages in the study's order, drawn from those), `diagrams` (the method pictures) and `slides`
(`make slides`: the talk as PDF and PowerPoint).

May import: `evaluate.metrics` and `evaluate.report` (numbers, no torch), and `config`,
`storage`. Nothing here imports torch: drawing needs no model.
"""
