# ksdiff: mp4 -> Parquet tables -> trained models -> predictions -> metrics -> leaderboard.
# Each rule runs one `ksdiff <stage>` command; all logic lives in the ksdiff package.
import mimetypes

from snakemake.utils import min_version, validate

# `snakemake --report` embeds the metrics tables; Python's mimetypes does not know
# Parquet (the report would call them text/plain).
mimetypes.add_type("application/vnd.apache.parquet", ".parquet")

min_version("9.0")


configfile: "config.yaml"


validate(config, "workflow/schemas/config.schema.yaml")


include: "workflow/rules/common.smk"
include: "workflow/rules/synth.smk"
include: "workflow/rules/hdtf.smk"
include: "workflow/rules/preprocess.smk"
include: "workflow/rules/dataset.smk"
include: "workflow/rules/model.smk"
include: "workflow/rules/eval.smk"


rule all:
    input:
        all_targets(),
    default_target: True
