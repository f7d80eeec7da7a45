# Shared helpers: paths, the options passed to `ksdiff`, and the shard lists that come
# from the checkpoints' tables. What they compute lives in the package: ksdiff.plan
# (datasets, shards, texts, floors, threads) and ksdiff.stage_config (what each stage reads).
import os
import sys

from snakemake.exceptions import WorkflowError

from ksdiff import plan
from ksdiff.stage_config import opts_arg, weight_files

# The configured datasets and, per external method's videos (eval.external), a dataset
# of its own, "{dataset}-ext-{name}" (EXTERNAL_OF: pseudo-dataset -> its dataset).
DATASETS, EXTERNAL_OF = plan.datasets(config)
RESULTS = config["results_dir"]
MODELS = config["models_dir"]
PREDICTIONS = config["predictions_dir"]
METRICS = config["metrics_dir"]
REPORTS = config["reports_dir"]
LOGS = config["logs_dir"]


def use_software_env(software, basedir):
    """Put the environment holding `ksdiff` first on PATH; every rule's shell runs
    plain `ksdiff`. Chosen through the environment and not through the rules' params
    or commands, so switching between the venv and a cluster env reruns nothing.
    Returns the bin/ folder used, or None (PATH as it is, e.g. under --sdm conda,
    whose activation puts envs/ksdiff.yaml's env first anyway)."""
    venv = software["venv"]
    if venv is None:
        # The venv of the interpreter running Snakemake; a driver-only env
        # (envs/workflow.yaml) has no ksdiff, and then PATH decides.
        bindir = os.path.dirname(sys.executable)
        if not os.access(os.path.join(bindir, "ksdiff"), os.X_OK):
            return None
    else:
        bindir = os.path.join(basedir, os.path.expanduser(venv), "bin")
        if not os.access(os.path.join(bindir, "ksdiff"), os.X_OK):
            raise WorkflowError(f"software.venv: {bindir}/ksdiff is missing or not executable (install with envs/install.sh)")
    # Set here, in every Snakemake process (a cluster job re-parses this file), not
    # passed on with `envvars:`: the driver's PATH may not exist on the nodes.
    os.environ.update(PATH=bindir + os.pathsep + os.environ.get("PATH", ""))
    return bindir


use_software_env(config["software"], workflow.basedir)
# envs/ksdiff.post-deploy.sh (--sdm conda) installs ksdiff from here.
os.environ.setdefault("KSDIFF_SOURCE", workflow.basedir)


def opts(stage):
    """A rule's `--opts` param: what its stage reads (ksdiff.stage_config) and the job's own
    dataset entry, never the other datasets; so a changed option reruns exactly the jobs
    whose stage reads it, and adding or removing a dataset reruns no other dataset's job."""

    def param(wildcards):
        name = wildcards.get("dataset")
        dataset = DATASETS[name] if name else plan.dataset_of_root(config, wildcards.root)  # synth, hdtf_prepare: by root
        return opts_arg(config, stage, dataset, method=wildcards.get("method"))

    return param


wildcard_constraints:
    dataset="[A-Za-z0-9_-]+",
    clip="[A-Za-z0-9_.-]+",
    shard="[0-9]+",


# Shards are the DAG's unit for every per-clip step (ksdiff.data.shards): a job per
# shard of config["shard_size"] clips, its files still one per clip. The listing
# checkpoint says how many shards a dataset has; reading that is one Parquet footer.
def dataset_shards(dataset):
    """Shard names of a dataset, known once its listing checkpoint has run."""
    return plan.table_shards(checkpoints.listing.get(dataset=dataset).output[0])


def per_shard(*patterns):
    """Input function: each pattern (with {dataset} and {shard}) for every shard of the dataset."""

    def inputs(wildcards):
        shards = dataset_shards(wildcards.dataset)
        return [p.format(dataset=wildcards.dataset, shard=s) for p in patterns for s in shards]

    return inputs


def known_text(wildcards):
    """The `{video}.txt` files of the shard's clips (recorded in the listing), so that
    editing one reruns its shard's alignment."""
    return plan.known_texts(checkpoints.listing.get(dataset=wildcards.dataset).output[0], wildcards.shard)


def dataset_root(wildcards):
    return DATASETS[wildcards.dataset]["root"]


def synth_marker(wildcards):
    """The marker of the step filling the dataset's root first (the synthetic
    corpus, synth.smk, or raw HDTF's preparation, hdtf.smk); none for a plain folder."""
    d = DATASETS[wildcards.dataset]
    if d.get("layout") == "hdtf_raw":
        return [f"{os.path.normpath(d['root'])}/.hdtf-complete"]
    return [f"{d['root'].rstrip('/')}/.complete"] if d["synthetic"] else []


def hdtf_inputs(wildcards):
    """Raw HDTF (rules/hdtf.smk): the annotation files and the downloads folder of the dataset filling the root."""
    return plan.hdtf_inputs(plan.dataset_of_root(config, wildcards.root))


TRAINED = list(config["methods"])
BASELINES = list(config["baselines"])
EXTERNAL = dict(config["eval"]["external"])
METHODS = TRAINED + BASELINES + list(EXTERNAL)
# The floors every metric must put ground truth above (the sanity rule); only those the config runs.
FLOORS = plan.floors(config)
# Cores a training job uses (train.num_threads; 0: all), so that --cores 2 runs two one-thread trainings at once.
TRAIN_THREADS = plan.train_threads(config) or workflow.cores
# What starts a training job: `ksdiff` (one process) or torchrun (train.nproc_per_node, train.nnodes). Part of
# the shell command, not a param: the default renders the command as before, so an upgrade retrains nothing.
TRAIN_LAUNCH = plan.train_launch(config)
# The same for the SyncNet expert (eval.expert.num_threads).
EXPERT_THREADS = plan.expert_threads(config) or workflow.cores
# Which ready job runs first when cores are short (Snakemake picks the highest priority; between equals it picks
# arbitrarily): the one with the most work still to come after it, so that the run does not end on one long job
# beside an idle core. The SyncNet expert first (every score waits for it), a method's inference as soon as its
# training ends (seconds, and it makes the method's scoring ready), training, ground truth's scoring (126 s in the
# demo, then the sanity table), the other scores (about 70 s each), merging. On the jobs of a demo run made before
# this table, 2 cores, simulated over 2,000 arbitrary orders of equals (benchmarks/bench_schedule.py), the workflow
# took 1,344 s on average with the expert's priority alone (1 in 10 orders over 1,396 s, the worst 1,484 s) and
# 1,323 s with these (over 1,336 s, the worst 1,356 s); the next run, with them, took 1,334 s.
PRIORITY = {"syncnet_expert": 10, "infer": 6, "baseline": 6, "train": 5, "evaluate_ground_truth": 4,
            "external_check": 3, "evaluate": 2, "evaluate_external": 2, "merge_metrics": 1,
            "merge_external_metrics": 1}


def test_shards(dataset):
    """Shard names of the usable test clips, known once the test_shards checkpoint has run."""
    return plan.table_shards(checkpoints.test_shards.get(dataset=dataset).output[0])


def predictions_for(dataset, method):
    """The shard summaries of a method's predictions (the clips' files lie in {PREDICTIONS}/{dataset}/{method}/)."""
    return [f"{PREDICTIONS}/{dataset}/shards/{method}/{s}.parquet" for s in test_shards(dataset)]


def predictions_of(wildcards):
    return predictions_for(wildcards.dataset, wildcards.method)


def external_shards(dataset, method):
    """Shard names of an external method's videos of a dataset (their own listing: the videos are
    checked and scored one job per shard, like every per-clip step)."""
    return dataset_shards(plan.external_dataset(dataset, method))


def external_shard(*steps):
    """Input function: what a job reads of one shard of an external method's videos: the shard's
    summaries of ``steps`` (audio: checked against the ground truth's; landmarks: LSE's crops;
    coefficients), which stand for the per-clip tables the job reads."""

    def inputs(wildcards):
        pseudo = plan.external_dataset(wildcards.dataset, wildcards.method)
        return [f"{RESULTS}/{pseudo}/shards/{step}/{wildcards.shard}.parquet" for step in steps]

    return inputs


def external_parts(pattern):
    """Input function: ``pattern`` (with {dataset}, {method} and {shard}) for every shard of the method's videos."""

    def inputs(wildcards):
        return [pattern.format(dataset=wildcards.dataset, method=wildcards.method, shard=s)
                for s in external_shards(wildcards.dataset, wildcards.method)]

    return inputs


def syncnet_weights(wildcards):
    """The configured official weights, else the expert this workflow trains."""
    return config["eval"]["syncnet"] or f"{MODELS}/{wildcards.dataset}/syncnet/expert.pt"


def dataset_tables(wildcards):
    d = f"{RESULTS}/{wildcards.dataset}"
    return [f"{d}/qc.parquet", f"{d}/splits.parquet", f"{d}/stats.parquet", f"{d}/basis.npz"]


def basis_of(wildcards):
    """The expression basis a dataset's coefficients use (its own, or its parent's)."""
    return f"{RESULTS}/{EXTERNAL_OF.get(wildcards.dataset, wildcards.dataset)}/basis.npz"


def all_targets():
    targets = []
    for name in DATASETS:
        if name in EXTERNAL_OF:
            continue
        targets += [
            f"{RESULTS}/{name}/qc.parquet",
            f"{RESULTS}/{name}/stats.parquet",
            f"{REPORTS}/{name}/leaderboard.md",
            f"{REPORTS}/{name}/leaderboard.html",
        ]
    return targets
