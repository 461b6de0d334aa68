rule catalogue:
    input:
        catalogue=config["catalogue"]["path"],
    output:
        sources=f"{RESULTS}/catalogue/sources.csv",
    params:
        catalogue=config["catalogue"],
        class_names=config["class_names"],
    log:
        f"{RESULTS}/logs/catalogue.log",
    conda:
        "../../envs/rgmorph.yaml"
    script:
        "../scripts/catalogue.py"
