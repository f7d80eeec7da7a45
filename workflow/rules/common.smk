# Shared helpers: paths, the per-stage options passed to `ksdiff`, and the clip
# lists that come from the manifest checkpoint. No stage logic lives here.
import json
import shlex
import sys

import pyarrow.parquet as pq

DATASETS = {d["name"]: d for d in config["datasets"]}
RESULTS = config["results_dir"]
MODELS = config["models_dir"]
PREDICTIONS = config["predictions_dir"]
METRICS = config["metrics_dir"]
REPORTS = config["reports_dir"]
LOGS = config["logs_dir"]


def _ksdiff_command():
    """`python -m ksdiff` of the rule's environment: the conda env's under
    --sdm conda, else the interpreter running Snakemake (the project's venv)."""
    try:
        methods = {str(m).lower() for m in workflow.deployment_settings.deployment_method}
    except AttributeError:
        methods = set()
    if any("conda" in m for m in methods):
        return "python -m ksdiff"
    return f"{shlex.quote(sys.executable)} -m ksdiff"


KSDIFF = _ksdiff_command()

# Top-level keys every stage may read; each rule adds the sections it uses, so
# changing one stage's options reruns that stage (Snakemake tracks params).
_GLOBAL_KEYS = ["datasets", "fps", "sample_rate", "results_dir"]


def opts(*sections):
    sub = {k: config[k] for k in _GLOBAL_KEYS}
    for s in sections:
        sub[s] = config[s]
    return shlex.quote(json.dumps(sub, sort_keys=True))


wildcard_constraints:
    dataset="[A-Za-z0-9_-]+",
    clip="[A-Za-z0-9_.-]+",


def dataset_root(wildcards):
    return DATASETS[wildcards.dataset]["root"]


def synth_marker(wildcards):
    d = DATASETS[wildcards.dataset]
    return [f"{d['root'].rstrip('/')}/.complete"] if d["synthetic"] else []


def manifest_clips(dataset):
    """Clip ids of a dataset, known once its manifest checkpoint has run."""
    path = checkpoints.manifest.get(dataset=dataset).output[0]
    return pq.read_table(path, columns=["clip_id"]).column("clip_id").to_pylist()


def per_clip(*patterns):
    """Input function: each pattern (with {dataset} and {clip}) for every clip of the dataset."""

    def inputs(wildcards):
        clips = manifest_clips(wildcards.dataset)
        return [p.format(dataset=wildcards.dataset, clip=c) for p in patterns for c in clips]

    return inputs


def all_targets():
    targets = []
    for name in DATASETS:
        targets += [f"{RESULTS}/{name}/qc.parquet", f"{RESULTS}/{name}/stats.parquet"]
    return targets
