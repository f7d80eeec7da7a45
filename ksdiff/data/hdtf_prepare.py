"""Raw HDTF (downloaded videos + the annotation files) -> the dataset's 512x512, 25 fps clips.

Per annotated span (HDTF's README): cut it, crop it with the fixed window of
``crop_wh`` (given at the listed download height, so scaled by the actual
height / listed height) or with the square window holding the face over the
whole span, enlarged by ``crop_ratio`` (``crop: landmarks``), deinterlace
interlaced sources, resize to 512x512 at 25 fps and keep the audio. Clips are
named ``{subset}_{video}_{index}.mp4`` (the manifest's ``hdtf`` layout), and
every span gets a row in ``hdtf_preparation.parquet`` beside them: done, or
skipped and why (video missing or unreadable, span past the end, no face
found; a span ``crop_wh`` has no window for is cropped the landmark way). One bad video never stops the others; a clip prepared
by an earlier run with the same settings is kept, not cut again.

ffmpeg does the cutting (the project installs it, envs/install.sh): its seek,
yadif, crop, scale and fps filters in one pass are what HDTF's steps are.
"""
from __future__ import annotations

import json
import logging
import math
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np

from ksdiff.data import hdtf_annotations as ann
from ksdiff.io import parquet
from ksdiff.io.video import ENCODER_THREADS, X264_PARAMS, VideoError

log = logging.getLogger(__name__)

TABLE_NAME = "hdtf_preparation.parquet"
MARKER = ".hdtf-complete"
VIDEO_EXTS = (".mp4", ".mkv", ".webm", ".mov")
# A span may end this much past the download's end and is then cut at the end:
# spans are whole seconds (mm:ss), a download can be a fraction shorter.
END_TOLERANCE_S = 1.0
# The landmark window. MediaPipe's box holds the face only; HDTF's frames hold
# the head: on the four real HDTF clips in shared/data/hdtf the detector's box
# is 0.38-0.64 (median 0.56) of the frame, whose crop ratio is mostly 1.2, so
# the square before the ratio is 1 / (0.56 * 1.2) ~ 1.5 face boxes, and the face
# sits below the frame centre (median 0.58 of the height): the square's centre
# is raised by 0.08 of its side.
FACE_TO_SQUARE = 1.5
RAISE = 0.08
SAMPLE_FPS = 2.0  # frames per second the landmark window is measured on
MAX_SAMPLES = 40
DETECT_HEIGHT = 720  # sampled frames are scaled down to this height for detection


def find_video(videos: Path, subset: str, name: str) -> Path | None:
    """The download of a video: ``{subset}_{name}``, ``{subset}/{name}`` or ``{name}``, any usual extension."""
    for stem in (f"{subset}_{name}", f"{subset}/{name}", name):
        for ext in VIDEO_EXTS:
            p = videos / f"{stem}{ext}"
            if p.is_file():
                return p
    return None


def probe_source(path: Path) -> dict:
    """width, height, duration_s, interlaced, has_audio of a download (VideoError when unreadable)."""
    if path.stat().st_size == 0:
        raise VideoError("zero-byte file")
    cmd = ["ffprobe", "-v", "error", "-show_entries", "stream=codec_type,width,height,field_order:format=duration",
           "-of", "json", str(path)]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise VideoError(f"unreadable container: {r.stderr.strip().splitlines()[-1] if r.stderr.strip() else r.returncode}")
    info = json.loads(r.stdout or "{}")
    streams = info.get("streams", [])
    v = next((s for s in streams if s.get("codec_type") == "video"), None)
    if v is None:
        raise VideoError("no video stream")
    try:
        duration = float(info.get("format", {}).get("duration", "nan"))
    except ValueError:
        duration = float("nan")
    if not duration > 0:
        raise VideoError("unknown duration")
    return dict(width=int(v["width"]), height=int(v["height"]), duration_s=duration,
                interlaced=v.get("field_order", "progressive") in ("tt", "bb", "tb", "bt"),
                has_audio=any(s.get("codec_type") == "audio" for s in streams))


def clamp_window(x: float, y: float, w: float, h: float, width: int, height: int) -> tuple[tuple[int, int, int, int], str]:
    """The window moved (then shrunk, keeping it square if it was) into the frame; a note when it had to be."""
    w0, h0 = w, h
    side_limit = min(width, height)
    if w > width or h > height:
        if abs(w - h) < 1:  # a square stays square
            w = h = min(w, side_limit)
        w, h = min(w, width), min(h, height)
    x, y = min(max(x + (w0 - w) / 2, 0), width - w), min(max(y + (h0 - h) / 2, 0), height - h)
    box = tuple(int(round(v)) for v in (x, y, w, h))
    box = (box[0], box[1], box[2] - box[2] % 2, box[3] - box[3] % 2)  # even sizes for yuv420p
    return box, ("" if (w, h) == (w0, h0) else "window shrunk to the frame")


def fixed_window(window: tuple[int, int, int, int], listed: int, width: int, height: int):
    """``crop_wh``'s window at the download's size: scaled by height / listed height."""
    notes = []
    if listed > 0 and listed != height:
        scale = height / listed
        notes.append(f"window scaled x{scale:.3f} (download {height}p, listed {listed}p)")
    else:
        scale = 1.0
        if listed <= 0:
            notes.append("no listed resolution: window used as given")
    x, y, w, h = (v * scale for v in window)
    if x < 0 or y < 0 or x + w > width + 1 or y + h > height + 1:
        notes.append("window moved into the frame")
    box, note = clamp_window(x, y, w, h, width, height)
    return box, [n for n in notes + [note] if n]


def _ffmpeg_frames(path: Path, start: float, dur: float, fps: float, width: int, height: int, interlaced: bool):
    """Frames of a span at ``fps``, scaled to DETECT_HEIGHT at most: (frames, scale back to source pixels)."""
    s = min(1.0, DETECT_HEIGHT / height)
    w, h = int(width * s) // 2 * 2, int(height * s) // 2 * 2
    vf = f"{_deinterlace(interlaced)},fps={fps},scale={w}:{h}"
    cmd = ["ffmpeg", "-nostdin", "-v", "error", "-ss", f"{start:.3f}", "-t", f"{dur:.3f}", "-i", str(path),
           "-vf", vf, "-f", "rawvideo", "-pix_fmt", "rgb24", "-"]
    r = subprocess.run(cmd, capture_output=True)
    if r.returncode != 0:
        raise VideoError(f"decoding failed: {r.stderr.decode(errors='replace').strip()[-300:]}")
    n = len(r.stdout) // (w * h * 3)
    return np.frombuffer(r.stdout[: n * w * h * 3], np.uint8).reshape(n, h, w, 3), width / w


def landmark_window(path: Path, start: float, dur: float, ratio: float, src: dict, finder) -> tuple[tuple, float, list[str]]:
    """The square holding the speaker's face over the span (sampled), enlarged by ``ratio``.

    Returns (window, fraction of samples with a face, notes); VideoError when no sample has one.
    """
    from ksdiff.extract.face_detect import choose_face

    fps = min(SAMPLE_FPS, MAX_SAMPLES / max(dur, 1e-3))
    frames, back = _ffmpeg_frames(path, start, dur, fps, src["width"], src["height"], src["interlaced"])
    boxes, track = [], None
    for rgb in frames:
        dets, _ = finder(rgb)
        i = choose_face(dets, rgb.shape[:2], track)
        if i is not None:
            track = dets[i].box
            boxes.append(track * back)
    if not boxes:
        raise VideoError(f"no face found on {len(frames)} sampled frames")
    b = np.array(boxes)
    x0, y0, x1, y1 = b[:, 0].min(), b[:, 1].min(), b[:, 2].max(), b[:, 3].max()
    side = max(x1 - x0, y1 - y0) * FACE_TO_SQUARE * ratio
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2 - RAISE * side
    box, note = clamp_window(cx - side / 2, cy - side / 2, side, side, src["width"], src["height"])
    rate = len(boxes) / len(frames)
    notes = [note] if note else []
    if rate < 0.5:
        notes.append(f"face on only {rate:.0%} of sampled frames")
    return box, rate, notes


def _deinterlace(interlaced: bool) -> str:
    # yadif on every frame of a source flagged interlaced; otherwise only on frames
    # that themselves say they are interlaced (mixed broadcasts), a no-op elsewhere.
    return "yadif=mode=send_frame:deint=" + ("all" if interlaced else "interlaced")


def cut_clip(path: Path, start: float, dur: float, window: tuple, out: Path, size: int, fps: float,
             interlaced: bool, threads: int = 1) -> None:
    """One span -> ``size`` x ``size`` mp4 at ``fps`` with the source's audio (AAC), written atomically."""
    x, y, w, h = window
    # accurate_rnd+bitexact: swscale's SIMD scalers round otherwise than its C one (measured: another frame with
    # FFmpeg's SIMD off, -cpuflags 0), so without them the clip would depend on the processor's instruction sets.
    vf = (f"{_deinterlace(interlaced)},fps={fps},crop={w}:{h}:{x}:{y},"
          f"scale={size}:{size}:flags=lanczos+accurate_rnd+bitexact,setsar=1")
    tmp = out.with_name(f".{out.stem}.tmp.mp4")  # a dot name: the manifest never scans it
    # ``threads`` decode (exact whatever the count); the encoder's count is fixed (ksdiff.io.video.ENCODER_THREADS):
    # libx264's output depends on it, and Snakemake gives a rule fewer threads on a machine with fewer cores; and on
    # the CPU's instruction sets unless x264 runs cpu-independent (ksdiff.io.video.X264_PARAMS).
    cmd = ["ffmpeg", "-nostdin", "-v", "error", "-y", "-threads", str(threads), "-ss", f"{start:.3f}", "-t", f"{dur:.3f}",
           "-i", str(path), "-map", "0:v:0", "-map", "0:a:0?", "-vf", vf, "-c:v", "libx264", "-preset", "veryfast",
           "-crf", "18", "-pix_fmt", "yuv420p", "-x264-params", X264_PARAMS, "-c:a", "aac", "-b:a", "128k",
           "-threads", str(ENCODER_THREADS),
           "-movflags", "+faststart", str(tmp)]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0 or not tmp.exists() or tmp.stat().st_size == 0:
        tmp.unlink(missing_ok=True)
        raise VideoError(f"ffmpeg failed: {r.stderr.strip()[-300:]}")
    os.replace(tmp, out)


def _row(subset, video, index, **kw) -> dict:
    row = dict(clip_id=ann.clip_name(subset, video, index) if index >= 0 else "", speaker_id=ann.speaker_of(subset, video),
               subset=subset, video=video, span_index=index, start_s=math.nan, end_s=math.nan, url="", source_path="",
               listed_resolution=0, source_width=0, source_height=0, interlaced=False, crop_method="", crop_x=0,
               crop_y=0, crop_w=0, crop_h=0, crop_ratio=math.nan, face_rate=math.nan, out_path="", duration_s=0.0,
               status="skipped", reason="", notes="")
    row.update(kw)
    return row


# An earlier run's clip is kept when these agree (its source, span and how it was cropped).
_SAME = ("source_path", "source_width", "source_height", "start_s", "end_s", "listed_resolution", "crop_method")


def _previous(out: Path, settings: dict) -> dict[str, dict]:
    """Rows of an earlier run with the same size/fps whose clip is still there (to reuse)."""
    path = out / TABLE_NAME
    if not path.exists():
        return {}
    try:
        t = parquet.read_table(path, "hdtf_preparation")
    except Exception as e:  # a table of another schema version: cut everything again
        log.warning("%s not reused: %s", path, e)
        return {}
    if {k: t.attrs.get(k) for k in settings} != settings:
        return {}
    rows = t.table.to_pylist()
    return {r["clip_id"]: r for r in rows if r["status"] in ("ok", "reused") and Path(r["out_path"]).exists()}


def prepare_hdtf(cfg: dict, videos: str, annotations: str, out: str, crop: str = "fixed", size: int = 512,
                 fps: float = 25.0, threads: int = 1) -> int:
    """Cut, crop and resize every annotated span; write the clips, the table and the marker into ``out``."""
    if crop not in ("fixed", "landmarks"):
        raise ValueError(f"crop must be fixed or landmarks, not {crop!r}")
    missing = [t for t in ("ffmpeg", "ffprobe") if shutil.which(t) is None]
    if missing:
        raise RuntimeError(f"{' and '.join(missing)} not found: install FFmpeg (envs/install.sh does)")
    videos_dir, out_dir = Path(videos), Path(out)
    if not videos_dir.is_dir():
        raise FileNotFoundError(f"videos folder not found: {videos_dir}")
    out_dir.mkdir(parents=True, exist_ok=True)
    a = ann.load(annotations)
    settings = {"size": int(size), "fps": float(fps)}
    done = _previous(out_dir, settings)
    rows = [_row("", "", -1, speaker_id="", reason=f"{p.file}:{p.line}: {p.reason}") for p in a.problems]
    finder = None
    try:
        for (subset, name), v in sorted(a.videos.items()):
            src_path = find_video(videos_dir, subset, name) if v.spans else None
            src, src_error = None, ""
            if v.spans and src_path is None:
                src_error = "video not downloaded (not in the videos folder)"
            elif src_path is not None:
                try:
                    src = probe_source(src_path)
                except (VideoError, OSError) as e:
                    src_error = str(e)
            for i, (start, end) in enumerate(v.spans):
                method = "fixed" if crop == "fixed" and i in v.windows else "landmarks"
                base = dict(start_s=start, end_s=end, url=v.url, listed_resolution=v.resolution, crop_method=method,
                            source_path=str(src_path.resolve()) if src_path else "")
                if src is not None:
                    base.update(source_width=src["width"], source_height=src["height"], interlaced=src["interlaced"])
                clip = ann.clip_name(subset, name, i)
                prev = done.get(clip)
                if prev and src is not None and all(prev[k] == base[k] for k in _SAME):
                    rows.append(dict(prev, status="reused"))
                    continue
                if src is None:
                    rows.append(_row(subset, name, i, **base, reason=src_error))
                    continue
                if method == "landmarks" and finder is None:
                    from ksdiff.extract.face_detect import FaceFinder

                    lm = cfg.get("landmarks", {})
                    finder = FaceFinder(lm.get("detector_model", 1), lm.get("min_detection_score", 0.5))
                rows.append(_prepare_span(subset, name, i, v, src_path, src, base, out_dir, crop, size, fps, threads, finder))
    finally:
        if finder is not None:
            finder.close()
    cols = {f.name: [r[f.name] for r in rows] for f in parquet.schemas.HDTF_PREPARATION}
    attrs = dict(settings, videos=str(videos_dir.resolve()), annotations=str(Path(annotations).resolve()), crop=crop)
    parquet.write_table(out_dir / TABLE_NAME, "hdtf_preparation", cols, attrs=attrs)
    n_ok = sum(r["status"] in ("ok", "reused") for r in rows)
    n_spans = sum(r["span_index"] >= 0 for r in rows)
    log.info("HDTF: %d of %d spans prepared into %s (%d annotation problems)", n_ok, n_spans, out_dir, len(a.problems))
    (out_dir / MARKER).write_text(json.dumps({"clips": n_ok, "spans": n_spans, "table": TABLE_NAME}) + "\n")
    return 0


def _prepare_span(subset, name, i, v, src_path, src, base, out_dir, crop, size, fps, threads, finder) -> dict:
    """One span's row: cut and cropped, or skipped with the reason."""
    start, end = base["start_s"], base["end_s"]
    notes = []
    if start >= src["duration_s"] or end > src["duration_s"] + END_TOLERANCE_S:
        return _row(subset, name, i, **base, reason=f"span {start:g}-{end:g} s is past the end of the video ({src['duration_s']:.2f} s)")
    if end > src["duration_s"]:
        notes.append(f"span cut at the video's end ({src['duration_s']:.2f} s)")
        end = src["duration_s"]
    if not src["has_audio"]:
        notes.append("no audio stream")
    ratio, rate = math.nan, math.nan
    try:
        if base["crop_method"] == "fixed":
            window, n = fixed_window(v.windows[i], v.resolution, src["width"], src["height"])
        else:
            if crop == "fixed":  # HDTF lists no window for 15 of its 436 spans: HDTF's other method
                notes.append(f"no window for {name}_{i} in {subset}_crop_wh.txt: landmark window")
            ratio = v.ratios.get(i, math.nan)
            if not ratio > 0:
                ratio = 1.2
                notes.append("no crop ratio listed: 1.2 (HDTF's most common)")
            window, rate, n = landmark_window(src_path, start, end - start, ratio, src, finder)
        notes += n
        out = out_dir / f"{ann.clip_name(subset, name, i)}.mp4"
        cut_clip(src_path, start, end - start, window, out, size, fps, src["interlaced"], threads)
    except (VideoError, OSError) as e:
        return _row(subset, name, i, **base, crop_ratio=ratio, face_rate=rate, reason=str(e), notes="; ".join(notes))
    x, y, w, h = window
    return _row(subset, name, i, **base, crop_x=x, crop_y=y, crop_w=w, crop_h=h, crop_ratio=ratio, face_rate=rate,
                out_path=str(out.resolve()), duration_s=end - start, status="ok", notes="; ".join(notes))
