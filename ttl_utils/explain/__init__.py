"""Why two pictures match: saliency maps of a similarity, their faithfulness, and the cues it needs.

Holds: `saliency` (attributing `cos(f(A), f(B))` to the pixels of A and of B with Captum, its
exact decomposition, the pairs notebook 03 shows, the maps of `find --explain`),
`faithfulness` (deletion / insertion, infidelity, sensitivity, randomisation, IG's baselines,
the Grad-CAM pitfall), `cues` (how much the partner's margin falls without colour, detail,
or all but the outlines).

May import: `evaluate`, `models`, `data`, and the utilities.
"""
