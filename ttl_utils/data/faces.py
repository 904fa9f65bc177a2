"""Finding faces, to split TTL into face pairs and generic look-alikes.

Uses OpenCV's frontal-face Haar cascade, which ships inside `opencv-python-headless`
(before 5.0), so it works offline. It misses profiles, cartoons and small faces and
sometimes fires on textures: its counts are an estimate, compared in notebook 01 with
the official `no_faces` mask where that is present.

>>> from PIL import Image
>>> count_faces(Image.new("RGB", (64, 64)))
0
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import pandas as pd
import torch
from PIL import Image

from ..cache import cached
from ..progress import progress
from .pairs import PairSet

__all__ = ["count_faces", "face_table", "face_counts", "split_by_faces", "agreement_table", "cached_face_table",
           "generic_subset"]


# what the counts depend on: a change here makes `cached_face_table` count again
_DETECTOR = {"cascade": "haarcascade_frontalface_default", "scale": 1.1, "neighbours": 5, "min_size": 24,
             "equalised": True}


@lru_cache(maxsize=1)
def _cascade():
    import cv2

    path = cv2.data.haarcascades + "haarcascade_frontalface_default.xml"
    cascade = cv2.CascadeClassifier(path)
    if cascade.empty():
        raise RuntimeError(f"OpenCV's face cascade is missing at {path}; install opencv-python-headless<5.")
    return cascade


def count_faces(image: Image.Image, min_size: int = 24) -> int:
    """Return how many frontal faces of at least `min_size` pixels OpenCV finds in `image`."""
    import cv2

    grey = cv2.equalizeHist(cv2.cvtColor(np.asarray(image.convert("RGB")), cv2.COLOR_RGB2GRAY))
    faces = _cascade().detectMultiScale(grey, scaleFactor=1.1, minNeighbors=5, minSize=(min_size, min_size))
    return len(faces)


def face_table(pairs: PairSet) -> pd.DataFrame:
    """Return one row a pair: faces found left and right, whether either side has one."""
    counts = [(count_faces(pairs.left_image(i)), count_faces(pairs.right_image(i)))
              for i in progress(range(len(pairs)), desc="Finding faces", unit="pair", leave=False)]
    table = pd.DataFrame(counts, columns=["left_faces", "right_faces"], index=pd.Index(pairs.ids, name="id"))
    table["face_pair"] = (table.left_faces > 0) | (table.right_faces > 0)
    return table


def face_counts(faces: pd.DataFrame) -> pd.Series:
    """Return how many pairs of `face_table`'s rows have a face on the left, the right, both or
    either side, and how many have none (the generic subset), as a Series named "count"."""
    left, right = faces.left_faces > 0, faces.right_faces > 0
    return pd.Series({
        "pairs": len(faces),
        "face on the left": int(left.sum()),
        "face on the right": int(right.sum()),
        "face on both sides": int((left & right).sum()),
        "face on either side": int(faces.face_pair.sum()),
        "no face (generic subset)": int((~faces.face_pair).sum()),
    }, name="count")


def split_by_faces(pairs: PairSet, face_pair: np.ndarray) -> tuple[PairSet, PairSet]:
    """Return `(generic, with_faces)`: the pairs without a face and those with one (`face_pair`, one
    flag a pair), named after `pairs`."""
    face_pair = np.asarray(face_pair, dtype=bool)
    if len(face_pair) != len(pairs):
        raise ValueError(f"face_pair has {len(face_pair)} flags but {pairs.name} has {len(pairs)} pairs; "
                         "pass face_table(pairs).face_pair.")
    return (pairs.subset(np.flatnonzero(~face_pair), name=f"{pairs.name} without faces"),
            pairs.subset(np.flatnonzero(face_pair), name=f"{pairs.name} with faces"))


def agreement_table(detected_face_pair: np.ndarray, no_faces_mask: np.ndarray) -> pd.DataFrame:
    """Return the 2 x 2 counts of detected face pairs against the official `no_faces` mask."""
    return pd.crosstab(
        pd.Series(np.where(no_faces_mask, "no face (official)", "face (official)"), name="official mask"),
        pd.Series(np.where(detected_face_pair, "face found", "no face found"), name="OpenCV"),
    )


def cached_face_table(pairs: PairSet) -> pd.DataFrame:
    """Return `face_table(pairs)`, computed once per data set and kept under `artifacts/faces/`."""
    def compute() -> dict:
        table = face_table(pairs)
        return {"ids": list(table.index), "left": torch.tensor(table.left_faces.to_numpy()),
                "right": torch.tensor(table.right_faces.to_numpy())}

    saved = cached("faces", compute, data=pairs.fingerprint, detector=_DETECTOR)
    table = pd.DataFrame({"left_faces": saved["left"].numpy(), "right_faces": saved["right"].numpy()},
                         index=pd.Index(saved["ids"], name="id"))
    table["face_pair"] = (table.left_faces > 0) | (table.right_faces > 0)
    return table


def generic_subset(pairs: PairSet) -> PairSet:
    """Return the generic look-alikes of `pairs`: no face found on either side (the study's setting)."""
    return split_by_faces(pairs, cached_face_table(pairs).face_pair.to_numpy())[0]
