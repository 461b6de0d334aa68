import os

from snakemake.utils import min_version, validate

from rgmorph import config_check

min_version("9.0")


# Our own pass first: one line per problem naming the dotted key, instead of a schema dump.
config_check.raise_if_any(
    config_check.schema_problems(config, workflow.source_path("../schemas/config.schema.yaml")), "config"
)
validate(config, schema="../schemas/config.schema.yaml", set_default=True)

RESULTS = config["results_dir"]
SURVEYS = list(config["surveys"])
MODELS = config["train"]["models"]
SEEDS = config["train"]["seeds"]


wildcard_constraints:
    survey="|".join(SURVEYS),
    model="[a-z0-9_]+",
    seed=r"\d+",


def check_names():
    """Unknown models, and (for a mirror) a missing index or unmirrored surveys, before any job runs."""
    from rgmorph import models

    problems = config_check.model_problems(MODELS, models.variants())
    # The mirror matters only while some survey still has to be fetched.
    if not all(os.path.exists(f"{RESULTS}/cutouts/{survey}/manifest.csv") for survey in SURVEYS):
        problems += config_check.mirror_problems(config)
    config_check.raise_if_any(problems, "config")


check_names()


def survey_settings(wildcards):
    return {"key": wildcards.survey, **config["surveys"][wildcards.survey]}


def train_settings():
    settings = {key: value for key, value in config["train"].items() if key not in ("models", "seeds", "model_options", "threads")}
    settings["augment"] = config["augment"]
    return settings


def model_options(wildcards):
    return config["train"]["model_options"].get(wildcards.model, {})


def run_files(name):
    """One path per (survey, model, seed) for a per-run file such as 'metrics.json'."""
    folder = "models" if name in ("checkpoint.pt", "history.csv") else "evaluation"
    return expand(
        f"{RESULTS}/{folder}/{{survey}}/{{model}}/seed{{seed}}/{name}",
        survey=SURVEYS,
        model=MODELS,
        seed=SEEDS,
    )


def gallery_datasets(wildcards):
    return expand(f"{RESULTS}/datasets/{{survey}}.npz", survey=SURVEYS)


def evaluation_files(name):
    """Per-run files of every evaluated run: the from-scratch runs, plus those a rule file adds by
    defining ``extra_run_files(name)`` (e.g. transfer-learning runs), so summaries and figures see all."""
    files = run_files(name)
    extra = globals().get("extra_run_files")
    return files + [path for path in (extra(name) if extra else []) if path not in files]


def all_metrics(wildcards):
    return evaluation_files("metrics.json")


def all_predictions(wildcards):
    return evaluation_files("predictions.csv")


def all_histories(wildcards):
    return evaluation_files("history.csv")


def example_run(name):
    """One file per survey of the first model and seed: the run the saliency figure explains."""
    folder = "models" if name == "checkpoint.pt" else "evaluation"
    return expand(f"{RESULTS}/{folder}/{{survey}}/{MODELS[0]}/seed{SEEDS[0]}/{name}", survey=SURVEYS)


def first_model_predictions(wildcards):
    """Every seed of the first model on every survey, for the most-confident-errors gallery."""
    return expand(f"{RESULTS}/evaluation/{{survey}}/{MODELS[0]}/seed{{seed}}/predictions.csv", survey=SURVEYS, seed=SEEDS)


def table_names():
    return ["main", "transfer", "published"]


def figure_names():
    return [
        "gallery", "preprocessing", "augmentation", "learning_curves", "confusion_matrices", "roc_curves",
        "variant_comparison", "transfer_comparison", "saliency", "confident_errors",
    ]


def final_outputs():
    return [
        f"{RESULTS}/tables/runs.csv",
        f"{RESULTS}/tables/summary.csv",
        *expand(f"{RESULTS}/tables/{{name}}_table.{{ext}}", name=table_names(), ext=["csv", "tex", "html"]),
        *expand(f"{RESULTS}/figures/{{name}}.{{ext}}", name=figure_names(), ext=["png", "pdf"]),
    ]
