"""Find a look-alike for any picture: rank a gallery of images by cosine similarity to a query.

The engine of `python -m ttl_utils find` and notebook 07. The gallery is any folder of
images (searched recursively) or a dataset in either layout (one side or both). Its
embeddings are kept under `artifacts/gallery/`, one file a model, one row per distinct
file content: adding or changing a picture embeds only that picture again. Files that
cannot be read are skipped and listed in one warning.

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
import torch.nn.functional as F

from .compare import load_model
from .config import Profile
from .data import load_pairs, resolve_pairs
from .digests import source_digests
from .engine import frozen_embeddings
from .inputs import MIN_SIDE, InputError, image_files, read_image, why_unreadable
from .models import Embedder
from .pairs import DatasetError, ImageSource, PairSet, open_rgb
from .recipes import SaliencySettings
from .results import chosen_if_trained
from .retrieval import embed
from .runtime import model_fingerprint
from .storage import cache_path, load_torch, save_torch
from .transforms import Preprocessing

__all__ = ["Gallery", "Match", "choose_model", "embed_queries", "explain_matches", "find_lookalikes",
           "gallery_embeddings", "lookalike_picker", "lookalike_rows", "partner_ranks", "search"]

log = logging.getLogger(__name__)

SIDES = ("left", "right", "both")


@dataclass
class Gallery:
    """Pictures to search: `labels[i]` names `images[i]` (a path, or an array for the demo data)."""

    name: str
    labels: list[str]
    images: list[ImageSource]

    def __len__(self) -> int:
        return len(self.images)

    def image(self, i: int):
        """Return picture `i` as a PIL image."""
        return open_rgb(self.images[i])

    def subset(self, indices: Sequence[int]) -> Gallery:
        return Gallery(self.name, [self.labels[i] for i in indices], [self.images[i] for i in indices])

    @classmethod
    def from_pairs(cls, pairs: PairSet, side: str = "right") -> Gallery:
        """Return one side of a pair set (or both) as a gallery, labelled `side/ID`."""
        if side not in SIDES:
            raise InputError(f"--side {side}: choose one of {', '.join(SIDES)}.")
        sides = ("left", "right") if side == "both" else (side,)
        labels = [f"{s}/{pair_id}" for s in sides for pair_id in pairs.ids]
        images = [image for s in sides for image in getattr(pairs, s)]
        return cls(f"{pairs.name} ({side})", labels, images)

    @classmethod
    def from_folder(cls, root: str | Path, side: str = "right") -> Gallery:
        """Return the gallery at `root`: a dataset (`left/` and `right/`, or `pairs.csv`) by `side`,
        else every image under it."""
        root = Path(root)
        if not root.is_dir():
            raise InputError(f"--gallery {root}: no such folder.")
        if ((root / "left").is_dir() and (root / "right").is_dir()) or (root / "pairs.csv").is_file():
            return cls.from_pairs(load_pairs(root), side)
        files = image_files([root], "gallery image")
        return cls(str(root), [str(p.relative_to(root)) for p in files], list(files))


@dataclass
class Match:
    """One found look-alike: its place, its gallery index and label, its cosine similarity."""

    rank: int
    index: int
    label: str
    score: float


def _digests(images: list[ImageSource]) -> list[str]:
    """Return a digest of each picture's content (`digests`: remembered while a file's size and time
    are unchanged); "" for a file that cannot be read at all (gone, no permission): it is then
    reported as unreadable."""
    try:
        return source_digests(images, desc="Reading the gallery")
    except OSError:
        found = []
        for image in images:
            try:
                found += source_digests([image])
            except OSError:
                found.append("")
        return found


def _unreadable(gallery: Gallery, indices: list[int], digests: list[str]) -> dict[int, str]:
    reasons = {}
    for i in indices:
        if isinstance(gallery.images[i], np.ndarray):
            continue
        reason = why_unreadable(gallery.images[i]) if digests[i] else "cannot be read"
        if reason:
            reasons[i] = reason
    return reasons


def gallery_embeddings(embedder: Embedder, preprocessing: Preprocessing, gallery: Gallery, device: str = "cpu",
                       batch_size: int = 32, num_workers: int | None = None) -> tuple[Gallery, torch.Tensor]:
    """Return `(readable gallery, its unit-length embeddings)`, embedding only pictures whose content is
    not in this model's cache yet; unreadable files are skipped and listed in one warning."""
    path = cache_path("gallery", model=model_fingerprint(embedder), describe=embedder.describe(),
                      preprocessing=preprocessing.to_dict())
    store = load_torch(path) if path.is_file() else {"digests": [], "embeddings": torch.empty(0, 0)}
    known = {d: i for i, d in enumerate(store["digests"])}
    digests = _digests(list(gallery.images))
    todo = [i for i, d in enumerate(digests) if d not in known]
    bad = _unreadable(gallery, todo, digests)
    if bad:
        listed = "; ".join(f"{gallery.labels[i]} ({why})" for i, why in list(bad.items())[:10])
        log.warning("Skipped %d unreadable gallery file(s): %s%s", len(bad), listed, " ..." if len(bad) > 10 else "")
    todo = [i for i in todo if i not in bad and digests[i] not in known]
    fresh = list(dict.fromkeys(digests[i] for i in todo))  # a picture present twice is embedded once
    if fresh:
        first: dict[str, int] = {}
        for i in todo:
            first.setdefault(digests[i], i)
        vectors = embed(embedder, [gallery.images[first[d]] for d in fresh], preprocessing, batch_size=batch_size,
                        device=device, num_workers=num_workers, desc="Embedding the gallery")
        old = store["embeddings"]
        store = {"digests": store["digests"] + fresh,
                 "embeddings": torch.cat([old, vectors]) if len(old) else vectors}
        save_torch(store, path)
        known = {d: i for i, d in enumerate(store["digests"])}
    log.info("Gallery %s: %d pictures, %d embedded now, %d from the cache (%s)", gallery.name,
             len(gallery) - len(bad), len(fresh), len(gallery) - len(bad) - len(fresh), path)
    kept = [i for i in range(len(gallery)) if i not in bad]
    if not kept:
        raise InputError(f"--gallery {gallery.name}: no readable pictures.")
    rows = torch.as_tensor([known[digests[i]] for i in kept], dtype=torch.long)
    return gallery.subset(kept), F.normalize(store["embeddings"][rows].float(), dim=1)


def search(queries: torch.Tensor, gallery: torch.Tensor, top: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Return `(scores, indices)`, each `Q x top`: the `top` most similar gallery rows per query, by cosine.

    The gallery's rows must be unit length already (as `gallery_embeddings` returns them): a large
    gallery is not copied for every query."""
    top = min(top, len(gallery))
    scores = F.normalize(queries.float(), dim=1) @ gallery.T
    return scores.topk(top, dim=1)


@torch.no_grad()
def embed_queries(embedder: Embedder, preprocessing: Preprocessing, images: Sequence, batch_size: int = 32
                  ) -> torch.Tensor:
    """Return the unit-length embeddings of query pictures (PIL images), `batch_size` at a time, on
    the device the embedder is on."""
    embedder = embedder.eval()
    forward = frozen_embeddings(embedder, next(embedder.parameters()).device)  # the inference engine on CPU
    out = [forward(torch.stack([preprocessing(image) for image in images[start:start + batch_size]]))
           for start in range(0, len(images), batch_size)]
    return F.normalize(torch.cat(out).float().cpu(), dim=1)


def find_lookalikes(embedder: Embedder, preprocessing: Preprocessing, queries: Sequence, gallery: Gallery,
                    vectors: torch.Tensor, top: int = 5) -> list[list[Match]]:
    """Return the `top` look-alikes in `gallery` (embedded as `vectors`) of each query: a path, checked
    with `inputs.read_image` (a bad one raises `InputError` naming it), or a PIL image."""
    images = [read_image(q) if isinstance(q, (str, Path)) else q for q in queries]
    scores, indices = search(embed_queries(embedder, preprocessing, images), vectors, top)
    return [[Match(rank + 1, int(i), gallery.labels[int(i)], float(s)) for rank, (s, i) in enumerate(zip(row_s, row_i))]
            for row_s, row_i in zip(scores, indices)]


def choose_model(profile: Profile, spec: str | None = None, data: str | Path | None = None
                 ) -> tuple[Embedder, Preprocessing, str]:
    """Return `(embedder, preprocessing, description)`: the MODEL `spec` (a checkpoint or backbone, as
    in `compare`), else the profile's chosen fine-tuned model if it was trained on the default data,
    else the profile's backbone zero-shot; the description says which and why."""
    if spec:
        embedder, preprocessing = load_model(spec, profile)
        return embedder, preprocessing, f"{spec} ({embedder.describe()['weights']})"
    try:
        pairs = resolve_pairs(data, profile)
    except DatasetError as err:  # the default data is only consulted for its model: fall back, say why
        embedder, preprocessing = load_model(profile.backbone, profile)
        why = str(err).splitlines()[0]
        return embedder, preprocessing, f"{profile.backbone} zero-shot (the default data cannot be read: {why})"
    checkpoint = chosen_if_trained(profile, pairs)
    if checkpoint is not None:
        embedder, preprocessing = load_model(str(checkpoint), profile)
        return embedder, preprocessing, f"the chosen fine-tuned model of {pairs.name} ({checkpoint})"
    embedder, preprocessing = load_model(profile.backbone, profile)
    return embedder, preprocessing, (f"{profile.backbone} zero-shot (no fine-tuned model of {pairs.name} is cached: "
                                     "run notebook 05, or pass --checkpoint)")


def explain_matches(embedder: Embedder, preprocessing: Preprocessing, query, gallery: Gallery, matches: list[Match],
                    method: str = "gradcam", baseline: str = "blur", ig_steps: int = 32
                    ) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Return, for each match, the saliency of the similarity on the query (match held fixed) and on
    the match (query held fixed), by `saliency.explain_pair`'s `method`."""
    from .saliency import explain_pair

    device = next(embedder.parameters()).device  # where the gallery's embedding left it
    x_query = preprocessing.batch(query).to(device)
    maps = []
    for match in matches:
        x_match = preprocessing.batch(gallery.image(match.index)).to(device)
        explained = explain_pair(embedder, x_query, x_match, preprocessing, methods=(method,), baseline=baseline,
                                 ig_steps=ig_steps)[method]
        maps.append((explained.map_a.cpu(), explained.map_b.cpu()))
    return maps


def lookalike_rows(embedder: Embedder, preprocessing: Preprocessing, queries: Sequence[tuple[str, object]],
                   gallery: Gallery, found: list[list[Match]], explain: SaliencySettings | None = None,
                   partners: Sequence[str | None] | None = None) -> list[dict]:
    """Return the rows `plots.lookalike_grid` draws: each `(title, image)` query with its matches
    captioned by rank, label and cosine, with `explain` the saliency maps of each similarity, and
    with `partners` (one gallery label or None a query) the true partner to mark."""
    rows = []
    partners = list(partners) if partners is not None else [None] * len(queries)
    for (title, image), matches, partner in zip(queries, found, partners):
        row = {"query": image, "title": title, "labels": [m.label for m in matches], "partner": partner,
               "matches": [(gallery.image(m.index), f"{m.rank}. {m.label}\ncosine {m.score:.3f}") for m in matches]}
        if explain is not None:
            row["maps"] = explain_matches(embedder, preprocessing, image, gallery, matches, explain.method,
                                          explain.baseline, explain.ig_steps)
        rows.append(row)
    return rows


def partner_ranks(queries: torch.Tensor, partners: Sequence[str], gallery: Gallery, vectors: torch.Tensor) -> np.ndarray:
    """Return where each query's true partner (a gallery label) lands among all gallery pictures
    (1: first; ties count against it)."""
    where = {label: i for i, label in enumerate(gallery.labels)}
    missing = [label for label in partners if label not in where]
    if missing:
        raise InputError(f"Partners not in the gallery {gallery.name}: {', '.join(missing[:5])}.")
    scores = F.normalize(queries.float(), dim=1) @ F.normalize(vectors.float(), dim=1).T
    own = scores[torch.arange(len(partners)), torch.as_tensor([where[label] for label in partners])]
    return ((scores >= own[:, None] - 1e-6).sum(dim=1)).numpy().astype(np.int64)


def _uploaded_image(content: bytes, name: str, folder: Path):
    """Return an uploaded picture, checked like a query file (`inputs.read_image`)."""
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

    from .plots import lookalike_grid

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
                display(lookalike_grid(rows, preprocessing, signed=explain is not None and explain.method != "gradcam"))
                plt.close("all")

    upload.observe(show, names="value")
    return widgets.VBox([upload, output])
