# rgmorph: radio-galaxy morphology classification on FIRST and NVSS (Tang, Scaife & Leahy 2019).
# The method, in order: catalogue -> fetch -> preprocess -> train (and transfer) -> evaluate -> figures.


configfile: "config/config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/catalogue.smk"
include: "workflow/rules/fetch.smk"
include: "workflow/rules/preprocess.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/transfer.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/figures.smk"
include: "workflow/rules/report.smk"


rule all:
    default_target: True
    input:
        final_outputs(),
