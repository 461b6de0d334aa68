# Classify study: an unlabelled catalogue -> per-source class probabilities (mean and std over seeds),
# predictive entropy and an energy-score OOD flag, from the checkpoints of a study trained here or of a
# shipped model (classify.study.models: resources/models/<name>, whose card gives the OOD threshold).
# Included by the Snakefile instead of the training rules when the config has a top-level 'classify' key.
# The catalogue is cut into shards of classify.shard_size rows at parse time; each shard runs
# fetch -> preprocess -> classify as its own jobs under <results_dir>/classify/shards/<k>/ (every file
# written atomically), so an interrupted run redoes only unfinished shards and memory stays bounded
# by the shard size. See docs/classify.md.
import os

from snakemake.exceptions import WorkflowError
from snakemake.utils import min_version, validate

from rgmorph import classify as classify_lib
from rgmorph import layout, shipped

min_version("9.0")


validate(config, schema="../schemas/classify.schema.yaml", set_default=True)

CLASSIFY = config["classify"]
STUDY = CLASSIFY["study"]
SHIPPED = shipped.ShippedModel.load(STUDY["models"]).verified() if STUDY.get("models") else None
if SHIPPED:
    # the card fixes what the models were trained on; the classify section's own values would not match it
    STUDY.update(survey=SHIPPED.card["survey"], model=SHIPPED.card["model"], seeds=SHIPPED.card["seeds"])
    CLASSIFY["survey"].update(skyview_name=SHIPPED.card["skyview_name"], pixels=SHIPPED.card["pixels"])
    CLASSIFY["preprocess"] = SHIPPED.card["preprocess"]
    if not CLASSIFY["results_dir"] or "check" in CLASSIFY:
        raise WorkflowError("with classify.study.models (a shipped model) set classify.results_dir, and leave out "
                            "classify.check (it needs the training study's results)")
CLASSIFY_OUT = layout.classify(CLASSIFY["results_dir"] or STUDY["results_dir"])
SHARD_DIR = f"{CLASSIFY_OUT}/shards/{{shard}}"
if not os.path.isfile(CLASSIFY["catalogue"]["path"]):
    raise WorkflowError(f"classify.catalogue.path {CLASSIFY['catalogue']['path']} is not a file")
SHARDS = list(range(classify_lib.shard_count(classify_lib.catalogue_rows(CLASSIFY["catalogue"]["path"]),
                                             CLASSIFY["shard_size"])))
# what the Snakefile's classify_all (the default target of a classify study) asks for
CLASSIFY_OUTPUTS = [f"{CLASSIFY_OUT}/classifications.csv", f"{CLASSIFY_OUT}/summary.json"]
CHECKPOINTS = (SHIPPED.checkpoint_paths() if SHIPPED else
               classify_lib.checkpoint_paths(STUDY["results_dir"], STUDY["survey"], STUDY["model"], STUDY["seeds"]))


wildcard_constraints:
    shard=r"\d+",


rule classify_catalogue:
    input:
        catalogue=CLASSIFY["catalogue"]["path"],
    output:
        sources=f"{CLASSIFY_OUT}/catalogue.csv",
    params:
        columns=CLASSIFY["catalogue"]["columns"],
        carry=CLASSIFY["catalogue"]["carry"],
    log:
        f"{CLASSIFY_OUT}/logs/catalogue.log",
    conda:
        "../../envs/rgmorph.yaml"
    script:
        "../scripts/classify_catalogue.py"


rule classify_shard_sources:
    input:
        sources=f"{CLASSIFY_OUT}/catalogue.csv",
    output:
        sources=f"{SHARD_DIR}/sources.csv",
    params:
        shard_size=CLASSIFY["shard_size"],
    log:
        f"{CLASSIFY_OUT}/logs/shards/{{shard}}/sources.log",
    conda:
        "../../envs/rgmorph.yaml"
    script:
        "../scripts/classify_shard_sources.py"


rule classify_fetch:
    input:
        sources=f"{SHARD_DIR}/sources.csv",
    output:
        manifest=f"{SHARD_DIR}/cutouts/manifest.csv",
    params:
        survey={"key": STUDY["survey"], **CLASSIFY["survey"]},
    log:
        f"{CLASSIFY_OUT}/logs/shards/{{shard}}/fetch.log",
    conda:
        "../../envs/rgmorph.yaml"
    script:
        "../scripts/classify_fetch.py"


rule classify_preprocess:
    input:
        sources=f"{SHARD_DIR}/sources.csv",
        manifest=f"{SHARD_DIR}/cutouts/manifest.csv",
    output:
        dataset=f"{SHARD_DIR}/images.npz",
    params:
        preprocess=CLASSIFY["preprocess"],
        survey=STUDY["survey"],
    log:
        f"{CLASSIFY_OUT}/logs/shards/{{shard}}/preprocess.log",
    conda:
        "../../envs/rgmorph.yaml"
    script:
        "../scripts/classify_preprocess.py"


if SHIPPED:

    rule classify_shipped_threshold:
        input:
            card=f"{SHIPPED.folder}/{shipped.CARD}",
        output:
            threshold=f"{CLASSIFY_OUT}/ood_threshold.json",
        log:
            f"{CLASSIFY_OUT}/logs/threshold.log",
        conda:
            "../../envs/rgmorph.yaml"
        script:
            "../scripts/classify_shipped_threshold.py"

else:

    rule classify_threshold:
        input:
            checkpoints=CHECKPOINTS,
            dataset=f"{STUDY['results_dir']}/datasets/{STUDY['survey']}.npz",
        output:
            threshold=f"{CLASSIFY_OUT}/ood_threshold.json",
            energies=f"{CLASSIFY_OUT}/validation_energies.csv",
        params:
            percentile=CLASSIFY["ood"]["percentile"],
            batch_size=CLASSIFY["batch_size"],
            device=CLASSIFY["device"],
        threads: CLASSIFY["threads"]
        log:
            f"{CLASSIFY_OUT}/logs/threshold.log",
        conda:
            "../../envs/rgmorph.yaml"
        script:
            "../scripts/classify_threshold.py"


rule classify_shard:
    input:
        sources=f"{SHARD_DIR}/sources.csv",
        manifest=f"{SHARD_DIR}/cutouts/manifest.csv",
        dataset=f"{SHARD_DIR}/images.npz",
        threshold=f"{CLASSIFY_OUT}/ood_threshold.json",
        checkpoints=CHECKPOINTS,
    output:
        table=f"{SHARD_DIR}/classifications.csv",
    params:
        batch_size=CLASSIFY["batch_size"],
        device=CLASSIFY["device"],
    threads: CLASSIFY["threads"]
    log:
        f"{CLASSIFY_OUT}/logs/shards/{{shard}}/classify.log",
    conda:
        "../../envs/rgmorph.yaml"
    script:
        "../scripts/classify_shard.py"


rule classify_collect:
    input:
        tables=expand(f"{CLASSIFY_OUT}/shards/{{shard}}/classifications.csv", shard=SHARDS),
    output:
        table=f"{CLASSIFY_OUT}/classifications.csv",
        summary=f"{CLASSIFY_OUT}/summary.json",
    log:
        f"{CLASSIFY_OUT}/logs/collect.log",
    conda:
        "../../envs/rgmorph.yaml"
    script:
        "../scripts/classify_collect.py"


# classify.check (optional): the OOD score on groups of classified sources against the study's test sources
if "check" in CLASSIFY:
    CLASSIFY_OUTPUTS.append(f"{CLASSIFY_OUT}/ood_check.csv")

    rule classify_check:
        input:
            table=f"{CLASSIFY_OUT}/classifications.csv",
            sources=layout.sources(STUDY["results_dir"]),
        output:
            check=f"{CLASSIFY_OUT}/ood_check.csv",
        params:
            groups=CLASSIFY["check"]["groups"],
            label_column=CLASSIFY["check"]["label_column"],
            reference_split=CLASSIFY["check"]["reference_split"],
            n_resamples=CLASSIFY["check"]["bootstrap_resamples"],
            seed=CLASSIFY["check"]["bootstrap_seed"],
        log:
            f"{CLASSIFY_OUT}/logs/check.log",
        conda:
            "../../envs/rgmorph.yaml"
        script:
            "../scripts/classify_check.py"
