"""Models and how they run: backbones, the embedder, checkpoints, preprocessing, the inference engine.

Holds: `catalog` (the backbones there are, their stages `layer1` .. `layer4` and weights, and
what a MODEL name means; no torch), `backbones` (pretrained networks by name),
`embedder` (pooled stage features, a projection head, L2-normalised), `checkpoints` (the
one checkpoint format, and `load_model`: the one way to name a model), `preprocessing`
(the evaluation transform, and the cues a test takes away), `engine` (frozen forward
passes: ONNX Runtime on CPU, torch elsewhere).

May import: `data`, and the utilities.
"""
