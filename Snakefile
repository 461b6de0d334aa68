# rgmorph: radio-galaxy morphology classification (Tang, Scaife & Leahy 2019 and the variants after it).
# The method, in order: catalogue -> fetch -> preprocess -> train (and transfer) -> evaluate -> figures.
# A study is one config file: `snakemake --configfile config/<study>.yaml` runs exactly that study
# (schema defaults for the rest); without --configfile, the paper's study config/config.yaml.


if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"


# A config with a top-level "classify" key is a classify study (docs/classify.md): only its rules run.
if "classify" not in config:

    include: "workflow/rules/common.smk"
    include: "workflow/rules/catalogue.smk"
    include: "workflow/rules/fetch.smk"
    include: "workflow/rules/preprocess.smk"
    include: "workflow/rules/train.smk"
    include: "workflow/rules/transfer.smk"
    include: "workflow/rules/pretrain.smk"
    include: "workflow/rules/evaluate.smk"
    include: "workflow/rules/referee.smk"
    include: "workflow/rules/splits.smk"
    include: "workflow/rules/figures.smk"
    include: "workflow/rules/report.smk"

    rule all:
        default_target: True
        input:
            final_outputs(),

else:

    include: "workflow/rules/classify.smk"

    rule classify_all:
        default_target: True
        input:
            CLASSIFY_OUTPUTS,
