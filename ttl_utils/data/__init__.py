"""Pairs of pictures and what is known about them, before any model.

Holds: `pairs` (the pair set, opening images as RGB), `folders` (loading and checking a
folder of pairs in either layout, the data a run uses), `inputs` (pictures users hand in,
each problem in one line), `gallery` (pictures to search), `demo` (the procedurally drawn
pairs), `pool` (pictures without pair labels, and their candidate lists), `splits` (saved
train / val / test splits), `download` (the official release),
`faces` (face and generic pairs), `explore` (image statistics, near-duplicates), `loading`
(images decoded in threads beside the inference engine).

May import: the utilities (`config`, `runtime`, `progress`, `storage`, `digests`, `cache`).
"""
