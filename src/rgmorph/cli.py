"""The ``rgmorph`` command. ``rgmorph trace FILE`` prints where an output came from; ``rgmorph classify
CSV`` classifies an unlabelled catalogue with the shipped models or a trained study's (docs/classify.md);
``rgmorph models`` lists the shipped models; ``rgmorph catalogue from-folders`` writes a catalogue of an image folder;
``rgmorph cleaning-effect``, ``compare-choices`` and ``compare-split-choices`` tabulate results across studies (README).

    rgmorph trace results/figures/roc_curves.png
    rgmorph trace --json results/tables/main_table.tex > chain.json
    rgmorph trace --limit 5 results/evaluation/FIRST/tang2019/seed0/metrics.json

The chain runs figure/table -> metrics -> model -> dataset -> raw cutouts (file and sha256)
and catalogue rows, each with its sha256 checked against the one its consumer recorded.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping

from rgmorph import __version__, provenance

_MARK = {"ok": "ok", "unrecorded": "", "changed": "CHANGED since recorded", "missing": "MISSING"}


def _listing(title: str, items: list, limit: int | None, line, pad: str, out, where: str = "") -> None:
    """``title: N`` and one ``line(item)`` per item, at most ``limit`` of them."""
    print(f"{pad}    {title}: {len(items)}{where}", file=out)
    for item in items[:limit]:
        print(f"{pad}      {line(item)}", file=out)
    if limit is not None and len(items) > limit:
        print(f"{pad}      ... {len(items) - limit} more (--limit to show more)", file=out)


def _cutout_line(cutout: Mapping) -> str:
    state = f"  {cutout['status']}" if cutout.get("status") else ""
    return f"{cutout['name']:<24} {cutout.get('file') or '-':<32} sha256 {cutout['sha256']}{state}"


def _row_line(row: Mapping) -> str:
    return f"{row['name']:<24} " + ", ".join(f"{key} {value}" for key, value in row.items() if key != "name")


def render(node: Mapping, limit: int | None = None, depth: int = 0, out=sys.stdout) -> None:
    """Print the chain below ``node`` as an indented tree."""
    pad = "  " * depth
    role = f"[{node['role']}] " if node.get("role") else ""
    print(f"{pad}{node.get('kind', 'file')} {role}{node['path']}", file=out)
    status = _MARK.get(node.get("status"), node.get("status") or "")
    if node.get("sha256"):
        print(f"{pad}    sha256 {node['sha256']}{f' ({status})' if status else ''}", file=out)
    elif node.get("status") == "missing":
        print(f"{pad}    MISSING (recorded sha256 {node.get('recorded_sha256')})", file=out)
    if node.get("repeat"):
        print(f"{pad}    (its inputs are listed above)", file=out)
        return
    # 'rule figure_roc_curves' from a sidecar, or what a file says of its run ('model tang2019; seed 0')
    summary = "; ".join(f"{key} {value}" for key, value in (node.get("info") or {}).items() if value not in (None, ""))
    if summary:
        print(f"{pad}    {summary}  [from {node.get('source')}]", file=out)
    if node.get("sidecar_warning"):
        print(f"{pad}    WARNING: {node['sidecar_warning']}", file=out)
    if node.get("cutouts") is not None:
        where = f" in {node['cutout_dir']}" if node.get("cutout_dir") else ""
        _listing("raw cutouts", node["cutouts"], limit, _cutout_line, pad, out, where)
    if node.get("catalogue_rows") is not None:
        _listing("catalogue rows", node["catalogue_rows"], limit, _row_line, pad, out)
    for child in node.get("children", []):
        render(child, limit, depth + 1, out)


def _trace(arguments) -> int:
    problems = 0
    for path in arguments.files:
        chain = provenance.trace(path, verify_cutouts=not arguments.no_verify)
        if arguments.json:
            print(json.dumps(chain, indent=1, default=str))
        else:
            render(chain, arguments.limit)
        nodes = list(provenance.iter_nodes(chain))
        bad = [n for n in nodes if n.get("status") in ("changed", "missing")]
        bad_cutouts = [c for n in nodes for c in n.get("cutouts") or [] if c.get("status") in ("changed", "missing")]
        if chain.get("status") == "missing":
            print(f"rgmorph trace: {path}: no such file", file=sys.stderr)
        if bad or bad_cutouts:
            print(f"rgmorph trace: {path}: {len(bad)} file(s) and {len(bad_cutouts)} cutout(s) differ from what was "
                  "recorded or are missing: the output is stale; rerun snakemake", file=sys.stderr)
        problems += bool(bad or bad_cutouts)
    return 1 if problems else 0


CLASSIFY_EPILOG = """\
examples (a CSV with columns name, ra, dec):
  rgmorph classify my_sources.csv --survey FIRST
      the shipped FRDEEP FIRST models (rgmorph models lists them), cutouts from NASA SkyView
  rgmorph classify my_sources.csv --models mirabest-first-tang2019 --mirror ../shared/mirabest/skyview-mirror
  rgmorph classify my_sources.csv --study results/mirabest --model tang2019 --seeds 0 1 2 3 4 \\
      --mirror ../shared/mirabest/skyview-mirror --output results/my_sources
      a study trained here instead of shipped models
  It writes the config <output>/classify.yaml, runs snakemake with it and prints where the table landed:
  <output>/classify/classifications.csv (columns: docs/classify.md). Rerunning the same command
  resumes: finished shards are not redone. Arguments after '--' go to snakemake (e.g. -- -n)."""


def _classify_models(arguments) -> tuple[dict, dict, dict | None]:
    """(classify.study, classify.survey, classify.preprocess or None) for a study trained here (--study) or a
    shipped model (--models, by default the one for --survey), whose card says what its images must be."""
    survey = {"skyview_name": arguments.skyview_name or "VLA FIRST (1.4 GHz)", "pixels": arguments.pixels or 150}
    survey_name = arguments.survey or "FIRST"
    if arguments.study:
        return ({"results_dir": arguments.study, "survey": survey_name, "model": arguments.model or "tang2019",
                 "seeds": arguments.seeds or [0, 1, 2, 3, 4]}, survey, None)
    from rgmorph import shipped

    model = shipped.ShippedModel.load(arguments.models or shipped.default_for(survey_name)).verified()
    card = model.card
    given = {"--model": arguments.model, "--seeds": arguments.seeds, "--pixels": arguments.pixels,
             "--skyview-name": arguments.skyview_name}
    ignored = [flag for flag, value in given.items() if value is not None]
    if arguments.survey not in (None, card["survey"]):
        ignored.append(f"--survey {arguments.survey}")
    if ignored:
        raise shipped.ShippedModelError(
            f"{', '.join(ignored)}: the shipped model {model.name} fixes its survey "
            f"({card['survey']}), variant, seeds and cutouts (its card); use --study for other choices")
    print(f"shipped model {model.name}: {card['title']}", file=sys.stderr)
    return ({"models": str(model.folder), "survey": card["survey"], "model": card["model"], "seeds": card["seeds"]},
            {"skyview_name": card["skyview_name"], "pixels": card["pixels"]}, card["preprocess"])


def _classify(arguments) -> int:
    import subprocess
    from pathlib import Path

    import yaml

    from rgmorph.shipped import ShippedModelError

    try:
        study, survey, preprocess = _classify_models(arguments)
    except ShippedModelError as exc:
        print(f"rgmorph classify: {exc}", file=sys.stderr)
        return 2
    output = Path(arguments.output or f"results/classify/{Path(arguments.catalogue).stem}")
    fetch = {"source": "mirror" if arguments.mirror else "skyview", "on_failure": "exclude"}
    if arguments.mirror:
        fetch["mirror_dir"] = arguments.mirror
    config = {"classify": {
        "catalogue": {"path": str(arguments.catalogue),
                      "columns": {"name": arguments.name_column, "ra": arguments.ra_column,
                                  "dec": arguments.dec_column}},
        "study": study, "results_dir": str(output), "shard_size": arguments.shard_size, "fetch": fetch,
        "survey": survey, "threads": arguments.threads}}
    if preprocess is not None:
        config["classify"]["preprocess"] = preprocess
    if arguments.carry is not None:
        config["classify"]["catalogue"]["carry"] = arguments.carry
    output.mkdir(parents=True, exist_ok=True)
    config_path = output / "classify.yaml"
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    snakefile = Path(__file__).resolve().parents[2] / "Snakefile"
    command = [sys.executable, "-m", "snakemake", "--snakefile", str(snakefile), "--directory", str(Path.cwd()),
               "--cores", str(arguments.cores), "--configfile", str(config_path), *arguments.snakemake_args]
    print("running:", " ".join(command), file=sys.stderr)
    result = subprocess.run(command)
    if result.returncode == 0:
        print(f"classifications: {output / 'classify' / 'classifications.csv'}")
    return result.returncode


def _add_models_command(commands) -> None:
    models = commands.add_parser("models", help="the pretrained models shipped with the project",
                                 description="List the shipped models (resources/models) and check each file's "
                                             "sha256 against its card, or regenerate them from their studies.")
    models.add_argument("action", nargs="?", choices=["list", "export"], default="list",
                        help="list (default), or export: rebuild resources/models/<name> from its study's results")
    models.add_argument("names", nargs="*", help="export only these (default: every one in models.yaml)")


def _models_command(arguments) -> int:
    from rgmorph import shipped

    if arguments.action == "export":
        for name in arguments.names or list(shipped.registry()):
            model = shipped.export(name)
            print(f"exported {model.name}: {model.folder} ({len(model.card['files'])} checkpoints, "
                  f"OOD threshold {model.card['ood']['threshold']:.4f})")
        return 0
    models = shipped.available()
    if not models:
        print("no shipped models in resources/models; `rgmorph models export` makes them from trained studies")
        return 1
    print(shipped.listing(models).to_string(index=False))
    problems = [problem for model in models for problem in model.problems()]
    print("\n".join(problems) if problems else "every file matches the sha256 of its card")
    return 1 if problems else 0


def _choice_and_folder(argument: str) -> tuple[str, str]:
    """'long_ema=results/mirabest/ablation/long_ema' -> (choice, folder); argparse names a malformed one."""
    name, equals, folder = argument.partition("=")
    if not (name and equals and folder):
        example = "sigma2=results/splits/ablation/sigma2"
        raise argparse.ArgumentTypeError(f"{argument!r} is not CHOICE=FOLDER (e.g. {example})")
    return name, folder


def _add_table_commands(commands) -> None:
    """Tables across studies (each study its own results_dir), so no one study's rule can write them."""
    cleaning = commands.add_parser("cleaning-effect",
                                   help="a study's test numbers before and after neighbour cleaning")
    cleaning.add_argument("--published", default="metrics/summary.json",
                          help="the published run: metrics/summary.json or its tables/summary.csv")
    cleaning.add_argument("--cleaned", default="results/cleaned/tables/summary.csv",
                          help="the cleaned run's summary.csv")
    cleaning.add_argument("--output", default="results/cleaned/tables/cleaning_effect.csv")
    choices = commands.add_parser("compare-choices", help="a setting chosen on validation, its test effect beside it")
    choices.add_argument("choices", nargs="+", metavar="CHOICE=RESULTS_DIR", type=_choice_and_folder,
                         help="one study per choice, the default first")
    choices.add_argument("--setting", default="choice", help="the column naming the choice, e.g. circular_mask")
    choices.add_argument("--across-models", action="store_true",
                         help="choices may change the network: one pick per survey over every model")
    choices.add_argument("--output", required=True)
    split_choices = commands.add_parser(
        "compare-split-choices", help="choices on repeated splits (make splits-ablation): means over splits, "
                                      "paired by split with the first, picked on validation")
    split_choices.add_argument("choices", nargs="+", metavar="CHOICE=SPLITS_DIR", type=_choice_and_folder,
                               help="one folder of seed<k> split studies per choice, the reference first")
    split_choices.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4, 5],
                               help="split seeds (default: 1-5)")
    split_choices.add_argument("--output", required=True)


def _add_catalogue_commands(commands) -> None:
    catalogue = commands.add_parser("catalogue", help="write a catalogue CSV from other inputs")
    actions = catalogue.add_subparsers(dest="action", required=True)
    from_folders = actions.add_parser(
        "from-folders", help="a catalogue CSV from an image folder: <split>/<class>/<image> or <class>/<image>",
        description="One row per image: name (file name without suffix), ra/dec (from --pattern, else empty), "
                    "label (class folder), split (split folder: train, valid/val/validation, test), file (its path) "
                    "and any other field of the pattern. The catalogue.folders config entry reads the same folder "
                    "without this step.")
    from_folders.add_argument("folder", help="the image folder")
    from_folders.add_argument("--pattern", default=None,
                              help="file-name pattern, e.g. '{ra}_{dec}_{label}_{catalogue}.png'")
    from_folders.add_argument("--output", required=True, help="the CSV file to write")


def _catalogue_command(arguments) -> int:
    from rgmorph import folders
    from rgmorph.files import write_csv_atomic

    try:
        table = folders.read_folders(arguments.folder, arguments.pattern)
    except folders.FolderError as exc:
        print(f"rgmorph catalogue from-folders: {exc}", file=sys.stderr)
        return 2
    write_csv_atomic(arguments.output, table)
    counts = table.groupby(["split", "label"]).size().to_string()
    positions = "with positions" if folders.has_positions(arguments.pattern) else "without positions"
    print(f"written: {arguments.output} ({len(table)} images, {positions})\n{counts}")
    print("use it with: catalogue: {path: %s, columns: {name: name, ra: %s, dec: %s, label: label, split: split}}"
          "\n             fetch: {source: files, file_columns: {<survey>: file}}"
          % (arguments.output, *(("ra", "dec") if folders.has_positions(arguments.pattern) else ("null", "null"))))
    return 0


def _table_command(arguments) -> int:
    from rgmorph import choice, cleaning, splits

    if arguments.command == "cleaning-effect":
        table = cleaning.write_cleaning_effect(arguments.published, arguments.cleaned, arguments.output)
    else:
        studies = dict(arguments.choices)
        if arguments.command == "compare-split-choices":
            table = splits.write_choice_across_splits(studies, arguments.seeds, arguments.output)
        else:
            table = choice.write_choice_table(studies, arguments.output, arguments.setting, arguments.across_models)
    print(table.to_string(index=False))
    print(f"written: {arguments.output}")
    return 0


def _add_classify_command(commands) -> None:
    classify = commands.add_parser(
        "classify", help="classify an unlabelled catalogue (CSV) with a trained study's models",
        description="Classify the sources of a CSV (name, ra, dec; other columns carried through) with every "
                    "seed of one trained model: per source each class's probability (mean over seeds) and its "
                    "std, the predictive entropy and an energy-score out-of-distribution flag. Builds a classify "
                    "config and runs snakemake with it.",
        epilog=CLASSIFY_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    classify.add_argument("catalogue", help="CSV file, one row per source")
    classify.add_argument("--name-column", default="name", help="column of the source names (default: name)")
    classify.add_argument("--ra-column", default="ra", help="RA column, degrees or sexagesimal (default: ra)")
    classify.add_argument("--dec-column", default="dec", help="Dec column, degrees or sexagesimal (default: dec)")
    classify.add_argument("--carry", nargs="*", default=None, help="columns to copy into the table (default: all)")
    where = classify.add_mutually_exclusive_group()
    where.add_argument("--mirror", help="SkyView mirror directory (index.csv + <survey>/*.fits.gz)")
    where.add_argument("--skyview", action="store_true", help="fetch cutouts from NASA SkyView (astroquery; the default)")
    trained = classify.add_mutually_exclusive_group()
    trained.add_argument("--models", help="a shipped model (rgmorph models lists them; default: the one for --survey)")
    trained.add_argument("--study", help="a study trained here instead: its results_dir, e.g. results/mirabest")
    classify.add_argument("--model", default=None, help="with --study: the model variant (default: tang2019)")
    classify.add_argument("--survey", default=None, help="survey of the images (default: FIRST)")
    classify.add_argument("--skyview-name", default=None,
                          help="with --study: SkyView's name of the survey (default: VLA FIRST (1.4 GHz))")
    classify.add_argument("--pixels", type=int, default=None, help="with --study: cutout side in pixels (default: 150)")
    classify.add_argument("--seeds", type=int, nargs="+", default=None, help="with --study: seeds (default: 0-4)")
    classify.add_argument("--output", default=None, help="output directory (default: results/classify/<CSV name>); "
                                                         "the table is "
                                                          "<output>/classify/classifications.csv")
    classify.add_argument("--shard-size", type=int, default=500, help="sources per shard (default: 500)")
    classify.add_argument("--cores", type=int, default=2, help="snakemake --cores (default: 2)")
    classify.add_argument("--threads", type=int, default=1, help="torch threads per classify job (default: 1)")
    classify.set_defaults(snakemake_args=[])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="rgmorph", description=__doc__.split("\n")[0])
    parser.add_argument("--version", action="version", version=f"rgmorph {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    trace = commands.add_parser("trace", help="print the provenance chain of an output file",
                                description="Print figure/table -> metrics -> model -> dataset -> cutouts + catalogue "
                                            "rows for an output, checking every recorded sha256.")
    trace.add_argument("files", nargs="+", help="output file(s): figure, table, metrics, checkpoint, dataset")
    trace.add_argument("--json", action="store_true", help="print the chain as JSON")
    trace.add_argument("--limit", type=int, default=None, help="list at most this many cutouts and catalogue rows "
                                                                 "per dataset (default: all)")
    trace.add_argument("--no-verify", action="store_true", help="do not re-hash the raw cutout files")
    _add_classify_command(commands)
    _add_table_commands(commands)
    _add_catalogue_commands(commands)
    _add_models_command(commands)
    argv = list(sys.argv[1:] if argv is None else argv)
    extra = []
    if argv[:1] == ["classify"] and "--" in argv:  # rgmorph classify ... -- <further snakemake arguments>
        argv, extra = argv[:argv.index("--")], argv[argv.index("--") + 1:]
    arguments = parser.parse_args(argv)
    if arguments.command == "trace":
        return _trace(arguments)
    if arguments.command == "classify":
        arguments.snakemake_args = extra
        return _classify(arguments)
    if arguments.command == "catalogue":
        return _catalogue_command(arguments)
    if arguments.command == "models":
        return _models_command(arguments)
    return _table_command(arguments)


if __name__ == "__main__":
    sys.exit(main())
