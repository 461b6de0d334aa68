# The HTML report: `snakemake --report results/report.html` after a run (see workflow/report/).
# Every figure and table rule flags its outputs with report(..., caption=...); this is the front page.


report: "../report/workflow.rst"
