from rgmorph.catalogue import catalogue_paths
from rgmorph.neighbours import survey_fields


rule catalogue:
    input:
        catalogues=catalogue_paths(config["catalogue"]),
    output:
        sources=layout.sources(RESULTS),
        merge_report=f"{RESULTS}/catalogue/merge.json",
        neighbours=f"{RESULTS}/catalogue/neighbours.csv",
    params:
        catalogue=config["catalogue"],
        class_names=config["class_names"],
        # cutout side per survey (arcsec) for the train/test field-overlap check
        fields=survey_fields(config["surveys"], config["catalogue"]["neighbours"]),
    log:
        f"{RESULTS}/logs/catalogue.log",
    conda:
        "../../envs/rgmorph.yaml"
    script:
        "../scripts/catalogue.py"
