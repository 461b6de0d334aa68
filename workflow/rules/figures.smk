# One rule and one script per figure; each PNG goes into the report with its caption
# (workflow/report/<name>.rst), the PDF beside it is for the paper.


rule figure_gallery:
    input:
        datasets=all_datasets,
    output:
        png=report(f"{RESULTS}/figures/gallery.png", caption="../report/gallery.rst", category="Figures", subcategory="1. Data"),
        pdf=f"{RESULTS}/figures/gallery.pdf",
    params:
        per_class=config["figures"]["gallery_per_class"],
        seed=config["figures"]["seed"],
    log:
        f"{RESULTS}/logs/figures/gallery.log",
    conda:
        "../../envs/rgmorph.yaml"
    script:
        "../scripts/figures/gallery.py"


rule figure_preprocessing:
    input:
        dataset=f"{RESULTS}/datasets/{SURVEYS[0]}.npz",
        manifest=f"{RESULTS}/cutouts/{SURVEYS[0]}/manifest.csv",
    output:
        png=report(f"{RESULTS}/figures/preprocessing.png", caption="../report/preprocessing.rst", category="Figures", subcategory="1. Data"),
        pdf=f"{RESULTS}/figures/preprocessing.pdf",
    params:
        sigma=config["preprocess"]["sigma"],
    log:
        f"{RESULTS}/logs/figures/preprocessing.log",
    conda:
        "../../envs/rgmorph.yaml"
    script:
        "../scripts/figures/preprocessing.py"


rule figure_augmentation:
    input:
        dataset=f"{RESULTS}/datasets/{SURVEYS[0]}.npz",
    output:
        png=report(f"{RESULTS}/figures/augmentation.png", caption="../report/augmentation.rst", category="Figures", subcategory="1. Data"),
        pdf=f"{RESULTS}/figures/augmentation.pdf",
    params:
        augment=config["augment"],
        seed=config["figures"]["seed"],
    log:
        f"{RESULTS}/logs/figures/augmentation.log",
    conda:
        "../../envs/rgmorph.yaml"
    script:
        "../scripts/figures/augmentation.py"


rule figure_learning_curves:
    input:
        histories=all_histories,
    output:
        png=report(f"{RESULTS}/figures/learning_curves.png", caption="../report/learning_curves.rst", category="Figures", subcategory="2. Training"),
        pdf=f"{RESULTS}/figures/learning_curves.pdf",
    log:
        f"{RESULTS}/logs/figures/learning_curves.log",
    conda:
        "../../envs/rgmorph.yaml"
    script:
        "../scripts/figures/learning_curves.py"


rule figure_confusion_matrices:
    input:
        metrics=all_metrics,
    output:
        png=report(f"{RESULTS}/figures/confusion_matrices.png", caption="../report/confusion_matrices.rst", category="Figures", subcategory="3. Test results"),
        pdf=f"{RESULTS}/figures/confusion_matrices.pdf",
    log:
        f"{RESULTS}/logs/figures/confusion_matrices.log",
    conda:
        "../../envs/rgmorph.yaml"
    script:
        "../scripts/figures/confusion_matrices.py"


rule figure_roc_curves:
    input:
        metrics=all_metrics,
    output:
        png=report(f"{RESULTS}/figures/roc_curves.png", caption="../report/roc_curves.rst", category="Figures", subcategory="3. Test results"),
        pdf=f"{RESULTS}/figures/roc_curves.pdf",
    log:
        f"{RESULTS}/logs/figures/roc_curves.log",
    conda:
        "../../envs/rgmorph.yaml"
    script:
        "../scripts/figures/roc_curves.py"


rule figure_variant_comparison:
    input:
        runs=f"{RESULTS}/tables/runs.csv",
    output:
        png=report(f"{RESULTS}/figures/variant_comparison.png", caption="../report/variant_comparison.rst", category="Figures", subcategory="3. Test results"),
        pdf=f"{RESULTS}/figures/variant_comparison.pdf",
    log:
        f"{RESULTS}/logs/figures/variant_comparison.log",
    conda:
        "../../envs/rgmorph.yaml"
    script:
        "../scripts/figures/variant_comparison.py"


rule figure_transfer_comparison:
    input:
        runs=f"{RESULTS}/tables/runs.csv",
    output:
        png=report(f"{RESULTS}/figures/transfer_comparison.png", caption="../report/transfer_comparison.rst", category="Figures", subcategory="3. Test results"),
        pdf=f"{RESULTS}/figures/transfer_comparison.pdf",
    log:
        f"{RESULTS}/logs/figures/transfer_comparison.log",
    conda:
        "../../envs/rgmorph.yaml"
    script:
        "../scripts/figures/transfer_comparison.py"


rule figure_saliency:
    input:
        checkpoints=example_run("checkpoint.pt"),
        datasets=all_datasets,
        predictions=example_run("predictions.csv"),
    output:
        png=report(f"{RESULTS}/figures/saliency.png", caption="../report/saliency.rst", category="Figures", subcategory="4. What the models see"),
        pdf=f"{RESULTS}/figures/saliency.pdf",
    params:
        model=MODELS[0],
        seed=SEEDS[0],
    threads: 1
    log:
        f"{RESULTS}/logs/figures/saliency.log",
    conda:
        "../../envs/rgmorph.yaml"
    script:
        "../scripts/figures/saliency.py"


rule figure_confident_errors:
    input:
        predictions=first_model_predictions,
        datasets=all_datasets,
    output:
        png=report(f"{RESULTS}/figures/confident_errors.png", caption="../report/confident_errors.rst", category="Figures", subcategory="4. What the models see"),
        pdf=f"{RESULTS}/figures/confident_errors.pdf",
    params:
        model=MODELS[0],
        per_survey=6,
    log:
        f"{RESULTS}/logs/figures/confident_errors.log",
    conda:
        "../../envs/rgmorph.yaml"
    script:
        "../scripts/figures/confident_errors.py"
