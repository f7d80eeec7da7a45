"""`ksdiff <stage> ...`: parse arguments, call one function, nothing else.

Every workflow rule runs one of these subcommands. Stage options come either
from ``--config config.yaml`` (the section of the validated config) or, as the
rules do, from ``--opts JSON`` holding the already-validated config, so that
Snakemake sees option changes as parameter changes. Functions are imported
lazily so that `ksdiff --help` is instant and a stage's heavy imports (torch,
mediapipe) load only when that stage runs.
"""
from __future__ import annotations

import argparse
import importlib
import json
import logging
import sys

import yaml

from ksdiff import heap, numerics

# name -> ("module:function", help, [(flag, kwargs), ...]). The function is
# called with the parsed flags as keyword arguments (dashes -> underscores)
# plus ``cfg``, the validated configuration.
COMMANDS: dict[str, tuple[str, str, list]] = {}


def command(name: str, target: str, help: str, *args: tuple[str, dict]):
    COMMANDS[name] = (target, help, list(args))


P = {"required": True}  # a required path flag

# --- preprocessing (issue 2) ---------------------------------------------------
command("synth", "ksdiff.data.synth.corpus:make_corpus", "generate the synthetic talking-head corpus",
        ("--out", P), ("--layout", {"default": "hdtf", "choices": ["hdtf", "voxceleb"]}),
        ("--threads", {"type": int, "default": 1, "help": "worker processes (speakers in parallel; same files)"}))
command("hdtf-prepare", "ksdiff.data.hdtf_prepare:prepare_hdtf",
        "raw HDTF (downloads + annotation files) -> 512x512 25 fps clips and a preparation table",
        ("--videos", P), ("--annotations", P), ("--out", P),
        ("--crop", {"default": "fixed", "choices": ["fixed", "landmarks"]}), ("--threads", {"type": int, "default": 1}))
command("manifest", "ksdiff.data.manifest:build_manifest", "scan a dataset root into a manifest table",
        ("--root", P), ("--dataset", P), ("--layout", {"default": "auto"}), ("--out", P))
# The workflow's per-shard jobs (ksdiff.data.shards): one job loops over a shard's clips.
command("list", "ksdiff.data.shards:list_clips", "scan a dataset root into the clip listing, in shards (no probing)",
        ("--root", P), ("--dataset", P), ("--layout", {"default": "auto"}), ("--out", P))
command("probe", "ksdiff.data.shards:probe_shard", "probe and hash one shard's videos -> its part of the manifest",
        ("--listing", P), ("--shard", {"type": int, "required": True}), ("--out", P))
command("merge-manifest", "ksdiff.data.shards:merge_manifest", "concatenate the shards' manifest parts",
        ("--listing", P), ("--parts", {"required": True, "help": "folder of {shard}.parquet manifest parts"}), ("--out", P))
command("shard", "ksdiff.data.shards:run_stage",
        "run one per-clip step over a shard's clips, skipping clips whose output is current -> shard summary",
        ("--stage", {"required": True, "choices": ["audio", "transcript", "landmarks", "pose", "coeffs", "deca", "features"]}),
        ("--manifest", {"required": True, "help": "the shard's manifest part"}), ("--results", P), ("--out", P),
        ("--basis", {"default": None, "help": "expression basis (stage coeffs)"}))
command("test-shards", "ksdiff.infer_shards:test_shards", "usable test clips in shards, for inference",
        ("--results", P), ("--out", P))
command("infer-shard", "ksdiff.infer_shards:infer_shard", "predictions for one shard of test clips, one model load",
        ("--results", P), ("--shards", P), ("--shard", {"type": int, "required": True}), ("--out-dir", P), ("--out", P),
        ("--checkpoint", {"default": None}), ("--method", {"default": None}))
command("audio", "ksdiff.extract.audio:extract_audio", "16 kHz mono audio + loudness statistics of one clip",
        ("--manifest", P), ("--clip", P), ("--out-wav", P), ("--out", P))
command("transcript", "ksdiff.extract.transcript:transcribe", "word-timed transcript of one clip",
        ("--manifest", P), ("--clip", P), ("--audio", P), ("--out", P))
command("landmarks", "ksdiff.extract.landmarks:extract_landmarks", "face detection + 478-point face mesh per frame",
        ("--manifest", P), ("--clip", P), ("--out", P))
command("pose", "ksdiff.extract.pose:fit_pose", "rigid head pose + identity template of one clip",
        ("--landmarks", P), ("--out", P))
command("basis", "ksdiff.extract.basis:fit_basis", "PCA expression basis on the training split",
        ("--splits", P), ("--pose", {"nargs": "+", "required": True}), ("--out", P),
        ("--pose-dir", {"default": None, "help": "--pose are shard summaries of the clips' tables in this folder"}))
command("coeffs", "ksdiff.extract.coeffs:project_coeffs", "motion coefficients (pose + expression) of one clip",
        ("--pose", P), ("--basis", P), ("--out", P))
command("deca", "ksdiff.extract.deca:fit_deca", "FLAME coefficients of one clip with a local DECA checkout (coeffs.backend=deca)",
        ("--manifest", P), ("--clip", P), ("--landmarks", P), ("--out", P))
command("features", "ksdiff.extract.features:extract_features", "speech features + prosody of one clip",
        ("--audio", P), ("--out", P))
command("splits", "ksdiff.data.splits:make_splits", "speaker-disjoint train/val/test splits",
        ("--manifest", P), ("--out", P))
command("qc", "ksdiff.data.qc:build_qc", "per-clip quality table: usable or not, and why",
        ("--manifest", P), ("--results", P), ("--out", P))
command("stats", "ksdiff.data.stats:build_stats", "normalisation statistics over the usable training clips",
        ("--qc", P), ("--splits", P), ("--results", P), ("--out", P))
# Training packs and the map-reduce forms of stats and basis (issue 21): one job per shard, one merge.
command("pack", "ksdiff.data.packs:pack_shard", "pack a shard's clips into a memory-mappable training pack + its index",
        ("--manifest", {"required": True, "help": "the shard's manifest part"}), ("--results", P),
        ("--out", {"required": True, "help": "the pack's index, results/{dataset}/packs/{shard}.parquet (pack: .arrow beside it)"}))
command("stats-part", "ksdiff.data.stats:stats_part", "moments of one shard's usable training clips, from its pack",
        ("--qc", P), ("--splits", P), ("--index", P), ("--out", P))
command("merge-stats", "ksdiff.data.stats:merge_stats", "normalisation statistics from the shards' parts",
        ("--parts", {"nargs": "+", "required": True}), ("--out", P))
command("basis-part", "ksdiff.extract.basis:basis_part", "expression displacement moments of one shard's training clips",
        ("--splits", P), ("--pose", {"required": True, "help": "the shard's pose summary"}), ("--out", P),
        ("--pose-dir", {"default": None, "help": "folder of the clips' pose tables"}))
command("merge-basis", "ksdiff.extract.basis:merge_basis", "PCA expression basis from the shards' parts",
        ("--parts", {"nargs": "+", "required": True}), ("--out", P))

# --- model (issue 3) -------------------------------------------------------------
command("train", "ksdiff.training.loop:train", "train a motion model (resumes from its latest checkpoint)",
        ("--results", P), ("--out", {"required": True, "help": "final model file, e.g. models/synth/ksdiff/model.pt"}),
        ("--method", {"default": None, "help": "a name in the config's 'methods' or ksdiff|diffspeaker|regression"}))
command("infer", "ksdiff.infer:predict_clip", "motion of one clip (coeffs schema) from a model or a baseline",
        ("--results", P), ("--clip", P), ("--out", P),
        ("--checkpoint", {"default": None, "help": "model file from `ksdiff train`"}),
        ("--method", {"default": None, "help": "static | mismatched (no checkpoint), or the checkpoint's method"}),
        ("--n-samples", {"type": int, "default": None}), ("--seed", {"type": int, "default": None}),
        ("--steps", {"type": int, "default": None, "help": "DDIM steps (default: the model's)"}))
command("generate", "ksdiff.generate:generate", "speech + a reference face -> talking-head mp4",
        ("--audio", P), ("--ref", {"required": True, "help": "reference face image or video (first frame)"}),
        ("--checkpoint", P), (("-o", "--out"), P),
        ("--transcript", {"default": None, "help": "text file of what is said (aligned to the audio)"}),
        ("--seed", {"type": int, "default": 0}), ("--steps", {"type": int, "default": None}))

# --- evaluation (issue 4) ----------------------------------------------------------
# The SyncNet expert's training allocates the same large buffers (its convolutions' columns) every step: it keeps
# its freed memory instead of faulting it in again, system time 26 -> 4-6 s per 60 steps, the same bytes
# (ksdiff.heap). Not the others: KSDiff's training reuses its small tensors already (measured: no change); an
# evaluate job saved 2.4 s of 78 and scores clips of every length, where a heap that never shrinks fragments.
KEEP_FREED_MEMORY = ("syncnet-expert",)
command("syncnet-expert", "ksdiff.metrics.syncnet_expert:train_on_dataset",
        "train a SyncNet expert on the training split (when no syncnet_v2.model is configured)",
        ("--results", P), ("--out", P))
command("render", "ksdiff.render.video:render_command", "render one clip's coefficients (GT or a prediction) as mp4 with its audio",
        ("--coeffs", P), ("--results", P), ("--clip", P), ("--out", P),
        ("--mode", {"default": "warp", "choices": ["warp", "mesh"]}), ("--sample", {"type": int, "default": 0}),
        ("--basis", {"default": None, "help": "expression basis (default {results}/basis.npz)"}))
command("evaluate", "ksdiff.evaluate:evaluate_method", "score one method on the test split -> long-format metrics table",
        ("--results", P), ("--predictions", {"default": None, "help": "folder of {clip}.parquet coeffs tables (not for ground_truth)"}),
        ("--method", P), ("--out", P),
        ("--syncnet", {"default": None, "help": "SyncNet weights (default eval.syncnet; none: LSE not scored)"}),
        ("--external", {"action": "store_true", "help": "predictions were extracted from another system's videos: LSE on their own frames"}),
        ("--shards", {"default": None, "help": "test_shards table: score one shard of the test clips (with --shard)"}),
        ("--shard", {"type": int, "default": None}),
        ("--checks", {"default": None, "help": "with --external: the external QC table of the videos to score "
                                               "(default: check every video here)"}))
command("merge-metrics", "ksdiff.evaluate:merge_metrics", "one method's metrics table from its test shards' tables",
        ("--results", P), ("--parts", {"nargs": "*", "default": [], "help": "the shards' metrics tables, in shard order"}),
        ("--method", P), ("--out", P),
        ("--external", {"action": "store_true", "help": "the parts score shards of an external method's videos"}))
command("external-check", "ksdiff.metrics.external_qc:check_shard",
        "one shard of an external method's videos against the dataset's clips -> its part of the external QC table",
        ("--results", P), ("--external", {"required": True, "help": "results/{dataset}-ext-{method}: the videos' extraction"}),
        ("--manifest", {"required": True, "help": "the shard's manifest part of the videos"}), ("--method", P), ("--out", P))
command("merge-external-qc", "ksdiff.metrics.external_qc:merge_external_qc",
        "an external method's QC table from its shards' parts", ("--parts", {"nargs": "*", "default": []}), ("--out", P))
command("sanity", "ksdiff.report.sanity:write_sanity",
        "does each metric score ground truth above the floors (mismatched, static)? -> sanity table",
        ("--metrics", {"nargs": "+", "required": True, "help": "the ground_truth, mismatched and static metrics tables"}),
        ("--out", P))
command("report", "ksdiff.report.build:build_report", "leaderboard Markdown + self-contained HTML from metrics tables",
        ("--metrics", {"nargs": "+", "required": True}), ("--out-md", P), ("--out-html", P), ("--plots-dir", P),
        ("--sanity", {"default": None, "help": "sanity table from `ksdiff sanity` (default: computed from --metrics)"}),
        ("--results", {"default": None, "help": "results/{dataset}, for pose trajectories and frame strips"}),
        ("--predictions", {"nargs": "*", "default": None, "help": "method prediction folders: 'name=folder' or 'folder'"}),
        ("--models", {"default": None, "help": "models/{dataset}: parameter counts from each method's train_log.csv"}),
        ("--studies", {"nargs": "*", "default": None,
                       "help": "user-study scores.parquet files (default: {study.dir}/*/scores.parquet of this dataset)"}),
        ("--external-qc", {"nargs": "*", "default": None,
                           "help": "the external videos' QC tables (default: the checks the metrics tables record)"}))

# --- user studies (issue 22); also spelled `ksdiff study make` / `ksdiff study score` / `ksdiff study serve` ---
command("study-make", "ksdiff.study.make:make_study",
        "method videos -> a self-contained A/B + MOS study folder (upload its site/ or open it from disk)",
        ("--videos", {"nargs": "*", "default": None,
                      "help": "DIR with one sub-folder of {clip}.mp4 per method (ground_truth, mismatched, ...), or name=DIR"}),
        ("--results", {"default": None, "help": "results/{dataset} of a finished run: videos missing from --videos are rendered"}),
        ("--predictions", {"nargs": "*", "default": None, "help": "with --results: 'name=folder' or 'folder' of prediction tables"}),
        ("--out", {"default": None, "help": "study folder (default {study.dir}/{study.name})"}))
command("study-score", "ksdiff.study.score:score_study",
        "raters' files -> MOS, win rates, Bradley-Terry strengths, agreement, exclusions -> scores.parquet",
        ("--study", P), ("--ratings", {"nargs": "*", "default": None, "help": "rating files or folders (default {study}/ratings)"}),
        ("--out", {"default": None, "help": "default {study}/scores.parquet"}))
command("study-serve", "ksdiff.study.serve:serve_study",
        "a lab's collection server: serves the study's site/ and stores the ratings raters send into {study}/ratings",
        ("--study", P), ("--host", {"default": "127.0.0.1"}), ("--port", {"type": int, "default": 8000}))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ksdiff", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="<stage>")
    for name, (target, help, args) in COMMANDS.items():
        p = sub.add_parser(name, help=help, description=help)
        for flag, kwargs in args:
            p.add_argument(*(flag if isinstance(flag, tuple) else (flag,)), **kwargs)  # ("-o", "--out") aliases
        g = p.add_mutually_exclusive_group()
        g.add_argument("--config", help="config.yaml to read stage options from")
        g.add_argument("--opts", help="validated config as JSON (what the workflow passes)")
        p.add_argument("-v", "--verbose", action="store_true")
        p.set_defaults(_target=target)
    return parser


def raw_cfg(args) -> dict:
    """The config as given, unvalidated (validation imports nothing heavy, but the numerics pin must come first)."""
    if args.opts:
        return json.loads(args.opts)
    if args.config:
        with open(args.config) as f:
            return yaml.safe_load(f) or {}
    return {}


def load_cfg(args) -> dict:
    from ksdiff import config

    if args.opts:
        return config.validate(json.loads(args.opts))
    if args.config:
        return config.load(args.config)
    return config.defaults()


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["study"] and argv[1:2] in (["make"], ["score"], ["serve"]):  # two-word spelling of study-make, ...
        argv = [f"study-{argv[1]}"] + argv[2:]
    args = parser.parse_args(argv)
    if args.version:
        from ksdiff import __version__

        print(__version__)
        return 0
    if not args.command:
        parser.print_help()
        return 2
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    # Before anything imports numpy or torch: their CPU code paths are chosen when they load.
    mode = numerics.pin(numerics.mode_of(raw_cfg(args)))
    if mode == "pinned":
        # torch's pinned settings (oneDNN off, deterministic algorithms) the moment torch loads, wherever: stages
        # load it lazily (LSE scoring only once it reaches SyncNet), and a check after the stage's import missed
        # them once; the stages that never use torch no longer load it only for its settings.
        numerics.torch_settings_on_import()
    cfg = load_cfg(args)
    if args.command in KEEP_FREED_MEMORY:
        heap.keep_freed_memory()
    module, func = args._target.split(":")
    fn = getattr(importlib.import_module(module), func)
    kwargs = {k: v for k, v in vars(args).items() if k not in ("command", "config", "opts", "verbose", "version", "_target")}
    result = fn(cfg=cfg, **kwargs)
    return int(result) if isinstance(result, int) else 0


if __name__ == "__main__":
    sys.exit(main())
