# What every rules file needs (the validated config, the run list and the input functions).
# Paths come from rgmorph.layout; settings from rgmorph.settings (the package reads them the same way).
import os

from snakemake.utils import min_version, validate

from rgmorph import config_check, layout, models, settings
from rgmorph.fetch.mirror import mirror_dirs, mirror_setting
from rgmorph.layout import Run

min_version("9.0")


config_check.drop_left_out_surveys(config)  # an overlay's 'NVSS: null' leaves that survey out
# Our own pass first: one line per problem naming the dotted key, instead of a schema dump.
config_check.raise_if_any(
    config_check.schema_problems(config, workflow.source_path("../schemas/config.schema.yaml")), "config"
)
validate(config, schema="../schemas/config.schema.yaml", set_default=True)
config_check.fill_folder_defaults(config)  # an image-folder catalogue: fetch.file_columns default to its 'file'

RESULTS = config["results_dir"]
SURVEYS = list(config["surveys"])
MODELS = config["train"]["models"]
SEEDS = config["train"]["seeds"]
RUNS = settings.all_runs(config)
# per-run path patterns, wildcards as field values
SCRATCH_RUN = Run("{survey}", "{model}", "{seed}")
TRANSFER_RUN = Run("{survey}", "{model}", "{seed}", "{source}")  # the 'frozen' mode, paths as before modes
TRANSFER_MODE_RUN = Run("{survey}", "{model}", "{seed}", "{source}", "{mode}")  # the other modes
TRANSFER_MODES = settings.transfer_modes(config)


wildcard_constraints:
    survey="|".join(SURVEYS),
    source="|".join(SURVEYS),
    model="[a-z0-9_]+",
    seed=r"\d+",
    split="[A-Za-z0-9_-]+",
    mode="finetune|random_frozen",


def check_names():
    """Unknown models, bad transfer settings and (for a mirror) unmirrored surveys, before any job runs."""
    from rgmorph import models

    problems = config_check.results_dir_problems(RESULTS)
    problems += config_check.model_problems(MODELS, models.variants())
    problems += config_check.transfer_problems(config["transfer"], models.variants(), models.available())
    problems += config_check.position_problems(config)
    # The mirror matters only while some survey still has to be fetched.
    if not all(os.path.exists(layout.manifest(RESULTS, survey)) for survey in SURVEYS):
        problems += config_check.mirror_problems(config)
    config_check.raise_if_any(problems, "config")


check_names()


def seed_files(run, name):
    """One path per seed of a training job (a job trains every seed of a run at once)."""
    return [Run(run.survey, run.model, seed, run.pretrained_on, run.mode).file(RESULTS, name) for seed in SEEDS]


def seed_logs(run, stage):
    return [Run(run.survey, run.model, seed, run.pretrained_on, run.mode).log(RESULTS, stage) for seed in SEEDS]


def run_files(name):
    """``name`` (checkpoint.pt, history.csv, metrics.json, predictions.csv) of every run of the study."""
    return [run.file(RESULTS, name) for run in RUNS]


def survey_settings(wildcards):
    survey = config["surveys"][wildcards.survey]
    return {"key": wildcards.survey, "skyview_name": survey["skyview_name"], "pixels": survey["pixels"]}


def scratch_settings(wildcards):
    return settings.model_settings(config, wildcards.model)


def transfer_settings(wildcards):
    return settings.transfer_settings(config, wildcards.model)


def _mode_layers(wildcards):
    return settings.mode_layers(config, wildcards.model, wildcards.get("mode", "frozen"))


def frozen_layers(wildcards):
    return _mode_layers(wildcards)[0]


def reinitialised_layers(wildcards):
    return _mode_layers(wildcards)[1]


def all_datasets(wildcards):
    return [layout.dataset(RESULTS, survey) for survey in SURVEYS]


def all_metrics(wildcards):
    return run_files("metrics.json")


def all_predictions(wildcards):
    return run_files("predictions.csv")


def all_histories(wildcards):
    return run_files("history.csv")


def example_run(name):
    """One file per survey of the first model and seed: the run the saliency figure explains."""
    return [Run(survey, MODELS[0], SEEDS[0]).file(RESULTS, name) for survey in SURVEYS]


def first_model_predictions(wildcards):
    """Every seed of the first model on every survey, for the most-confident-errors gallery."""
    return [Run(survey, MODELS[0], seed).file(RESULTS, "predictions.csv") for survey in SURVEYS for seed in SEEDS]


def table_names():
    return ["main", "transfer", "published"]


def compares_modes():
    """Whether the study fine-tunes in more than one transfer mode (then transfer_modes joins the outputs)."""
    return bool(settings.transfer_runs(config)) and len(TRANSFER_MODES) > 1


def referee_tables():
    return ["paired_comparisons.csv", "ensembles.csv", "confounds.csv", "neighbours.csv"] + (
        ["transfer_modes.csv"] if compares_modes() else [])


def figure_names():
    return [
        "gallery", "preprocessing", "augmentation", "learning_curves", "confusion_matrices", "roc_curves",
        "variant_comparison", "transfer_comparison", "saliency", "confident_errors", "confounds",
    ] + (["transfer_modes"] if compares_modes() else [])


def final_outputs():
    return [
        layout.table(RESULTS, "runs.csv"),
        layout.table(RESULTS, "summary.csv"),
        *[layout.table(RESULTS, f"summary_{split}.csv") for split in config["evaluate"]["extra_splits"]],
        *[layout.table(RESULTS, name) for name in referee_tables()],
        *[layout.table(RESULTS, f"{name}_table.{ext}") for name in table_names() for ext in ("csv", "tex", "html")],
        *[layout.figure(RESULTS, name, ext) for name in figure_names() for ext in ("png", "pdf")],
        *([layout.table(RESULTS, "split_spread.csv")] if config["splits"]["seeds"] else []),
    ]


# self-supervised pre-training (pretrain.smk)
def pretrain_mirrors():
    """pretrain.mirror_dir, else the study's own mirror(s) as the fetch reads them ($RGMORPH_SKYVIEW_MIRROR first)."""
    return mirror_dirs(config["pretrain"]["mirror_dir"] or mirror_setting(config["fetch"]["mirror_dir"]))


def self_supervised_checkpoints(wildcards):
    """The pre-trained network of each seed, for networks (a fitted estimator has nothing to pre-train)."""
    if models.is_estimator(wildcards.model):
        return []
    return [f"{RESULTS}/pretrain/{wildcards.survey}/{wildcards.model}/seed{seed}/pretrained.pt" for seed in SEEDS]
