import os

from snakemake.utils import min_version, validate

min_version("9.0")


validate(config, schema="../schemas/config.schema.yaml", set_default=True)

RESULTS = config["results_dir"]
SURVEYS = list(config["surveys"])
MODELS = config["train"]["models"]
SEEDS = config["train"]["seeds"]


wildcard_constraints:
    survey="|".join(SURVEYS),
    model="[a-z0-9_]+",
    seed=r"\d+",


def check_model_names():
    from rgmorph import models

    unknown = sorted(set(MODELS) - set(models.available()))
    if unknown:
        raise ValueError(
            f"config train.models: unknown model(s) {unknown}; available: {models.available()}"
        )


check_model_names()


def fetch_settings():
    """Fetch options from the config; environment variables override the source locations."""
    settings = dict(config["fetch"])
    settings["mirror_dir"] = os.environ.get("RGMORPH_SKYVIEW_MIRROR", settings["mirror_dir"])
    settings["skyview_url"] = os.environ.get("RGMORPH_SKYVIEW_URL", settings["skyview_url"])
    return settings


def survey_settings(wildcards):
    return {"key": wildcards.survey, **config["surveys"][wildcards.survey]}


def train_settings():
    settings = {key: value for key, value in config["train"].items() if key not in ("models", "seeds", "model_options")}
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


def figure_names():
    return ["gallery", "preprocessing", "augmentation", "learning_curves", "confusion_matrices", "roc_curves"]


def final_outputs():
    return [
        f"{RESULTS}/tables/summary.csv",
        *expand(f"{RESULTS}/figures/{{name}}.{{ext}}", name=figure_names(), ext=["png", "pdf"]),
    ]
