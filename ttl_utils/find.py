"""Find a look-alike for any picture: rank a gallery of images by cosine similarity to a query, and say why.

The engine of `python -m ttl_utils find` and notebook 07. The gallery is any folder of
images (searched recursively) or a dataset in either layout (`data.gallery`). Its
embeddings are kept under `artifacts/gallery/`, one file a model, one row per distinct
file content (`evaluate.embeddings.gallery_embeddings`): adding or changing a picture
embeds only that picture again. Files that cannot be read are skipped and listed in one
warning.

>>> gallery = Gallery.from_folder("photos/")                                   # doctest: +SKIP
>>> kept, vectors = gallery_embeddings(embedder, preprocessing, gallery)       # doctest: +SKIP
>>> matches = find_lookalikes(embedder, preprocessing, ["me.jpg"], kept, vectors, top=5)  # doctest: +SKIP
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .config import Profile
from .data.folders import resolve_pairs
from .data.gallery import Gallery
from .data.inputs import MIN_SIDE, why_unreadable
from .data.pairs import open_rgb
from .digests import source_digests
from .errors import DatasetError, InputError
from .evaluate.embeddings import embed_queries
from .evaluate.ranking import search
from .explain.saliency import explain_matches
from .models.catalog import parse_model
from .models.checkpoints import checkpoint_extra, load_model
from .models.embedder import Embedder
from .models.preprocessing import Preprocessing, denormalise
from .train.recipes import SaliencySettings

__all__ = ["Match", "choose_model", "find_lookalikes", "lookalike_picker", "lookalike_rows", "own_files"]

log = logging.getLogger(__name__)


@dataclass
class Match:
    """One found look-alike: its place, its gallery index and label, its cosine similarity."""

    rank: int
    index: int
    label: str
    score: float


def find_lookalikes(embedder: Embedder, preprocessing: Preprocessing, queries: Sequence, gallery: Gallery,
                    vectors: torch.Tensor, top: int = 5, penalty: torch.Tensor | None = None,
                    leave_out: Sequence[set[int]] | None = None) -> list[list[Match]]:
    """Return the `top` look-alikes in `gallery` (embedded as `vectors`) of each query: a path or a PIL image.

    A path is checked by the one picture rule (`data.inputs.why_unreadable`; a bad one raises
    `InputError` naming it) and decoded exactly as a gallery picture is (reduced to the model's
    resize), so a query that is also in the gallery embeds as its gallery copy does. With `penalty`
    (`evaluate.hubs.hubness` of the gallery against a bank) they are ranked by CSLS. `leave_out[q]`
    holds gallery rows never returned for query `q` (its own file)."""
    images = []
    for query in queries:
        if isinstance(query, (str, Path)):
            reason = why_unreadable(query, MIN_SIDE)
            if reason:
                raise InputError(f"{query}: {reason}.")
            query = open_rgb(query, min_side=preprocessing.resize)
        images.append(query)
    skip = [set(rows) for rows in leave_out] if leave_out is not None else [set() for _ in images]
    scores, indices = search(embed_queries(embedder, preprocessing, images), vectors,
                             top + max((len(rows) for rows in skip), default=0), penalty)
    found = []
    for row_s, row_i, rows in zip(scores, indices, skip):
        kept = [(float(s), int(i)) for s, i in zip(row_s, row_i) if int(i) not in rows][:top]
        found.append([Match(rank + 1, i, gallery.labels[i], s) for rank, (s, i) in enumerate(kept)])
    return found


def own_files(queries: Sequence[Path], gallery: Gallery) -> list[set[int]]:
    """Return, for each query file, the gallery rows holding the same content (its own file, or a copy)."""
    wanted = source_digests(list(queries), desc="Reading the queries")
    where: dict[str, set[int]] = {}
    for row, digest in enumerate(source_digests(list(gallery.images), desc="Reading the gallery")):
        where.setdefault(digest, set()).add(row)
    return [where.get(digest, set()) for digest in wanted]


def choose_model(profile: Profile, spec: str | None = None, data: str | Path | None = None
                 ) -> tuple[Embedder, Preprocessing, str, dict]:
    """Return `(embedder, preprocessing, description, extra)`: the MODEL `spec` (a checkpoint or backbone,
    as in `compare`), else the profile's chosen fine-tuned model if it was trained on the default
    data, else the profile's backbone zero-shot; the description says which and why, `extra` is what
    a checkpoint records (its hub bank among it; empty for a backbone)."""
    if spec:
        checkpoint = parse_model(spec).checkpoint
        embedder, preprocessing = load_model(spec, profile)
        return (embedder, preprocessing, f"{spec} ({embedder.describe()['weights']})",
                checkpoint_extra(checkpoint) if checkpoint is not None else {})
    try:
        pairs = resolve_pairs(data, profile)
    except DatasetError as err:  # the default data is only consulted for its model: fall back, say why
        embedder, preprocessing = load_model(profile.backbone, profile)
        why = str(err).splitlines()[0]
        return embedder, preprocessing, f"{profile.backbone} zero-shot (the default data cannot be read: {why})", {}
    from .pipeline import chosen_if_trained  # the training code is loaded only to look up the cached default

    checkpoint = chosen_if_trained(profile, pairs)
    if checkpoint is not None:
        embedder, preprocessing = load_model(str(checkpoint), profile)
        return (embedder, preprocessing, f"the chosen fine-tuned model of {pairs.name} ({checkpoint})",
                checkpoint_extra(checkpoint))
    embedder, preprocessing = load_model(profile.backbone, profile)
    return embedder, preprocessing, (f"{profile.backbone} zero-shot (no fine-tuned model of {pairs.name} is cached: "
                                     "run notebook 05, or pass --model)"), {}


def lookalike_rows(embedder: Embedder, preprocessing: Preprocessing, queries: Sequence[tuple[str, object]],
                   gallery: Gallery, found: list[list[Match]], explain: SaliencySettings | None = None,
                   partners: Sequence[str | None] | None = None) -> list[dict]:
    """Return the rows `present.pictures.lookalike_grid` draws: each `(title, image)` query with its
    matches captioned by rank, label and cosine, every picture as the model sees it (its resize
    and centre crop), with `explain` the saliency maps of each similarity, and with `partners`
    (one gallery label or None a query) the true partner to mark."""
    def view(image) -> np.ndarray:
        return denormalise(preprocessing(image.convert("RGB")), preprocessing.mean, preprocessing.std)

    rows = []
    partners = list(partners) if partners is not None else [None] * len(queries)
    for (title, image), matches, partner in zip(queries, found, partners):
        row = {"query": view(image), "title": title, "labels": [m.label for m in matches], "partner": partner,
               "matches": [(view(gallery.image(m.index)), f"{m.rank}. {m.label}\ncosine {m.score:.3f}")
                           for m in matches]}
        if explain is not None:
            row["maps"] = [tuple(m.numpy() for m in maps) for maps in
                           explain_matches(embedder, preprocessing, image, gallery, matches, explain.method,
                                           explain.baseline, explain.ig_steps)]
        rows.append(row)
    return rows


def _uploaded_image(content: bytes, name: str, folder: Path):
    """Return an uploaded picture, checked like a query file (`data.inputs.read_image`)."""
    path = folder / Path(name).name
    path.write_bytes(content)
    reason = why_unreadable(path, MIN_SIDE)
    if reason:
        raise InputError(f"{Path(name).name}: {reason}.")  # named as the user knows it, not by the temporary copy
    return open_rgb(path)


def lookalike_picker(embedder: Embedder, preprocessing: Preprocessing, gallery: Gallery, vectors: torch.Tensor,
                     top: int = 5, explain: SaliencySettings | None = None):
    """Return an ipywidgets upload button: each picture uploaded is shown with its `top` look-alikes
    (and with `explain`, why), or with one line saying what is wrong with it."""
    import tempfile

    import ipywidgets as widgets
    import matplotlib.pyplot as plt
    from IPython.display import display

    from .present.pictures import lookalike_grid

    upload = widgets.FileUpload(accept="image/*", multiple=False, description="Your picture")
    output = widgets.Output()

    def show(change) -> None:
        output.clear_output()
        with output, tempfile.TemporaryDirectory() as folder:
            for item in change["new"]:
                try:
                    image = _uploaded_image(bytes(item["content"]), item["name"], Path(folder))
                except InputError as err:
                    print(f"error: {err}")
                    continue
                found = find_lookalikes(embedder, preprocessing, [image], gallery, vectors, top)
                rows = lookalike_rows(embedder, preprocessing, [(item["name"], image)], gallery, found, explain)
                display(lookalike_grid(rows, signed=explain is not None and explain.method != "gradcam"))
                plt.close("all")

    upload.observe(show, names="value")
    return widgets.VBox([upload, output])
