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
from PIL import Image

from .pairs import PairSet
from .progress import progress

__all__ = ["count_faces", "face_table", "agreement_table"]


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


def agreement_table(detected_face_pair: np.ndarray, no_faces_mask: np.ndarray) -> pd.DataFrame:
    """Return the 2 x 2 counts of detected face pairs against the official `no_faces` mask."""
    return pd.crosstab(
        pd.Series(np.where(no_faces_mask, "no face (official)", "face (official)"), name="official mask"),
        pd.Series(np.where(detected_face_pair, "face found", "no face found"), name="OpenCV"),
    )
