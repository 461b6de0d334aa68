"""The OOD threshold of a shipped model: its card's, computed at export on the training study's validation
sources (rgmorph.shipped_card), since those images do not travel with the model."""

import json

from rgmorph.files import write_json_atomic
from rgmorph.logs import logged

with logged(snakemake.log[0]) as log:
    card = json.loads(open(snakemake.input.card).read())
    percentile = snakemake.config["classify"]["ood"]["percentile"]
    if percentile != card["ood"]["percentile"]:
        log.warning("classify.ood.percentile %s ignored: the shipped model %s's threshold is its card's %sth percentile",
                    percentile, card["name"], card["ood"]["percentile"])
    record = {**card["ood"], "seeds": card["seeds"], "class_names": card["class_names"],
              "shipped_model": card["name"], "card": snakemake.input.card, "checkpoints": list(card["files"])}
    write_json_atomic(snakemake.output.threshold, record)
    log.info("OOD threshold of shipped model %s (energy, %gth percentile of %d validation sources): %.4f",
             card["name"], card["ood"]["percentile"], card["ood"]["validation_sources"], card["ood"]["threshold"])
