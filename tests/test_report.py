"""The HTML report: every figure and table is flagged with a caption that renders; a report built here holds
every figure byte for byte with its caption (no browser needed); a real headless browser (Debian's chromium),
where there is one, shows the report's images."""

import base64
import importlib.util
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import jinja2
import pytest
import yaml
from docutils.core import publish_parts

from conftest import REPO
from rgmorph import settings

RULES = REPO / "workflow" / "rules"
CAPTIONS = REPO / "workflow" / "report"
SCREENSHOT_SCRIPT = REPO / "scripts" / "screenshot_report.py"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _names(function: str) -> list[str]:
    source = (RULES / "common.smk").read_text()
    body = source[source.index(f"def {function}():"):]
    body = body[:body.index("\n\n\n")]
    return re.findall(r'"([a-z_]+)"', body)


def _flagged() -> dict[str, str]:
    """output path pattern -> caption file, for every report(...) in the rule files."""
    text = "".join(path.read_text() for path in RULES.glob("*.smk"))
    return dict(re.findall(r'report\(\s*f"\{RESULTS\}/([^"]+)",\s*caption="\.\./report/([^"]+)"', text))


class _Config:
    """What a caption sees as ``snakemake`` (config only, as in the report)."""

    def __init__(self, config):
        self.config = config


def _render(caption: Path, config: dict) -> str:
    text = jinja2.Environment(undefined=jinja2.StrictUndefined).from_string(caption.read_text())
    rst = text.render(snakemake=_Config(config))
    parts = publish_parts(rst, writer="html", settings_overrides={"report_level": 2, "halt_level": 2})
    return parts["body"]


def test_every_figure_and_table_is_in_the_report_with_a_caption():
    flagged = _flagged()
    for name in _names("figure_names"):
        assert flagged.get(f"figures/{name}.png") == f"{name}.rst", name
    for name in _names("table_names"):
        for ext in ("html", "tex", "csv"):
            assert flagged.get(f"tables/{name}_table.{ext}") == f"table_{name}.rst", (name, ext)
    assert flagged["tables/runs.csv"] == "runs.rst" and flagged["tables/summary.csv"] == "summary.rst"
    assert 'report: "../report/workflow.rst"' in (RULES / "report.smk").read_text()
    assert 'include: "workflow/rules/report.smk"' in (REPO / "Snakefile").read_text()


@pytest.mark.parametrize("config_file", ["config.yaml", "quickstart.yaml"])
def test_captions_render_and_state_data_seeds_and_split(config_file):
    config = yaml.safe_load((REPO / "config" / config_file).read_text())
    config.setdefault("figures", {"seed": 0, "gallery_per_class": 3})
    config.setdefault("preprocess", {"sigma": 3.0})
    seeds = len(config["train"]["seeds"])
    for caption in sorted(CAPTIONS.glob("*.rst")):
        html = _render(caption, config)  # halt_level 2: any rst warning fails
        assert len(html) > 200, caption.name
        if caption.stem in _names("figure_names") or caption.stem.startswith("table_"):
            assert config["catalogue"]["path"] in html, caption.name  # the data
            assert "split" in html.lower(), caption.name
        if caption.stem in ("learning_curves", "confusion_matrices", "roc_curves", "variant_comparison",
                            "transfer_comparison", "table_main", "table_transfer", "confident_errors"):
            assert f"{seeds}" in html and "seed" in html.lower(), caption.name


def _figure_report(folder: Path, config: dict) -> Path:
    """A Snakemake report holding one PNG per figure the workflow flags, each under the caption file its rule
    names, made with the project's figure style; returns the report's path."""
    import matplotlib.pyplot as plt

    results = config["results_dir"]
    rules = []
    for name in _names("figure_names"):
        figure, axis = plt.subplots(figsize=(3, 2))
        axis.set_title(name)  # each image its own bytes
        figure.savefig(folder / f"{name}.png", dpi=60)
        plt.close(figure)
        caption = CAPTIONS / _flagged()[f"figures/{name}.png"]
        rules.append(f"rule figure_{name}:\n    input: '{name}.png'\n"
                     f"    output: report('{results}/figures/{name}.png', caption='{caption}', category='Figures')\n"
                     "    shell: 'cp {input} {output}'\n")
    (folder / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    (folder / "Snakefile").write_text(
        f"configfile: 'config.yaml'\nreport: '{CAPTIONS / 'workflow.rst'}'\n\n"
        f"rule all:\n    input: {[f'{results}/figures/{name}.png' for name in _names('figure_names')]!r}\n\n"
        + "\n".join(rules))
    snakemake = [sys.executable, "-m", "snakemake", "--cores", "1", "--directory", str(folder)]
    for extra in ([], ["--report", str(folder / "report.html")]):
        result = subprocess.run([*snakemake, *extra], capture_output=True, text=True, cwd=folder)
        assert result.returncode == 0, result.stderr[-3000:]
    return folder / "report.html"


def _embedded_results(report: Path) -> dict:
    """What a Snakemake report embeds: {path: {name, caption (HTML), data_uri, ...}} (its ``var results``)."""
    html = report.read_text()
    script = html[html.index('<script id="results">'):]
    return json.loads(re.search(r"var results = (\{.*?\});\s*</script>", script, flags=re.DOTALL)[1])


def _text(html: str) -> str:
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())


def test_the_report_holds_every_figure_as_the_image_written_with_its_caption(tmp_path):
    config = settings.load([REPO / "config" / "quickstart.yaml"])
    embedded = _embedded_results(_figure_report(tmp_path, config))
    for name in _names("figure_names"):
        entry = embedded[f"{config['results_dir']}/figures/{name}.png"]
        header, data = entry["data_uri"].split(",", 1)
        assert header.startswith("data:image/png") and header.endswith(";base64"), name
        assert base64.b64decode(data) == (tmp_path / f"{name}.png").read_bytes(), name
        caption = CAPTIONS / _flagged()[f"figures/{name}.png"]
        assert _text(entry["caption"]) == _text(_render(caption, config)), name
    assert len(embedded) == len(_names("figure_names"))


def _load_screenshot_module():
    spec = importlib.util.spec_from_file_location("screenshot_report", SCREENSHOT_SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def toy_report(tmp_path_factory):
    """A two-figure Snakemake report made with this project's figure style and caption mechanism."""
    folder = tmp_path_factory.mktemp("toy-report")
    (folder / "caption.rst").write_text("A figure for seed {{ snakemake.wildcards.seed }}, test split.\n")
    (folder / "front.rst").write_text("Toy report\n==========\n\nTwo figures.\n")
    (folder / "Snakefile").write_text(
        'report: "front.rst"\n\n'
        "rule all:\n    input: expand('figures/seed{seed}.png', seed=[0, 1])\n\n"
        "rule plot:\n"
        "    output: report('figures/seed{seed}.png', caption='caption.rst', category='Figures')\n"
        "    run:\n"
        "        import matplotlib\n        matplotlib.use('Agg')\n"
        "        from rgmorph.figures.style import save_figure\n"
        "        import matplotlib.pyplot as plt\n"
        "        figure, axis = plt.subplots()\n"
        "        axis.plot([0, 1], [0, int(wildcards.seed) + 1])\n"
        "        axis.set_xlabel('x (unit)')\n"
        "        save_figure(figure, output[0].removesuffix('.png'))\n")
    snakemake = [sys.executable, "-m", "snakemake", "--cores", "1", "--directory", str(folder), "--snakefile",
                 str(folder / "Snakefile")]
    for extra in ([], ["--report", str(folder / "report.html")]):
        result = subprocess.run([*snakemake, *extra], capture_output=True, text=True)
        assert result.returncode == 0, result.stderr[-3000:]
    return folder / "report.html"


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (apt-get install -y chromium)")
def test_a_headless_browser_shows_the_report_images(toy_report, tmp_path):
    records = _load_screenshot_module().capture(toy_report, tmp_path / "shots", CHROMIUM)
    images = [record for record in records if record.get("mime") == "image/png"]
    assert [record["name"] for record in images] == ["seed0.png", "seed1.png"]
    assert all(record["shown"] and record["natural_size"][0] > 500 for record in images)
    assert "test split" in images[0]["caption"]
    for record in records:
        shot = tmp_path / "shots" / record["screenshot"]
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000


QUICKSTART_REPORT = REPO / "results" / "quickstart" / "report.html"


@pytest.mark.skipif(CHROMIUM is None or not QUICKSTART_REPORT.is_file(),
                    reason="needs chromium and the quick start's report (make quickstart)")
def test_the_quickstart_report_shows_every_figure(tmp_path):
    records = _load_screenshot_module().capture(QUICKSTART_REPORT, tmp_path / "shots", CHROMIUM)
    shown = {record["name"] for record in records if record.get("mime") == "image/png" and record["shown"]}
    assert shown == {f"{name}.png" for name in _names("figure_names")}
    tables = {record["name"] for record in records if record.get("mime") == "text/html" and record["shown"]}
    assert tables == {f"{name}_table.html" for name in _names("table_names")}


def test_every_referee_table_is_in_the_report_with_its_caption():
    flagged = _flagged()
    for name in _names("referee_tables"):
        assert flagged.get(f"tables/{name}") == name.replace(".csv", ".rst"), name
    assert flagged["figures/confounds.png"] == "confounds.rst"


def _placeholders(results: Path, config_file: str) -> None:
    """A stand-in file for every output of the plan not made yet (the report needs them all to exist)."""
    import matplotlib.pyplot as plt

    plan = subprocess.run([sys.executable, "-m", "snakemake", "--summary", "--configfile", config_file,
                           "--config", f"results_dir={results}"], cwd=REPO, capture_output=True, text=True, check=True)
    for line in plan.stdout.splitlines()[1:]:
        path, *_, status, _ = line.split("\t")
        if status != "missing":
            continue
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        if path.endswith(".png"):
            plt.imsave(path, [[0.0, 1.0]])
        else:
            Path(path).write_text("a,b\n1,2\n")


def test_the_quickstart_report_builds_with_the_referee_tables(tmp_path):
    """The workflow's own rules and captions, quick start config: the catalogue stage and the neighbours table for
    real, every other output a stand-in; snakemake --report then embeds each referee table under its caption."""
    results = tmp_path / "results"
    snakemake = [sys.executable, "-m", "snakemake", "--configfile", "config/quickstart.yaml",
                 "--config", f"results_dir={results}"]
    made = subprocess.run([*snakemake, "--cores", "1", "--", f"{results}/tables/neighbours.csv"], cwd=REPO,
                          capture_output=True, text=True)
    assert made.returncode == 0, made.stderr[-3000:]
    _placeholders(results, "config/quickstart.yaml")
    report = subprocess.run([*snakemake, "--report", str(tmp_path / "report.html")], cwd=REPO, capture_output=True,
                            text=True)
    assert report.returncode == 0, report.stderr[-3000:]
    embedded = _embedded_results(tmp_path / "report.html")
    config = settings.load([REPO / "config" / "quickstart.yaml"])
    for name in ("tables/neighbours.csv", "tables/paired_comparisons.csv", "tables/confounds.csv",
                 "figures/confounds.png"):
        entry = embedded[f"{results}/{name}"]
        assert _text(entry["caption"]) == _text(_render(CAPTIONS / _flagged()[name], {**config,
                                                                                      "results_dir": str(results)}))
    _, data = embedded[f"{results}/tables/neighbours.csv"]["data_uri"].split(",", 1)
    assert base64.b64decode(data) == (results / "tables" / "neighbours.csv").read_bytes()
