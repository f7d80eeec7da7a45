"""What the workflow's rules compute from the config and from the checkpoints' tables.

workflow/rules/*.smk name files and run one `ksdiff` command each; everything they
need to know about the package comes from here: the datasets a run holds (the
configured ones and one per external method's videos), shard names from a
listing or test-shards table, the known texts of a shard's clips, the floors of
the sanity table, the threads a training job uses and how it is launched, the files a config value
names. What each stage is given to read is ksdiff.stage_config.

Light imports only (standard library, pyarrow, ksdiff.config): the workflow
driver's environment (envs/workflow.yaml) has Snakemake and pyarrow, not torch.
"""
from __future__ import annotations

import functools
import os

import pyarrow.parquet as pq

from ksdiff.config import FLOORS, ExpertConfig, TrainConfig, dataclass_from_dict, split_file_paths
from ksdiff.data.hdtf_annotations import annotation_files
from ksdiff.data.shards import shard_name
from ksdiff.io.parquet import read_attrs


def external_dataset(dataset: str, method: str) -> str:
    """The results folder name of an external method's videos of ``dataset`` (eval.external)."""
    return f"{dataset}-ext-{method}"


def datasets(config: dict) -> tuple[dict[str, dict], dict[str, str]]:
    """(name -> dataset entry, pseudo-dataset -> its dataset).

    The configured datasets, and for each of them and each external method
    (eval.external: name -> folder of that system's videos) a dataset of its own,
    ``{dataset}-ext-{method}``, run through the same extraction; its coefficients
    use its dataset's expression basis.
    """
    entries = {d["name"]: d for d in config["datasets"]}
    external_of = {}
    for ds in list(entries):
        for method, folder in config["eval"]["external"].items():
            pseudo = external_dataset(ds, method)
            entries[pseudo] = {"name": pseudo, "root": folder, "layout": "folder", "synthetic": False}
            external_of[pseudo] = ds
    return entries, external_of


def dataset_of_root(config: dict, root: str) -> dict:
    """The dataset entry whose clips are made into ``root`` (by `ksdiff synth` or `ksdiff hdtf-prepare`);
    of several entries naming one root, the first by name (so the order of ``datasets`` never matters)."""
    key = os.path.abspath(root)  # a target may name the root absolute or relative to the working directory
    found = sorted((d for d in config["datasets"] if os.path.abspath(d["root"]) == key), key=lambda d: d["name"])
    if not found:
        raise KeyError(f"no dataset in the config has root {root!r}")
    return found[0]


def table_shards(path: str | os.PathLike) -> list[str]:
    """Shard names of a listing or test-shards table (its ``n_shards`` attribute; one Parquet footer read)."""
    return [shard_name(i) for i in range(int(read_attrs(path)["n_shards"]))]


@functools.lru_cache(maxsize=64)
def _texts_by_shard(path: str, mtime_ns: int) -> dict[str, tuple[str, ...]]:
    t = pq.read_table(path, columns=["shard", "text_path"]).to_pydict()
    by_shard: dict[str, list[str]] = {}
    for shard, txt in zip(t["shard"], t["text_path"]):
        if txt:
            by_shard.setdefault(shard_name(shard), []).append(txt)
    return {s: tuple(v) for s, v in by_shard.items()}


def known_texts(listing: str | os.PathLike, shard: str) -> list[str]:
    """The ``{clip}.txt`` files (the clips' known text) of one shard's clips that exist now, as the
    listing recorded them. Read once per version of the listing, not once per job."""
    path = os.fspath(listing)
    texts = _texts_by_shard(path, os.stat(path).st_mtime_ns).get(shard, ())
    return [t for t in texts if os.path.exists(t)]


def floors(config: dict) -> list[str]:
    """The floors the sanity table compares ground truth with (ksdiff.report.sanity): those the config runs."""
    return [m for m in FLOORS if m in config["baselines"]]


def train_threads(config: dict) -> int:
    """The cores a training job uses: train.num_threads torch threads (TrainConfig's default when not set;
    0: torch's default, all cores) in each of its train.nproc_per_node processes on a node."""
    t = TrainConfig.from_dict(config["train"])
    return t.num_threads * t.nproc_per_node


# A multi-node rendezvous without train.rdzv_endpoint: the first node of the Slurm allocation, port 29500
# (torchrun's default port), evaluated by the job's shell on the node that runs it.
SLURM_FIRST_NODE = '"$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1):29500"'


def expert_threads(config: dict) -> int:
    """The torch threads of the SyncNet expert's job: eval.expert.num_threads, ExpertConfig's default when not set
    (0: torch's default, all cores)."""
    return dataclass_from_dict(ExpertConfig, config["eval"]["expert"], "eval.expert").num_threads


def train_launch(config: dict) -> str:
    """The command that runs a training job's `ksdiff`, completed by the rule with `train --results ...`.

    One process (train.nproc_per_node 1, train.nnodes 1): ``ksdiff``. Several on one node: ``torchrun
    --standalone --nproc_per_node G -m ksdiff`` (a rendezvous on a free local port). Several nodes: one
    torchrun per node, started by ``srun --ntasks-per-node=1`` inside the Slurm allocation, meeting at
    train.rdzv_endpoint (default: the allocation's first node) under the job's id. torchrun starts every
    worker as `python -m ksdiff`, i.e. through ksdiff's command line, which pins the numerics before torch
    loads, exactly as a one-process job.
    """
    t = TrainConfig.from_dict(config["train"])
    if t.nproc_per_node == 1 and t.nnodes == 1:
        return "ksdiff"
    if t.nnodes == 1:
        return f"torchrun --standalone --nproc_per_node {t.nproc_per_node} -m ksdiff"
    endpoint = t.rdzv_endpoint or SLURM_FIRST_NODE
    return (f"srun --ntasks-per-node=1 torchrun --nnodes {t.nnodes} --nproc_per_node {t.nproc_per_node} "
            f'--rdzv_backend c10d --rdzv_id "$SLURM_JOB_ID" --rdzv_endpoint {endpoint} -m ksdiff')


def hdtf_inputs(entry: dict) -> list[str]:
    """What `ksdiff hdtf-prepare` reads of a raw-HDTF dataset: its annotation files and the downloads folder,
    so a new download or an edited annotation reruns the preparation."""
    return [str(p) for p in annotation_files(entry["annotations"])] + [entry["videos"]]


def split_files(config: dict) -> list[str]:
    """The published split file(s) dataset.split_file names (editing one reruns the splits)."""
    return split_file_paths(config["dataset"]["split_file"])

