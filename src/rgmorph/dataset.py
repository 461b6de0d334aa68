"""The dataset file format shared by every stage after preprocessing, read with numpy alone.

One compressed .npz per survey (written by ``rgmorph.preprocess.build_dataset``): images, labels,
names, split, sha256 of each raw cutout, class_names, pixel_scale_arcsec and survey. Kept free of
astropy so that training can run where only torch and numpy are installed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rgmorph.files import checked_read


def load_dataset(path: str | Path) -> dict:
    with checked_read(path, remade_by="preprocess"), np.load(path, allow_pickle=False) as data:
        dataset = {key: data[key] for key in data.files}
    dataset["class_names"] = [str(name) for name in dataset["class_names"]]
    dataset["survey"] = str(dataset["survey"])
    return dataset
