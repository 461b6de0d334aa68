rule figure_gallery:
    input:
        datasets=gallery_datasets,
    output:
        multiext(f"{RESULTS}/figures/gallery", ".png", ".pdf"),
    params:
        per_class=config["figures"]["gallery_per_class"],
        seed=config["figures"]["seed"],
    log:
        f"{RESULTS}/logs/figures/gallery.log",
    script:
        "../scripts/figures.py"


rule figure_preprocessing:
    input:
        dataset=f"{RESULTS}/datasets/{SURVEYS[0]}.npz",
        manifest=f"{RESULTS}/cutouts/{SURVEYS[0]}/manifest.csv",
    output:
        multiext(f"{RESULTS}/figures/preprocessing", ".png", ".pdf"),
    params:
        sigma=config["preprocess"]["sigma"],
    log:
        f"{RESULTS}/logs/figures/preprocessing.log",
    script:
        "../scripts/figures.py"


rule figure_augmentation:
    input:
        dataset=f"{RESULTS}/datasets/{SURVEYS[0]}.npz",
    output:
        multiext(f"{RESULTS}/figures/augmentation", ".png", ".pdf"),
    params:
        augment=config["augment"],
        seed=config["figures"]["seed"],
    log:
        f"{RESULTS}/logs/figures/augmentation.log",
    script:
        "../scripts/figures.py"


rule figure_learning_curves:
    input:
        histories=run_files("history.csv"),
    output:
        multiext(f"{RESULTS}/figures/learning_curves", ".png", ".pdf"),
    log:
        f"{RESULTS}/logs/figures/learning_curves.log",
    script:
        "../scripts/figures.py"


rule figure_confusion_matrices:
    input:
        metrics=run_files("metrics.json"),
    output:
        multiext(f"{RESULTS}/figures/confusion_matrices", ".png", ".pdf"),
    log:
        f"{RESULTS}/logs/figures/confusion_matrices.log",
    script:
        "../scripts/figures.py"


rule figure_roc_curves:
    input:
        predictions=run_files("predictions.csv"),
    output:
        multiext(f"{RESULTS}/figures/roc_curves", ".png", ".pdf"),
    log:
        f"{RESULTS}/logs/figures/roc_curves.log",
    script:
        "../scripts/figures.py"
