"""Bad inputs (catalogue, config, mirror, fetch manifest) get one clear error naming the row, key or
file and what to do, before any long work starts. Basic catalogue row errors are in test_catalogue.py."""

from __future__ import annotations

import gzip
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from rgmorph import config_check, models
from rgmorph.catalogue import CatalogueError, CatalogueSpec, read_catalogue
from rgmorph.fetch import FetchError, FetchSettings, Survey, fetch_survey, report_path_for
from rgmorph.preprocess import PreprocessError, build_dataset
from conftest import CLASS_NAMES, QUICKSTART_MIRROR, REPO

SPEC = CatalogueSpec(class_names=CLASS_NAMES)
HEADER = "name,ra,dec,fr_class,split"
GOOD = ["A,10.0,1.0,FRI,train", "B,20.0,2.0,FRII,train", "C,30.0,3.0,FRI,test", "D,40.0,4.0,FRII,test"]
FIRST = Survey("FIRST", "VLA FIRST (1.4 GHz)", 150)
SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"


def _catalogue(tmp_path, rows, header=HEADER, encoding="utf-8") -> Path:
    path = tmp_path / "catalogue.csv"
    path.write_bytes(("\n".join([header, *rows]) + "\n").encode(encoding))
    return path


def _error(path, spec=SPEC) -> str:
    with pytest.raises(CatalogueError) as error:
        read_catalogue(path, spec)
    return str(error.value)


# --------------------------------------------------------------------------- catalogue


def test_every_bad_row_is_listed_in_one_error(tmp_path):
    path = _catalogue(tmp_path, [*GOOD, "E,ten,5.0,FRI,train", "F,50.0,-91.5,FRII,test", "G,60.0,6.0,FR2,train"])
    assert _error(path) == (
        f"catalogue {path}: 3 problem(s):\n"
        "  catalogue row 6 (E): ra 'ten' is not an angle (Invalid character at col 0 parsing angle 'ten')\n"
        "  catalogue row 7 (F): dec '-91.5' is out of range (Dec must be in [-90, 90] deg)\n"
        "  catalogue row 8 (G): label 'FR2' is not one of ['FRI', 'FRII']\n"
        "Fix these rows (or leave them out with catalogue.select); labels can be mapped onto class names with "
        "catalogue.label_map.")


@pytest.mark.parametrize("ra, reason", [
    ("07 75 00", "ra '07 75 00' is not an angle (An invalid value for 'minute' was found ('75'); should be in the range [0,60).)"),
    ("360.5", "ra '360.5' is out of range (RA must be in [0, 360) deg)"),
    ("-0.1", "ra '-0.1' is out of range (RA must be in [0, 360) deg)"),
    ("", "ra is empty"),
], ids=["minute-75", "ra-360.5", "ra-negative", "ra-empty"])
def test_unparseable_or_out_of_range_coordinates_name_the_row(tmp_path, ra, reason):
    path = _catalogue(tmp_path, [*GOOD, f"E,{ra},5.0,FRI,train"])
    assert f"\n  catalogue row 6 (E): {reason}\n" in _error(path)


def test_duplicate_positions_use_the_configured_radius(tmp_path):
    # E lies 5.04 arcsec north of A: a duplicate within 10 arcsec, a distinct source at 1 arcsec.
    path = _catalogue(tmp_path, [*GOOD, "E,10.0,1.0014,FRI,train"])
    assert len(read_catalogue(path, CatalogueSpec(class_names=CLASS_NAMES, duplicate_radius_arcsec=1.0))) == 5
    message = _error(path, CatalogueSpec(class_names=CLASS_NAMES, duplicate_radius_arcsec=10.0))
    assert "  catalogue row 6 (E): position within 10.0 arcsec of catalogue row 2 (A) (5.04 arcsec apart)\n" in message
    assert message.endswith("lower catalogue.duplicate_radius_arcsec).")


def test_a_repeated_row_is_reported_as_duplicate_name_and_position(tmp_path):
    message = _error(_catalogue(tmp_path, [*GOOD, GOOD[1]]))
    assert message.splitlines()[:3] == [
        f"catalogue {tmp_path / 'catalogue.csv'}: 2 problem(s):",
        "  catalogue row 6 (B): duplicate name, also at catalogue row 3",
        "  catalogue row 6 (B): position within 1.0 arcsec of catalogue row 3 (B) (0.00 arcsec apart)",
    ]


@pytest.mark.parametrize("content", [b"", b"\n\n  \n"], ids=["zero-bytes", "blank-lines"])
def test_an_empty_file_is_named(tmp_path, content):
    path = tmp_path / "catalogue.csv"
    path.write_bytes(content)
    assert _error(path) == f"catalogue {path} is empty; it needs a header line and one row per source"


def test_a_header_without_rows_is_named(tmp_path):
    path = _catalogue(tmp_path, [])
    assert _error(path) == f"catalogue {path} has a header but no rows"


@pytest.mark.parametrize("delimiter, name", [(";", "semicolon"), ("\t", "tab")])
def test_a_wrong_delimiter_is_recognised(tmp_path, delimiter, name):
    path = _catalogue(tmp_path, [row.replace(",", delimiter) for row in GOOD], header=HEADER.replace(",", delimiter))
    assert _error(path) == (
        f"catalogue {path} lacks column(s) ['name', 'ra', 'dec', 'fr_class', 'split']; it has "
        f"[{HEADER.replace(',', delimiter)!r}]. The header looks {name}-separated: save the file comma-separated. "
        "Otherwise set catalogue.columns in the config to the names your file uses.")


def test_a_non_utf8_file_names_the_line(tmp_path):
    path = _catalogue(tmp_path, [*GOOD[:2], "Caf\u00e9,30.0,3.0,FRI,test", GOOD[3]], encoding="latin-1")
    assert _error(path) == (f"catalogue {path} line 4 is not UTF-8 text (byte b'\\xe9'); re-save the file as "
                            "UTF-8 CSV (e.g. 'CSV UTF-8' in a spreadsheet)")


def test_utf16_is_refused_and_a_utf8_byte_order_mark_is_accepted(tmp_path):
    assert "is UTF-16 text; re-save it as UTF-8 CSV" in _error(_catalogue(tmp_path, GOOD, encoding="utf-16"))
    sources = read_catalogue(_catalogue(tmp_path, GOOD, encoding="utf-8-sig"), SPEC)
    assert sources["name"].tolist() == ["A", "B", "C", "D"]


def test_blank_lines_keep_the_spreadsheet_row_numbers(tmp_path):
    path = _catalogue(tmp_path, [GOOD[0], "", GOOD[1], "", *GOOD[2:], "E,50.0,5.0,FRIII,train"])
    assert "\n  catalogue row 8 (E): label 'FRIII'" in _error(path)


def test_a_row_with_an_unquoted_comma_is_named(tmp_path):
    path = _catalogue(tmp_path, [*GOOD[:2], "3C 31, core,30.0,3.0,FRI,test", GOOD[3]])
    assert _error(path) == (f"catalogue {path} is not a well-formed CSV file (Error tokenizing data. C error: "
                            "Expected 5 fields in line 4, saw 6\n); quote fields that hold commas, e.g. \"3C 31, core\"")


def test_a_short_row_names_the_missing_value(tmp_path):
    path = _catalogue(tmp_path, [*GOOD, "E,50.0"])
    message = _error(path)
    assert "  catalogue row 6 (E): dec is empty\n" in message
    assert "  catalogue row 6 (E): label '' is not one of ['FRI', 'FRII']\n" in message


def test_a_missing_catalogue_file_is_named(tmp_path):
    assert _error(tmp_path / "nope.csv") == f"catalogue {tmp_path / 'nope.csv'} does not exist; set catalogue.path in the config"


# --------------------------------------------------------------------------- config


def _config(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


@pytest.mark.parametrize("name", ["config.yaml", "quickstart.yaml"])
def test_the_shipped_configs_pass(name):
    config = _config(REPO / "config" / name)
    assert config_check.schema_problems(config, SCHEMA) == []
    assert config_check.model_problems(config["train"]["models"], models.variants()) == []


def test_unknown_keys_and_wrong_types_are_named_with_their_dotted_key():
    config = _config(REPO / "config" / "quickstart.yaml")
    config["fetch"]["retires"] = 3
    config["surveys"]["FIRST"]["pixel"] = 150
    config["train"]["epochs"] = "ten"
    config["fetch"]["on_failure"] = "exlude"
    config["result_dir"] = "x"
    # Each line up to '; allowed keys here' (the lists grow with the schema).
    problems = [line.split("; allowed keys here: ")[0] for line in config_check.schema_problems(config, SCHEMA)]
    assert problems == [
        "config key fetch.on_failure: 'exlude' is not one of ['stop', 'exclude'] (did you mean 'exclude'?)",
        "config key fetch.retires is unknown (did you mean 'retries'?)",
        "config key result_dir is unknown (did you mean 'results_dir'?)",
        "config key surveys.FIRST.pixel is unknown (did you mean 'pixels'?)",
        "config key train.epochs: 'ten' is not of type integer",
    ]
    assert "; allowed keys here: ['pixel_scale_arcsec', 'pixels', 'skyview_name']" in config_check.schema_problems(config, SCHEMA)[3]


def test_unknown_model_and_survey_names_are_named(tmp_path):
    assert config_check.model_problems(["tang2019", "tang2020"], ["lenet", "tang2019"]) == [
        "config key train.models: unknown model 'tang2020' (did you mean 'tang2019'?); available: ['lenet', 'tang2019']"]
    config = {"fetch": {"source": "mirror", "mirror_dir": str(QUICKSTART_MIRROR)},
              "surveys": {"FIRST": {"skyview_name": "VLA FIRST (1.4GHz)"}, "NVSS": {"skyview_name": "NVSS"}}}
    assert config_check.mirror_problems(config) == [
        f"config key surveys.FIRST.skyview_name: the mirror {QUICKSTART_MIRROR} holds no 'VLA FIRST (1.4GHz)' cutouts "
        "(did you mean 'VLA FIRST (1.4 GHz)'?); it holds ['NVSS', 'VLA FIRST (1.4 GHz)']"]
    config["fetch"]["mirror_dir"] = str(tmp_path)
    assert config_check.mirror_problems(config) == [
        f"config key fetch.mirror_dir: mirror {tmp_path} has no index.csv; point fetch.mirror_dir (or "
        "$RGMORPH_SKYVIEW_MIRROR) at a directory laid out like shared/skyview-mirror"]
    config["fetch"]["source"] = "skyview"  # checked online, by the fetch step's first request
    assert config_check.mirror_problems(config) == []


@pytest.mark.slow  # one Snakemake start: 5-15 s on a busy 2-core machine
def test_snakemake_refuses_a_bad_config_before_any_job(tmp_path):
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump({
        "results_dir": "results",
        "catalogue": {"path": str(REPO / "resources" / "quickstart" / "catalogue.csv")},
        "fetch": {"mirror_dir": str(tmp_path / "no-mirror")},
        "train": {"models": ["tang2020"]},
    }))
    run = subprocess.run([str(Path(sys.executable).parent / "snakemake"), "-n", "-s", str(REPO / "Snakefile"),
                          "--directory", str(tmp_path), "--configfile", str(tmp_path / "bad.yaml"), "--cores", "1"],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode != 0
    assert "problem(s):\n" in run.stdout + run.stderr  # one error listing them all
    assert "config key train.models: unknown model 'tang2020' (did you mean 'tang2019'?)" in run.stdout + run.stderr
    assert f"config key fetch.mirror_dir: mirror {tmp_path / 'no-mirror'} has no index.csv" in run.stdout + run.stderr
    assert not (tmp_path / "results").exists()


# --------------------------------------------------------------------------- mirror


@pytest.fixture()
def small_mirror(tmp_path, quickstart_sources):
    """A copy of the quick-start mirror's FIRST cutouts of three sources."""
    sources = quickstart_sources.head(3).reset_index(drop=True)
    index = pd.read_csv(QUICKSTART_MIRROR / "index.csv")
    index = index[index["survey"] == FIRST.skyview_name]
    # nearest index row per source (the index rounds RA to 1e-3 deg)
    rows = [((index["ra_deg"] - s.ra_deg) ** 2 + (index["dec_deg"] - s.dec_deg) ** 2).idxmin()
            for s in sources.itertuples()]
    index = index.loc[rows].reset_index(drop=True)
    root = tmp_path / "mirror"
    for file in index["file"]:
        (root / file).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(QUICKSTART_MIRROR / file, root / file)
    index.to_csv(root / "index.csv", index=False)
    return root, index, sources


def _fetch_error(root, sources, tmp_path, **settings) -> str:
    with pytest.raises(FetchError) as error:
        fetch_survey(sources, FIRST, tmp_path / "out", tmp_path / "manifest.csv",
                     FetchSettings(mirror_dir=str(root), **settings))
    assert not list((tmp_path / "out").glob("*.fits"))  # stopped before fetching anything
    report = json.loads(report_path_for(tmp_path / "manifest.csv").read_text())  # and said so in the report
    assert (report["outcome"], report["error"], report["counts"]) == ("stopped: checks before fetching failed",
                                                                      str(error.value), {})
    return str(error.value)


def test_a_mirror_without_index_is_named(tmp_path, small_mirror):
    root, _, sources = small_mirror
    (root / "index.csv").unlink()
    assert _fetch_error(root, sources, tmp_path) == (
        f"mirror {root} has no index.csv; point fetch.mirror_dir (or $RGMORPH_SKYVIEW_MIRROR) at a directory laid out "
        "like shared/skyview-mirror")


def test_index_rows_pointing_to_missing_files_are_all_listed(tmp_path, small_mirror):
    root, index, sources = small_mirror
    (root / index["file"][0]).unlink()
    (root / index["file"][2]).unlink()
    assert _fetch_error(root, sources, tmp_path) == (
        f"mirror {root} is damaged: 2 FIRST cutout(s) that the catalogue needs cannot be used:\n"
        f"  index.csv line 2 ({index['file'][0]}): file {root / index['file'][0]} is missing\n"
        f"  index.csv line 4 ({index['file'][2]}): file {root / index['file'][2]} is missing\n"
        "Re-copy these files from the original mirror (or fix index.csv), then rerun.")


def test_a_checksum_mismatch_is_named(tmp_path, small_mirror):
    root, index, sources = small_mirror
    path = root / index["file"][1]
    data = bytearray(gzip.decompress(path.read_bytes()))
    data[-1] ^= 1  # one flipped bit in the last pixel
    path.write_bytes(gzip.compress(bytes(data)))
    message = _fetch_error(root, sources, tmp_path)
    assert message.splitlines()[1] == (f"  index.csv line 3 ({index['file'][1]}): sha256 of the (uncompressed) file is "
                                       f"{__import__('hashlib').sha256(data).hexdigest()[:12]}..., the index says "
                                       f"{index['sha256'][1][:12]}...")


def test_a_broken_index_is_named(tmp_path, small_mirror):
    root, index, sources = small_mirror
    index["ra_deg"] = index["ra_deg"].astype(object)
    index.loc[1, "ra_deg"] = "12h"
    index.to_csv(root / "index.csv", index=False)
    assert _fetch_error(root, sources, tmp_path) == (
        f"mirror index {root / 'index.csv'} line 3: ra_deg '12h' is not a number of degrees")
    index.drop(columns="sha256").to_csv(root / "index.csv", index=False)
    assert _fetch_error(root, sources, tmp_path).startswith(
        f"mirror index {root / 'index.csv'} lacks column(s) ['sha256']; it has ['survey', 'ra_deg', 'dec_deg',")


@pytest.mark.parametrize("file", ["../outside.fits.gz", "FIRST/../../outside.fits.gz", "/etc/passwd", ""])
def test_an_index_file_outside_the_mirror_is_refused_naming_the_row(tmp_path, small_mirror, file):
    root, index, sources = small_mirror
    index.loc[1, "file"] = file
    index.to_csv(root / "index.csv", index=False)
    shown = repr(file) if file else "nan"
    assert _fetch_error(root, sources, tmp_path) == (
        f"mirror index {root / 'index.csv'} line 3: file {shown} must be a path inside the mirror (relative, "
        "without '..')")


def test_a_mirror_file_larger_than_the_cap_once_gunzipped_is_named(tmp_path, small_mirror):
    root, index, sources = small_mirror
    path = root / index["file"][0]
    path.write_bytes(gzip.compress(gzip.decompress(path.read_bytes()) + bytes(10_000_000)))  # a gzip bomb, mildly
    message = _fetch_error(root, sources, tmp_path, max_cutout_bytes=5_000_000)
    assert message.splitlines()[1] == (f"  index.csv line 2 ({index['file'][0]}): {path} (uncompressed) is larger than "
                                       "fetch.max_cutout_bytes (5000000 bytes)")


def test_a_survey_the_mirror_lacks_is_named_with_its_config_key(tmp_path, small_mirror):
    root, _, sources = small_mirror
    with pytest.raises(FetchError) as error:
        fetch_survey(sources, Survey("NVSS", "NVSS", 150), tmp_path / "out", tmp_path / "m.csv",
                     FetchSettings(mirror_dir=str(root)))
    assert str(error.value) == (f"mirror {root} holds no 'NVSS' cutouts (config surveys.NVSS.skyview_name); its "
                                "index.csv lists ['VLA FIRST (1.4 GHz)']. Use one of those names or a mirror that "
                                "holds this survey.")


# --------------------------------------------------------------------------- fetch output -> preprocess


def test_preprocess_lists_every_missing_cutout_before_processing_any(tmp_path, small_mirror):
    root, _, sources = small_mirror
    manifest = fetch_survey(sources, FIRST, tmp_path / "out", tmp_path / "m.csv", FetchSettings(mirror_dir=str(root)))
    for name in manifest["file"][:2]:
        (tmp_path / "out" / name).unlink()
    with pytest.raises(PreprocessError) as error:
        build_dataset(sources, manifest, tmp_path / "out", tmp_path / "d.npz", CLASS_NAMES, "FIRST")
    assert str(error.value) == (
        "2 FIRST cutout(s) cannot be used:\n"
        f"  FIRST cutout for {sources['name'][0]} is missing: {tmp_path / 'out' / manifest['file'][0]}\n"
        f"  FIRST cutout for {sources['name'][1]} is missing: {tmp_path / 'out' / manifest['file'][1]}\n"
        "Rerun the fetch step: it fetches missing or changed files again.")
    with pytest.raises(PreprocessError, match=r"FIRST manifest lists no cutout for 1 catalogue source\(s\) \(extra\); "
                                              r"it belongs to another catalogue: rerun the fetch step"):
        extra = pd.concat([sources, sources.head(1).assign(name="extra")], ignore_index=True)
        build_dataset(extra, manifest, tmp_path / "out", tmp_path / "d.npz", CLASS_NAMES, "FIRST")


@pytest.mark.parametrize("results_dir", ["", "  ", "/", "//", "/./", "../elsewhere", "results/../..",
                                         "results; rm -rf ~", "a$HOME"])
def test_a_results_dir_that_would_become_a_dangerous_path_or_shell_word_is_refused(results_dir):
    problems = config_check.results_dir_problems(results_dir)
    assert len(problems) == 1 and problems[0].startswith("config key results_dir:")


def test_ordinary_results_dirs_are_accepted(tmp_path):
    for results_dir in ("results", "results/quickstart", str(tmp_path / "results")):
        assert config_check.results_dir_problems(results_dir) == []


def test_dvc_yaml_quotes_every_config_value_it_puts_in_a_command():
    dvc = yaml.safe_load((REPO / "dvc.yaml").read_text())
    # the names dvc.yaml takes from config files ('config/config.yaml:results_dir,catalogue')
    from_config = [name for entry in dvc["vars"] if isinstance(entry, str) for name in entry.split(":")[1].split(",")]
    assert "results_dir" in from_config
    commands = [stage["cmd"] for stage in dvc["stages"].values()]
    assert any("${results_dir}" in command for command in commands)
    for command in commands:
        unquoted = re.sub(r'"[^"]*"', "", command)  # what is left outside double quotes
        for name in from_config:
            assert "${" + name not in unquoted, f"dvc.yaml: ${{{name}}} unquoted in: {command}"


def _dvc_pull_no_pull(tmp_path: Path, results_dir) -> tuple[subprocess.CompletedProcess, Path]:
    """scripts/dvc-pull.sh --no-pull in a project whose config sets ``results_dir``, with an rm and a snakemake
    that only record their calls (in the returned log)."""
    project = tmp_path / "project"
    (project / "scripts").mkdir(parents=True)
    (project / "config").mkdir()
    shutil.copy2(REPO / "scripts" / "dvc-pull.sh", project / "scripts")
    (project / "config" / "config.yaml").write_text(yaml.safe_dump({"results_dir": results_dir}))
    (project / "config" / "published.yaml").write_text("{}\n")
    log, fake = tmp_path / "calls.log", tmp_path / "bin"
    fake.mkdir()
    for name in ("rm", "snakemake"):
        (fake / name).write_text(f'#!/bin/sh\necho "{name} $*" >> "{log}"\n')
        (fake / name).chmod(0o755)
    env = {**os.environ, "PATH": os.pathsep.join([str(fake), str(Path(sys.executable).parent), os.environ["PATH"]])}
    result = subprocess.run(["bash", "scripts/dvc-pull.sh", "--no-pull"], cwd=project, env=env, capture_output=True,
                            text=True)
    return result, log


@pytest.mark.parametrize("results_dir", ["", "/", "//", "../outside", None])
def test_dvc_pull_refuses_a_results_dir_outside_the_project_and_removes_nothing(tmp_path, results_dir):
    outside = tmp_path / "outside" / "figures"  # ../outside/figures seen from the project
    outside.mkdir(parents=True)
    (outside / "keep.png").write_bytes(b"not ours")
    result, log = _dvc_pull_no_pull(tmp_path, results_dir)
    assert result.returncode == 2, result.stderr
    assert "config key results_dir" in result.stderr and "nothing was removed" in result.stderr, result.stderr
    assert not log.exists(), log.read_text()  # neither rm nor snakemake ran
    assert (outside / "keep.png").read_bytes() == b"not ours"


def test_dvc_pull_with_a_results_dir_in_the_project_removes_its_figures_only(tmp_path):
    """The same harness on a good results_dir: the refusals above are the check, not a broken script."""
    result, log = _dvc_pull_no_pull(tmp_path, "results/quickstart")
    assert result.returncode == 0, result.stderr
    assert log.read_text().splitlines()[0] == "rm -rf -- results/quickstart/figures"
