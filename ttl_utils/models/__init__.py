"""Models and how they run: backbones, the embedder, checkpoints, preprocessing, the inference engine.

Holds: `backbones` (pretrained networks by name, their stages `layer1` .. `layer4`),
`embedder` (pooled stage features, a projection head, L2-normalised), `checkpoints` (the
one checkpoint format, and `load_model`: the one way to name a model), `preprocessing`
(the evaluation transform, and the cues a test takes away), `engine` (frozen forward
passes: ONNX Runtime on CPU, torch elsewhere).

May import: `data`, and the utilities.
"""
