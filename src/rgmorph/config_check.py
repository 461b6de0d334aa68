"""Checks of the workflow config that run when Snakemake reads it, before any job starts.

Each problem is named by its dotted config key (``fetch.retries``) and says what to do; all
problems of a kind are reported together, so a config can be fixed in one go.
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path

import yaml

from rgmorph.folders import FolderError, has_positions

SCHEMA_HINT = "see workflow/schemas/config.schema.yaml for every key, its type and default"


class ConfigError(ValueError):
    """A config the workflow cannot run with; the message names each key."""


def _key(path) -> str:
    return ".".join(str(part) for part in path) or "(top level)"


def _suggest(word: str, choices) -> str:
    close = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _describe(error) -> list[str]:
    where = _key(error.absolute_path)
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        allowed = sorted(error.schema.get("properties", {}))
        extra = sorted(set(error.instance) - set(allowed))
        if allowed and extra:
            prefix = f"{where}." if error.absolute_path else ""
            return [f"config key {prefix}{key} is unknown{_suggest(key, allowed)}; allowed keys here: {allowed}"
                    for key in extra]
    if error.validator == "type":
        wanted = error.validator_value if isinstance(error.validator_value, str) else " or ".join(error.validator_value)
        return [f"config key {where}: {error.instance!r} is not of type {wanted}"]
    if error.validator == "enum":
        return [f"config key {where}: {error.instance!r} is not one of {error.validator_value}"
                f"{_suggest(error.instance, error.validator_value)}"]
    return [f"config key {where}: {error.message}"]


def schema_problems(config: dict, schema_path: str | Path) -> list[str]:
    """Every way ``config`` breaks the schema, one readable line each."""
    import jsonschema

    schema = yaml.safe_load(Path(schema_path).read_text())
    validator = jsonschema.Draft202012Validator(schema)
    return sorted(line for error in validator.iter_errors(config) for line in _describe(error))


def drop_left_out_surveys(config: dict) -> dict:
    """Remove surveys set to null: Snakemake merges config files key by key, so an overlay can only
    leave a survey out of the study beneath it by nulling it (config/splits.yaml: NVSS: null)."""
    if isinstance(config.get("surveys"), dict):
        config["surveys"] = {key: value for key, value in config["surveys"].items() if value is not None}
    return config


def results_dir_problems(results_dir: str) -> list[str]:
    """results_dir becomes paths and shell words (dvc.yaml, scripts/dvc-pull.sh): no empty, root or '..' path."""
    parts = Path(results_dir).parts
    if not results_dir.strip() or parts in (("/",), ("//",)) or ".." in parts:  # '//' and '/./' are '/' too
        return [f"config key results_dir: {results_dir!r} must name a folder (not empty, not '/', without '..')"]
    if any(character in results_dir for character in "\n\"'`$;&|"):
        return [f"config key results_dir: {results_dir!r} holds a character that shells read specially"]
    return []


def model_problems(models: list[str], available: list[str]) -> list[str]:
    return [f"config key train.models: unknown model '{name}'{_suggest(name, available)}; available: {available}"
            for name in models if name not in available]


def transfer_problems(transfer: dict, available: list[str], networks: list[str]) -> list[str]:
    """Names that are no model, a variant that is not a network, a direction from a survey to itself."""
    names = transfer.get("models", [])
    problems = [f"config key transfer.models: unknown model '{name}'{_suggest(name, available)}; available: {networks}"
                for name in names if name not in available]
    problems += [f"config key transfer.models: '{name}' is not a network, so it cannot be fine-tuned"
                 for name in names if name in available and name not in networks]
    problems += [f"config key transfer.directions: from and to are both '{direction['from']}'"
                 for direction in transfer.get("directions", []) if direction["from"] == direction["to"]]
    return problems


def mirror_problems(config: dict) -> list[str]:
    """For ``fetch.source: mirror``: each mirror has an index and together they hold every configured
    survey. For ``fetch.source: files``: every survey has a file column that the catalogue carries."""
    fetch = config.get("fetch", {})
    source = fetch.get("source", "mirror")
    if source == "files":
        return _file_column_problems(config)
    if source != "mirror":
        return []  # SkyView's survey list is only known online: the fetch step checks it first thing
    from rgmorph.fetch import MIRROR_ENVIRONMENT_VARIABLE, FetchError, mirror_dirs, mirror_setting, read_mirror_index

    roots = mirror_dirs(mirror_setting(fetch.get("mirror_dir")))
    where = f"${MIRROR_ENVIRONMENT_VARIABLE}" if os.environ.get(MIRROR_ENVIRONMENT_VARIABLE) else "config key fetch.mirror_dir"
    if not roots:
        return ["config key fetch.mirror_dir: not set, but fetch.source is 'mirror'"]
    held, problems = set(), []
    for root in roots:
        try:
            held |= set(read_mirror_index(root)["survey"].unique())
        except FetchError as exc:
            problems.append(f"{where}: {exc}")
    if problems:
        return problems
    held = sorted(held)
    what = f"the mirror {roots[0]} holds no" if len(roots) == 1 else f"none of the mirrors ({', '.join(roots)}) holds"
    return [f"config key surveys.{key}.skyview_name: {what} '{survey['skyview_name']}' "
            f"cutouts{_suggest(survey['skyview_name'], held)}; {'it holds' if len(roots) == 1 else 'they hold'} {held}"
            for key, survey in config.get("surveys", {}).items() if survey.get("skyview_name") not in held]


def _file_column_problems(config: dict) -> list[str]:
    """``fetch.source: files``: each survey's ``fetch.file_columns`` entry exists and is carried into sources.csv."""
    fetch, catalogue = config.get("fetch", {}), config.get("catalogue", {})
    columns = fetch.get("file_columns") or {}
    entries = catalogue.get("sources") or [catalogue]
    # an image folder carries its files' paths as 'file'
    carried = [set(entry.get("carry") or []) | ({FOLDER_FILE_COLUMN} if entry.get("folders") else set())
               for entry in entries]
    problems = []
    for key in config.get("surveys", {}):
        column = columns.get(key)
        if not column:
            problems.append(f"config key fetch.file_columns.{key}: not set, but fetch.source is 'files'; name the "
                            "catalogue column that holds each source's file")
        elif not any(column in carry for carry in carried):
            problems.append(f"config key catalogue.carry: lacks '{column}' (fetch.file_columns.{key}); the catalogue "
                            "step must carry it into sources.csv")
    problems += [f"config key fetch.file_columns.{key}: no survey '{key}' in surveys"
                 f"{_suggest(key, config.get('surveys', {}))}" for key in columns if key not in config.get("surveys", {})]
    files_dir = fetch.get("files_dir")
    if files_dir and not Path(files_dir).is_dir():
        problems.append(f"config key fetch.files_dir: {files_dir} is not a directory")
    return problems


FOLDER_FILE_COLUMN = "file"  # rgmorph.folders: the column holding each image's path


def fill_folder_defaults(config: dict) -> dict:
    """An image-folder catalogue read with ``fetch.source: files``: every survey without a file column
    reads the folder's ``file`` column, so that such a study needs no fetch.file_columns."""
    catalogue, fetch = config.get("catalogue", {}), config.get("fetch", {})
    entries = catalogue.get("sources") or [catalogue]
    if fetch.get("source") == "files" and any(entry.get("folders") for entry in entries):
        columns = fetch.setdefault("file_columns", {})
        for key in config.get("surveys", {}):
            columns.setdefault(key, FOLDER_FILE_COLUMN)
    return config


def position_problems(config: dict) -> list[str]:
    """Sources without positions (columns ra/dec null, folders without {ra} {dec}) can only read their files."""
    catalogue = config.get("catalogue", {})
    entries = catalogue.get("sources") or [catalogue]
    unplaced = [entry.get("name", "catalogue") for entry in entries
                if (entry.get("folders") and not _pattern_positions((entry["folders"] or {}).get("pattern")))
                or (not entry.get("folders") and (entry.get("columns") or {}).get("ra", "ra") is None)]
    source = config.get("fetch", {}).get("source", "mirror")
    if unplaced and source != "files":
        return [f"config key fetch.source: '{source}' finds cutouts by position, but catalogue(s) {unplaced} give "
                "none (columns.ra/dec null, or folders without {ra} and {dec} in pattern); use fetch.source: files"]
    return []


def _pattern_positions(pattern: str | None) -> bool:
    try:
        return has_positions(pattern)
    except FolderError:
        return False  # the catalogue step names the bad pattern


def raise_if_any(problems: list[str], what: str) -> None:
    if problems:
        listing = "\n  ".join(problems)
        raise ConfigError(f"{what}: {len(problems)} problem(s):\n  {listing}\nFix the config ({SCHEMA_HINT}).")
