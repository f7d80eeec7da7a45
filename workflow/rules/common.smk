# Shared helpers: paths, the per-stage options passed to `ksdiff`, and the clip
# lists that come from the manifest checkpoint. No stage logic lives here.
import json
import os
import shlex
import sys

import pyarrow.parquet as pq
from snakemake.exceptions import WorkflowError

DATASETS = {d["name"]: d for d in config["datasets"]}
# Other systems' generated videos (eval.external: name -> folder) run through the
# same extraction as a dataset of their own, "{dataset}-ext-{name}", whose
# coefficients use the real dataset's expression basis.
EXTERNAL_OF = {}
for _ds in list(DATASETS):
    for _name, _folder in config["eval"]["external"].items():
        _pseudo = f"{_ds}-ext-{_name}"
        DATASETS[_pseudo] = {"name": _pseudo, "root": _folder, "layout": "folder", "synthetic": False}
        EXTERNAL_OF[_pseudo] = _ds
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

# Top-level keys every stage may read; each rule adds the sections it uses, so
# changing one stage's options reruns that stage (Snakemake tracks params).
_GLOBAL_KEYS = ["datasets", "fps", "sample_rate", "results_dir"]


def opts(*sections, eval_keys=None):
    sub = {k: config[k] for k in _GLOBAL_KEYS}
    for s in sections:
        sub[s] = config[s]
    if "eval" in sub:
        # Scoring never reads the list of external methods (the rules do): adding
        # one must not rerun the evaluation of every other method. eval_keys: the
        # only eval keys a rule reads (a scoring option must not retrain the expert).
        sub["eval"] = {k: v for k, v in sub["eval"].items() if k != "external" and (eval_keys is None or k in eval_keys)}
    return shlex.quote(json.dumps(sub, sort_keys=True))


wildcard_constraints:
    dataset="[A-Za-z0-9_-]+",
    clip="[A-Za-z0-9_.-]+",
    shard="[0-9]+",


# Shards are the DAG's unit for every per-clip step (ksdiff.data.shards): a job per
# shard of config["shard_size"] clips, its files still one per clip. The listing
# checkpoint says how many shards a dataset has; reading that is one Parquet footer.
def _attrs(path):
    md = pq.read_schema(path).metadata or {}
    return json.loads(md.get(b"ksdiff.attrs", b"{}").decode() or "{}")


def shard_names(n):
    return [f"{i:05d}" for i in range(int(n))]  # ksdiff.data.shards.shard_name


def dataset_shards(dataset):
    """Shard names of a dataset, known once its listing checkpoint has run."""
    return shard_names(_attrs(checkpoints.listing.get(dataset=dataset).output[0])["n_shards"])


def per_shard(*patterns):
    """Input function: each pattern (with {dataset} and {shard}) for every shard of the dataset."""

    def inputs(wildcards):
        shards = dataset_shards(wildcards.dataset)
        return [p.format(dataset=wildcards.dataset, shard=s) for p in patterns for s in shards]

    return inputs


_TEXTS = {}


def known_text(wildcards):
    """The `{video}.txt` files of the shard's clips (recorded in the listing), so that
    editing one reruns its shard's alignment. The listing is read once per version,
    not once per job."""
    path = checkpoints.listing.get(dataset=wildcards.dataset).output[0]
    key = (path, os.stat(path).st_mtime_ns)
    if key not in _TEXTS:
        t = pq.read_table(path, columns=["shard", "text_path"]).to_pydict()
        by_shard = {}
        for shard, txt in zip(t["shard"], t["text_path"]):
            if txt:
                by_shard.setdefault(f"{shard:05d}", []).append(txt)
        _TEXTS[key] = by_shard
    return [t for t in _TEXTS[key].get(wildcards.shard, []) if os.path.exists(t)]


def dataset_root(wildcards):
    return DATASETS[wildcards.dataset]["root"]


def synth_marker(wildcards):
    """The marker of the step filling the dataset's root first (the synthetic
    corpus, synth.smk, or raw HDTF's preparation, hdtf.smk); none for a plain folder."""
    d = DATASETS[wildcards.dataset]
    if d.get("layout") == "hdtf_raw":
        return [f"{os.path.normpath(d['root'])}/.hdtf-complete"]  # the key of HDTF_RAW
    return [f"{d['root'].rstrip('/')}/.complete"] if d["synthetic"] else []


# Datasets prepared from raw HDTF (rules/hdtf.smk), by the root their clips go to.
HDTF_RAW = {os.path.normpath(d["root"]): d for d in config["datasets"] if d.get("layout") == "hdtf_raw"}


def hdtf_inputs(wildcards):
    """The annotation files and the videos folder: a new download or an edited annotation reruns it."""
    d = HDTF_RAW[wildcards.root]
    notes = [os.path.join(d["annotations"], f) for f in sorted(os.listdir(d["annotations"])) if f.endswith(".txt")]
    return notes + [d["videos"]]


TRAINED = list(config["methods"])
# Cores a training job uses: train.num_threads (TrainConfig's default is 1; 0 = torch's
# default, all cores). Declared so that --cores 2 runs two one-thread trainings at once.
TRAIN_THREADS = config["train"].get("num_threads", 1) or workflow.cores
# The same for the SyncNet expert (eval.expert.num_threads, ExpertConfig's default 1).
EXPERT_THREADS = config["eval"]["expert"].get("num_threads", 1) or workflow.cores
BASELINES = list(config["baselines"])
EXTERNAL = dict(config["eval"]["external"])
METHODS = TRAINED + BASELINES + list(EXTERNAL)


def test_shards(dataset):
    """Shard names of the usable test clips, known once the test_shards checkpoint has run."""
    return shard_names(_attrs(checkpoints.test_shards.get(dataset=dataset).output[0])["n_shards"])


def predictions_for(dataset, method):
    """The shard summaries of a method's predictions (the clips' files lie in {PREDICTIONS}/{dataset}/{method}/)."""
    return [f"{PREDICTIONS}/{dataset}/shards/{method}/{s}.parquet" for s in test_shards(dataset)]


def predictions_of(wildcards):
    return predictions_for(wildcards.dataset, wildcards.method)


def external_tables(wildcards):
    """What scoring reads of an external method's videos: their merged manifest (the
    videos' paths) and the shard summaries of the steps whose per-clip tables it reads
    (audio: checked against the ground truth's; landmarks: LSE's crops; coefficients)."""
    pseudo = f"{wildcards.dataset}-ext-{wildcards.method}"
    steps = ("audio", "landmarks", "coeffs")
    return [f"{RESULTS}/{pseudo}/manifest.parquet"] + [
        f"{RESULTS}/{pseudo}/shards/{step}/{s}.parquet" for s in dataset_shards(pseudo) for step in steps
    ]


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
