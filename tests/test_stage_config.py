"""The one declaration of what each stage reads (ksdiff.stage_config), and what the rules
compute through the package (ksdiff.plan)."""
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ksdiff import config, plan
from ksdiff.data import shards
from ksdiff.stage_config import METHOD_ENTRY, STAGE_KEYS, job_options, stage_options, weight_files
from tests.conftest import REPO

TWO = [{"name": "a", "root": "data/a", "synthetic": True}, {"name": "b", "root": "/data/b", "layout": "folder"}]
# A value other than the default for keys of every stage.
CHANGED = dict(
    datasets=TWO, fps=30, sample_rate=24000, shard_size=7, numerics="fast", results_dir="elsewhere",
    synth={"speakers": 2}, transcript={"backend": "align"}, landmarks={"min_detection_score": 0.3},
    coeffs={"n_expr": 12, "smoothing_cutoff_hz": 6.0, "deca_dir": "/deca"}, features={"n_mels": 40},
    dataset={"seed": 5, "min_duration_s": 2.0, "min_detection_rate": 0.5}, model={"d_model": 64},
    methods={"ksdiff": {}, "small": {"method": "regression"}}, train={"steps": 10}, infer={"n_samples": 2},
    eval={"lse_samples": 1, "expert": {"steps": 5}, "bootstrap_samples": 500, "report_clips": 1,
          "external": {"sadtalker": "/videos"}},
)


def _method(stage):
    return "small" if METHOD_ENTRY in STAGE_KEYS[stage] else None


def _schema_node(path):
    node = yaml.safe_load(config.SCHEMA_PATH.read_text())
    for part in path.split("."):
        props = node.get("properties")
        if props is None:  # a free-form section (model, train, infer, methods, eval.expert): any key
            assert node.get("type") == "object", path
            return node
        assert part in props, f"{path}: no {part!r} in the config schema"
        node = props[part]
    return node


@pytest.mark.parametrize("stage", list(STAGE_KEYS))
def test_every_declared_key_is_a_config_key(stage):
    for key in STAGE_KEYS[stage]:
        _schema_node(key.replace(METHOD_ENTRY, "methods.small"))


@pytest.mark.parametrize("stage", list(STAGE_KEYS))
def test_a_job_gets_its_dataset_and_what_its_stage_reads_and_nothing_else(stage):
    cfg = config.validate(CHANGED)
    given = job_options(cfg, stage, cfg["datasets"][1], method=_method(stage))
    assert given["datasets"] == [cfg["datasets"][1]]  # never the other datasets
    tops = {k.split(".")[0] for k in STAGE_KEYS[stage]}
    assert set(given) == tops | {"datasets"}
    assert "results_dir" not in given and "external" not in given.get("eval", {})
    # The job validates what it is given (ksdiff.cli) and reads back exactly the config's values,
    # which the per-clip options hash is made of (ksdiff.data.shards).
    job_cfg = config.validate(given)
    assert stage_options(job_cfg, stage, _method(stage)) == stage_options(cfg, stage, _method(stage))


def test_a_method_is_given_its_own_entry_only():
    cfg = config.validate(CHANGED)
    assert job_options(cfg, "train", cfg["datasets"][0], method="small")["methods"] == {"small": {"method": "regression"}}
    with pytest.raises(ValueError, match="method"):
        stage_options(cfg, "train")


def test_every_rule_runs_a_declared_stage_and_every_stage_has_a_rule():
    used = set()
    for smk in (REPO / "workflow" / "rules").glob("*.smk"):
        used |= set(re.findall(r'\bopts\("(\w+)"\)', smk.read_text()))
    assert used == set(STAGE_KEYS)
    assert set(shards.STAGES) <= set(STAGE_KEYS)  # the per-clip loop hashes the same keys


def test_datasets_roots_and_external_videos():
    cfg = config.validate(CHANGED)
    entries, external_of = plan.datasets(cfg)
    assert list(entries) == ["a", "b", "a-ext-sadtalker", "b-ext-sadtalker"]
    assert external_of == {"a-ext-sadtalker": "a", "b-ext-sadtalker": "b"}
    assert entries["b-ext-sadtalker"]["root"] == "/videos" and entries["b-ext-sadtalker"]["layout"] == "folder"
    # Two names for one root: the same entry whatever their order.
    twice = [dict(TWO[0]), dict(TWO[0], name="a2")]
    assert plan.dataset_of_root({"datasets": twice}, "data/a/")["name"] == "a"
    assert plan.dataset_of_root({"datasets": twice[::-1]}, "data/a")["name"] == "a"
    assert plan.dataset_of_root({"datasets": twice}, str(Path("data/a").resolve()))["name"] == "a"  # a target's path
    with pytest.raises(KeyError, match="no dataset"):
        plan.dataset_of_root({"datasets": twice}, "data/b")


def test_threads_and_floors_come_from_the_package():
    assert plan.train_threads(config.validate(CHANGED)) == config.TrainConfig().num_threads
    assert plan.train_threads(config.validate(dict(CHANGED, train={"num_threads": 3}))) == 3
    assert plan.floors(config.validate(CHANGED)) == ["mismatched", "static"]
    assert plan.floors(config.validate(dict(CHANGED, baselines=["static"]))) == ["static"]
    schema = yaml.safe_load(config.SCHEMA_PATH.read_text())
    assert tuple(schema["properties"]["baselines"]["items"]["enum"]) == config.BASELINES
    assert set(config.FLOORS) == set(config.BASELINES)


def test_shard_names_and_known_texts_from_the_listing(tmp_path, clip_factory):
    root = tmp_path / "clips"
    for i in range(3):
        clip_factory(f"clips/spk/c{i}.mp4", seconds=0.3, seed=i)
    (root / "spk" / "c2.txt").write_text("hello")
    listing = tmp_path / "listing.parquet"
    shards.list_clips(config.defaults(shard_size=2), str(root), "d", str(listing), layout="folder")
    assert plan.table_shards(listing) == ["00000", "00001"]
    assert plan.known_texts(listing, "00000") == [] and plan.known_texts(listing, "00001") == [str(root / "spk/c2.txt")]
    (root / "spk" / "c2.txt").unlink()  # a deleted text is no input of the alignment
    assert plan.known_texts(listing, "00001") == []


def test_the_workflow_plans_in_an_environment_without_torch(tmp_path):
    """The cluster driver's environment (envs/workflow.yaml) has Snakemake and pyarrow only."""
    script = tmp_path / "driver.py"
    script.write_text(
        "import sys\n"
        "for m in ('torch', 'pandas', 'av', 'cv2', 'mediapipe', 'scipy', 'librosa', 'soundfile', 'tqdm',\n"
        "          'matplotlib', 'skimage', 'jinja2', 'pocketsphinx', 'syncnet_python'):\n"
        "    sys.modules[m] = None  # import fails\n"
        "from snakemake.cli import main\n"
        "sys.argv = ['snakemake'] + sys.argv[1:]\n"
        "main()\n")
    r = subprocess.run([sys.executable, str(script), "-n", "--cores", "1", "--config", f"results_dir={tmp_path}/results"],
                       cwd=REPO, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "checkpoint listing:" in r.stdout


def test_weight_files_are_the_files_a_stage_reads(tmp_path):
    """The rules' and the per-clip loop's weight inputs: a configured file as it is, a checkpoint folder's
    files, only for the stages that read the key and only when the option that uses them is on."""
    enc = tmp_path / "w2v"
    enc.mkdir()
    for name in ("config.json", "model.safetensors"):
        (enc / name).write_text(name)
    (enc / "sub").mkdir()  # folders inside are not files
    fid = tmp_path / "pt_inception.pth"
    cfg = config.defaults(features={"kind": "wav2vec2", "pretrained_dir": str(enc)},
                          eval={"fid_inception": str(fid), "flame_masks": None})
    assert weight_files(cfg, "features") == [str(enc / "config.json"), str(enc / "model.safetensors")]
    for stage in ("evaluate", "evaluate_ground_truth", "evaluate_external"):
        assert weight_files(cfg, stage) == [str(fid)]  # missing on disk: Snakemake names it as a missing input
    assert weight_files(cfg, "train") == [] and weight_files(cfg, "audio") == []
    assert weight_files(config.defaults(features={"kind": "logmel", "pretrained_dir": str(enc)}), "features") == []
    assert weight_files(config.defaults(), "transcript") == []
