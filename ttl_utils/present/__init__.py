"""What people look at: figures, the findings behind them, and the talk.

Holds: `plots` (one theme, `save_fig`, charts of ranks, curves and statistics), `pictures`
(pairs, views, saliency overlays, look-alikes), `findings` (each notebook's headline in
`results.json`), `slides` (`make slides`: the talk as PDF from the findings and figures).

May import: `evaluate.metrics` and `evaluate.report` (numbers, no torch), and `config`,
`storage`. Nothing here imports torch: drawing needs no model.
"""
