"""Your own data as an image folder (issue 27): <split>/<class>/*.png with a train / valid / test split,
four classes (one name long), positions in the file names, one blank image; the study runs end to end
through the report, selecting its models on the dataset's own validation split."""

from __future__ import annotations

import io
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from astropy.io import fits
from PIL import Image

from rgmorph import cli, folders
from rgmorph.catalogue import CatalogueSpec, read_catalogue
from rgmorph.errors import CatalogueError
from rgmorph.fetch import MirrorSource, Survey
from conftest import QUICKSTART_MIRROR, REPO, balanced_subset

FIRST = Survey("FIRST", "VLA FIRST (1.4 GHz)", 150)
CLASSES = ["FRI", "FRII", "Compact", "Bent-tailed radio galaxy"]
SPLIT_FOLDERS = {"train": 3, "valid": 2, "test": 2}  # images per class
PATTERN = "{ra}_{dec}_{label}_{catalogue}.png"


def _png_pixels(data: bytes) -> np.ndarray:
    with fits.open(io.BytesIO(data)) as hdus:
        image = np.nan_to_num(hdus[0].data)
    low, high = np.percentile(image, [1, 99.9])
    return np.flipud((np.clip((image - low) / (high - low), 0, 1) * 255).astype(np.uint8))


def build_folder_dataset(root, sources: pd.DataFrame) -> dict[str, list[str]]:
    """Real FIRST cutouts of the quick-start sample as PNGs under root/<split>/<class>/; the classes past
    FRI/FRII reuse FRI/FRII images (the pipeline's path, not the science, is under test). The last test
    image is blank. Returns split -> image names."""
    mirror = MirrorSource(QUICKSTART_MIRROR)
    rows = iter(sources.itertuples(index=False))
    names: dict[str, list[str]] = {split: [] for split in SPLIT_FOLDERS}
    for split, count in SPLIT_FOLDERS.items():
        for label in CLASSES:
            (root / split / label).mkdir(parents=True)
            for _ in range(count):
                row = next(rows)
                name = f"{row.ra_deg:.5f}_{row.dec_deg:+.5f}_{label}_survey-{split}"
                Image.fromarray(_png_pixels(mirror.get(FIRST, row.ra_deg, row.dec_deg)), mode="L").save(
                    root / split / label / f"{name}.png")
                names[split].append(name)
    Image.fromarray(np.zeros((150, 150), np.uint8), mode="L").save(root / "test" / CLASSES[-1] / f"{name}.png")
    return names


@pytest.fixture(scope="module")
def images(tmp_path_factory, quickstart_sources):
    root = tmp_path_factory.mktemp("own") / "data"
    needed = sum(SPLIT_FOLDERS.values()) * len(CLASSES)
    sources = balanced_subset(quickstart_sources, 20).head(needed)
    assert len(sources) == needed
    return root, build_folder_dataset(root, sources)


@pytest.fixture(scope="module")
def study(images):
    root, names = images
    results = root.parent / "results"
    config = {
        "results_dir": str(results),
        "class_names": CLASSES,
        "catalogue": {"folders": {"path": str(root), "pattern": PATTERN}},
        "surveys": {"FIRST": {"skyview_name": "VLA FIRST (1.4 GHz)", "pixels": 150, "pixel_scale_arcsec": 1.8}},
        "fetch": {"source": "files", "on_failure": "exclude"},
        "train": {"models": ["tang2019"], "seeds": [0], "epochs": 1, "threads": 1, "validation": "catalogue"},
        "transfer": {"models": []},
    }
    config_path = root.parent / "own.yaml"
    config_path.write_text(yaml.safe_dump(config))
    environment = {k: v for k, v in os.environ.items() if not k.startswith("RGMORPH_SKYVIEW")}
    for command in ([], ["--report", str(results / "report.html")]):
        result = subprocess.run([sys.executable, "-m", "snakemake", "--cores", "2", "--configfile", str(config_path),
                                 *command], cwd=REPO, capture_output=True, text=True, env=environment)
        if result.returncode != 0:
            raise AssertionError(f"snakemake {command} failed:\n{result.stdout[-3000:]}\n{result.stderr[-6000:]}")
    return results, names


def test_every_image_is_a_source_with_its_split_class_and_position(study):
    results, names = study
    sources = pd.read_csv(results / "catalogue" / "sources.csv")
    assert sorted(sources["name"]) == sorted(sum(names.values(), []))
    by_name = sources.set_index("name")
    for split, members in names.items():
        assert set(by_name.loc[members, "split"]) == {"validation" if split == "valid" else split}
    first = by_name.loc[names["train"][0]]
    ra, dec = names["train"][0].split("_")[:2]
    assert (first["ra_deg"], first["dec_deg"]) == pytest.approx((float(ra), float(dec)), abs=1e-9)
    assert set(sources["class_name"]) == set(CLASSES)
    # the pattern's {catalogue} is carried apart from the catalogue column rgmorph writes itself
    assert set(sources["pattern_catalogue"]) == {f"survey-{split}" for split in SPLIT_FOLDERS}
    assert set(sources["catalogue"]) == {"data"}
    assert sources["file"].str.endswith(".png").all()


def test_models_are_selected_on_the_datasets_own_validation_split(study):
    results, names = study
    checkpoint = torch.load(results / "models" / "FIRST" / "tang2019" / "seed0" / "checkpoint.pt",
                            map_location="cpu", weights_only=True)
    assert sorted(checkpoint["validation_names"]) == sorted(names["valid"])


def test_the_blank_image_is_excluded_and_the_rest_evaluated(study):
    results, names = study
    manifest = pd.read_csv(results / "cutouts" / "FIRST" / "manifest.csv")
    blank = names["test"][-1]
    assert manifest.set_index("name").loc[blank, "status"] not in ("ok", "cached")
    predictions = pd.read_csv(results / "evaluation" / "FIRST" / "tang2019" / "seed0" / "predictions.csv")
    assert sorted(predictions["name"]) == sorted(names["test"][:-1])


def test_the_report_holds_the_figures_of_four_classes(study):
    results, _ = study
    report = (results / "report.html").read_text(errors="replace")
    assert len(report) > 100_000
    for figure in ("confusion_matrices", "augmentation"):
        assert list((results / "figures").glob(f"{figure}*.png")), figure


def test_from_folders_writes_the_catalogue_and_a_bad_file_is_named(images, tmp_path, capsys):
    root, names = images
    output = tmp_path / "catalogue.csv"
    assert cli.main(["catalogue", "from-folders", str(root), "--pattern", PATTERN, "--output", str(output)]) == 0
    table = pd.read_csv(output)
    assert len(table) == sum(len(members) for members in names.values())
    assert set(table["split"]) == set(SPLIT_FOLDERS)
    assert "use it with" in capsys.readouterr().out
    stray = root / "train" / CLASSES[0] / "not-a-position.png"
    stray.write_bytes((root / "train" / CLASSES[0] / f"{names['train'][0]}.png").read_bytes())
    try:
        assert cli.main(["catalogue", "from-folders", str(root), "--pattern", PATTERN,
                         "--output", str(tmp_path / "bad.csv")]) == 2
    finally:
        stray.unlink()
    assert "not-a-position.png: file name does not match the pattern" in capsys.readouterr().err
    assert not (tmp_path / "bad.csv").exists()


def test_a_folder_without_positions_reads_with_empty_positions(images):
    root, names = images
    table = read_catalogue(root, CatalogueSpec(class_names=CLASSES, folders=str(root)))
    assert len(table) == sum(len(members) for members in names.values())
    assert table["ra_deg"].isna().all() and table["dec_deg"].isna().all()
    assert set(table["split"]) == {"train", "validation", "test"}


def test_a_label_in_the_file_name_must_match_its_class_folder(tmp_path):
    (tmp_path / "train" / "FRI").mkdir(parents=True)
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "train" / "FRI" / "10.0_20.0_FRII_x.png")
    with pytest.raises(folders.FolderError, match="label 'FRII' in the file name, but in class folder 'FRI'"):
        folders.read_folders(tmp_path, PATTERN)


def test_a_carried_column_named_like_an_internal_one_is_refused(tmp_path):
    path = tmp_path / "catalogue.csv"
    path.write_text("name,ra,dec,fr_class,split,catalogue\nA,10,20,FRI,train,x\nB,11,21,FRII,test,y\n")
    with pytest.raises(CatalogueError, match=r"carry names column\(s\) \['catalogue'\]"):
        read_catalogue(path, CatalogueSpec(class_names=["FRI", "FRII"], carry=["catalogue"]))
