"""`ksdiff synth`: the synthetic talking-head corpus with known motion and text.

Layouts (``layout``):
  hdtf      {out}/{RD|WDA|WRA}_{Speaker}_{index:03d}.mp4
  voxceleb  {out}/id{NNNNN}/{youtube id, 11 chars}/{NNNNN}.mp4
Beside each clip ({clip} = its path without .mp4):
  {clip}.txt              the spoken text, one line
  {clip}.motion.parquet   ground truth, schema 'synth_motion' (see ksdiff.data.synth.motion)
and {out}/speakers.json (who speaks, with which photo, voice and style), then
{out}/.complete last: the hash of the settings and the list of files. A rerun
with the same settings finds the marker and does nothing; different settings
remove the files the marker lists and generate anew.

Everything follows from cfg['synth']['seed']: each speaker and each clip draws
from its own seeded generator (numpy SeedSequence entropy [seed, kind, ...]),
so adding speakers or clips leaves the existing ones unchanged, and the motion
tables are byte-identical between runs.
"""
from __future__ import annotations

import hashlib
import json
import logging
import multiprocessing
import os
import string
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from ksdiff.io.files import atomic_write_bytes
from ksdiff.io.parquet import write_failure, write_table

from . import faces, motion, speech
from .warp import FaceRig, WarpConfig

log = logging.getLogger(__name__)

# Bump when the generator's output changes for the same settings, so an old
# corpus is not mistaken for a current one.
# 2: nods of 0.6 s (were 0.4 s), whose bottom is a head-speed minimum. 3: a photo's own parted lips keep
# their teeth when the jaw opens (upper with the upper lip, lower with the jaw; see synth/warp.py), where
# the whole opening used to be painted over, so a smiling photo's teeth vanished on every open frame.
GENERATOR_VERSION = 3
LAYOUTS = ("hdtf", "voxceleb")
HDTF_PREFIXES = ("WRA", "WDA", "RD")  # HDTF's three source collections
VOX_FIRST_ID = 10001  # VoxCeleb ids look like id10001
VOX_CLIPS_PER_VIDEO = 2  # consecutive clips of a speaker share one "YouTube video"
YOUTUBE_ALPHABET = string.ascii_letters + string.digits + "-_"
MARKER = ".complete"


@dataclass
class Speaker:
    index: int
    name: str  # alphanumeric, unique in the corpus
    source: faces.PhotoSource
    look: faces.Look
    voice: speech.Voice
    style: motion.SpeakerStyle
    vox_id: str
    video_ids: list[str] = field(default_factory=list)
    base_pose: list[float] = field(default_factory=list)  # yaw, pitch, roll of the portrait (rest pose)
    clips: list[str] = field(default_factory=list)  # relative paths of the clip videos


def _rng(seed: int, *key: int) -> np.random.Generator:
    return np.random.default_rng([seed, *key])


def settings_hash(cfg: dict, layout: str) -> str:
    s = {"synth": cfg["synth"], "fps": cfg["fps"], "sample_rate": cfg["sample_rate"], "layout": layout,
         "version": GENERATOR_VERSION}
    return hashlib.sha256(json.dumps(s, sort_keys=True).encode()).hexdigest()


def plan_speakers(cfg: dict) -> list[Speaker]:
    """Who speaks: photo, look, voice and style per speaker, from the seed."""
    sc = cfg["synth"]
    seed = int(sc["seed"])
    sources = faces.usable_sources(sc["size"], sc["face_fraction"])
    speakers = []
    for k in range(sc["speakers"]):
        rng = _rng(seed, 1, k)
        src = sources[k % len(sources)]
        round_ = k // len(sources)  # >0 when there are more speakers than photos
        # A photo used again is mirrored relative to its previous use, so the two speakers differ.
        flip = bool(rng.integers(2)) != bool(round_ % 2)
        look = faces.Look.random(rng, flip=flip)
        voice = speech.pick_voice(k, src.gender, rng)
        style = motion.SpeakerStyle.random(rng)
        name = src.name + (str(round_ + 1) if round_ else "")
        n_videos = -(-sc["clips_per_speaker"] // VOX_CLIPS_PER_VIDEO)
        videos = ["".join(rng.choice(list(YOUTUBE_ALPHABET), 11)) for _ in range(n_videos)]
        speakers.append(Speaker(k, name, src, look, voice, style, f"id{VOX_FIRST_ID + k:05d}", videos))
    return speakers


def speaker_rig(cfg: dict, spk: Speaker, detector: faces.MeshDetector | None = None):
    """(portrait, rig) of a speaker: the photo framed with its look, ready to animate."""
    sc = cfg["synth"]
    portrait = faces.make_portrait(spk.source, sc["size"], sc["face_fraction"], spk.look, detector)
    spk.base_pose = [round(float(a), 4) for a in portrait.base_pose]
    return portrait, FaceRig(portrait, WarpConfig())


def clip_relpath(layout: str, spk: Speaker, j: int) -> str:
    """Relative path of clip j of a speaker, without extension."""
    if layout == "hdtf":
        return f"{HDTF_PREFIXES[spk.index % len(HDTF_PREFIXES)]}_{spk.name}_{j:03d}"
    if layout == "voxceleb":
        return f"{spk.vox_id}/{spk.video_ids[j // VOX_CLIPS_PER_VIDEO]}/{j % VOX_CLIPS_PER_VIDEO + 1:05d}"
    raise ValueError(f"unknown layout {layout!r}; expected one of {LAYOUTS}")


def clip_motion(audio: np.ndarray, cfg: dict, spk: Speaker, base_pose: np.ndarray,
                rng: np.random.Generator) -> dict[str, np.ndarray]:
    """The ground-truth table of one clip (columns of schema 'synth_motion')."""
    sc = cfg["synth"]
    fps, sr = float(cfg["fps"]), int(cfg["sample_rate"])
    n = int(round(len(audio) * fps / sr))
    jaw, wide = motion.mouth_from_audio(audio, sr, fps, n, sc["audio_lead_s"])
    limits = (sc["max_yaw_deg"], sc["max_pitch_deg"], sc["max_roll_deg"])
    angles, trans = motion.head_from_audio(audio, sr, fps, n, spk.style, limits, sc["size"], rng)
    angles = angles + base_pose  # the head moves around the photo's own pose
    return {
        "frame": np.arange(n, dtype=np.int32),
        "time_s": motion.frame_times(n, fps),
        "yaw": angles[:, 0].astype(np.float32),
        "pitch": angles[:, 1].astype(np.float32),
        "roll": angles[:, 2].astype(np.float32),
        "trans": trans.astype(np.float32),
        "jaw_open": jaw.astype(np.float32),
        "mouth_wide": wide.astype(np.float32),
    }


def render_frames(rig: FaceRig, m: dict[str, np.ndarray]):
    """Frames of a clip from its ground truth (the float32 values written, not the float64 ones)."""
    for i in range(len(m["frame"])):
        posed = rig.pose(float(m["yaw"][i]), float(m["pitch"][i]), float(m["roll"][i]),
                         m["trans"][i].astype(np.float64), float(m["jaw_open"][i]), float(m["mouth_wide"][i]))
        yield rig.render(posed)


def make_clip(root: Path, rel: str, cfg: dict, spk: Speaker, rig: FaceRig, base_pose: np.ndarray,
              j: int) -> None:
    """Synthesise, render and write one clip with its text and ground truth."""
    from ksdiff.io.video import write_video

    sc = cfg["synth"]
    seed = int(sc["seed"])
    rng = _rng(seed, 2, spk.index, j)
    sentences = speech.pick_sentences(sc["sentences_per_clip"], rng)
    text = " ".join(sentences)
    audio = speech.make_utterance(sentences, spk.voice, cfg["sample_rate"], cfg["fps"], rng)
    m = clip_motion(audio, cfg, spk, base_pose, rng)
    base = root / rel
    write_video(base.with_suffix(".mp4"), render_frames(rig, m), cfg["fps"], audio, cfg["sample_rate"])
    atomic_write_bytes(base.with_suffix(".txt"), (text + "\n").encode())
    write_table(f"{base}.motion.parquet", "synth_motion", m, attrs={
        "fps": float(cfg["fps"]), "sample_rate": int(cfg["sample_rate"]), "speaker": spk.name,
        "photo": spk.source.key, "text": text, "seed": seed, "voice": str(spk.voice), "clip": rel,
        "size": int(sc["size"]), "base_pose": [float(a) for a in base_pose],
        "generator_version": GENERATOR_VERSION,
    })


def _clear_previous(root: Path, marker: Path) -> None:
    """Remove the files an earlier corpus with other settings listed (and only those)."""
    try:
        old = json.loads(marker.read_text())
    except (OSError, ValueError):
        old = {}
    for rel in old.get("files", []):
        p = root / rel
        if p.is_file():
            p.unlink()
        # Folders of the voxceleb layout that are now empty go too.
        for d in p.parents:
            if d == root or not d.is_relative_to(root):
                break
            try:
                d.rmdir()
            except OSError:  # not empty
                break
    marker.unlink(missing_ok=True)


def _make_speaker(root: Path, cfg: dict, layout: str, spk: Speaker,
                  detector: faces.MeshDetector) -> tuple[Speaker, list[str], list[str]]:
    """Rig one speaker and write its clips: (the speaker, with base_pose and clips filled, its files, its
    failed clips). A bad photo or clip is recorded, never raised: the corpus goes on."""
    sc = cfg["synth"]
    files, failed = [], []
    portrait = rig = None
    try:
        portrait, rig = speaker_rig(cfg, spk, detector)
    except (faces.PhotoError, ValueError) as e:
        speaker_error = f"speaker {spk.name}: {type(e).__name__}: {e}"
    for j in range(sc["clips_per_speaker"]):
        rel = clip_relpath(layout, spk, j)
        spk.clips.append(rel + ".mp4")
        try:
            if rig is None:
                raise faces.PhotoError(speaker_error)
            make_clip(root, rel, cfg, spk, rig, portrait.base_pose, j)
        except Exception as e:  # one bad clip is recorded, the corpus goes on
            reason = f"{type(e).__name__}: {e}"
            log.error("%s failed: %s", rel, reason)
            write_failure(root / f"{rel}.motion.parquet", "synth_motion", reason,
                          attrs={"speaker": spk.name, "clip": rel})
            failed.append(rel)
        files += [rel + ".mp4", rel + ".txt", f"{rel}.motion.parquet"]
    return spk, files, failed


# One BLAS thread in every process that makes clips: OpenBLAS splits some sums over its threads, so the corpus
# would depend on how many there are (measured: with 2, 14 of the demo's 60 motion tables and 4 of its videos
# came out different in their last bits), and a job's thread count is the machine's or the rule's, not the
# corpus's.
BLAS_THREADS = 1


def _speaker_job(root: Path, cfg: dict, layout: str, spk: Speaker) -> tuple[Speaker, list[str], list[str]]:
    """One speaker in a worker process, with a detector of its own (``threads`` > 1)."""
    with threadpool_limits(BLAS_THREADS), faces.MeshDetector() as detector:
        return _make_speaker(root, cfg, layout, spk, detector)


def make_corpus(cfg: dict, out: str | os.PathLike, layout: str = "hdtf", threads: int = 1) -> int:
    """Generate the corpus into ``out``; 0 when complete, 1 when some clip failed.

    ``threads`` > 1 makes the speakers in that many worker processes. Every speaker and clip draws from its
    own seeded generator, the photo's mesh is found in still-image mode and every process runs one BLAS
    thread, so the files are the same bytes whatever ``threads`` is (tests/test_synth.py; the demo's 180 files
    compared too). The demo's first job has the machine to itself: 61 s on one core, 40 s on two."""
    from tqdm import tqdm

    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}; expected one of {LAYOUTS}")
    if cfg["sample_rate"] % cfg["fps"]:
        raise ValueError(f"sample_rate ({cfg['sample_rate']}) must be a multiple of fps ({cfg['fps']})")
    sc = cfg["synth"]
    if sc["size"] % 2:
        raise ValueError(f"synth.size must be even (H.264 in 4:2:0 needs even sides), got {sc['size']}")
    if threads < 1:
        raise ValueError(f"threads must be at least 1, got {threads}")
    root = Path(out)
    marker = root / MARKER
    digest = settings_hash(cfg, layout)
    if marker.exists():
        try:
            if json.loads(marker.read_text()).get("hash") == digest:
                log.info("%s: synthetic corpus already complete (same settings)", root)
                return 0
        except ValueError:
            pass
        log.info("%s: settings changed, regenerating", root)
        _clear_previous(root, marker)
    root.mkdir(parents=True, exist_ok=True)

    speakers = plan_speakers(cfg)
    bar = tqdm(total=len(speakers) * sc["clips_per_speaker"], desc="synth clips", unit="clip",
               disable=None)
    done = []  # (speaker, files, failed) in speaker order, however the work was spread
    try:
        if threads == 1 or len(speakers) == 1:
            with threadpool_limits(BLAS_THREADS), faces.MeshDetector() as detector:
                for spk in speakers:
                    done.append(_make_speaker(root, cfg, layout, spk, detector))
                    bar.update(sc["clips_per_speaker"])
        else:
            # spawn, not fork: MediaPipe and the video encoder keep threads a forked child would inherit stopped
            ctx = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(min(threads, len(speakers)), mp_context=ctx) as pool:
                jobs = [pool.submit(_speaker_job, root, cfg, layout, spk) for spk in speakers]
                for job in as_completed(jobs):
                    job.result()
                    bar.update(sc["clips_per_speaker"])
                done = [job.result() for job in jobs]
    finally:
        bar.close()
    speakers = [spk for spk, _, _ in done]
    files = [f for _, fs, _ in done for f in fs]
    failed = [c for _, _, fl in done for c in fl]

    atomic_write_bytes(root / "speakers.json", json.dumps(
        {"layout": layout, "seed": int(sc["seed"]), "fps": cfg["fps"], "sample_rate": cfg["sample_rate"],
         "speakers": [speaker_record(s) for s in speakers]}, indent=2).encode())
    if failed:
        log.error("%d of %d clips failed; no %s marker written, rerun to retry", len(failed),
                  len(files) // 3, MARKER)
        return 1
    files.append("speakers.json")
    atomic_write_bytes(marker, json.dumps({"hash": digest, "layout": layout, "n_clips": len(files) // 3,
                                           "files": files}, indent=1).encode())
    log.info("%s: %d clips of %d speakers", root, len(files) // 3, len(speakers))
    return 0


def speaker_record(s: Speaker) -> dict:
    return {
        "vox_id": s.vox_id,
        "name": s.name,
        "photo": s.source.key,
        "gender": s.source.gender,
        "look": asdict(s.look),
        "voice": {"name": s.voice.name, "rate_wpm": s.voice.rate_wpm, "pitch": s.voice.pitch},
        "style": s.style.to_dict(),
        "base_pose": s.base_pose,
        "clips": list(s.clips),
    }
