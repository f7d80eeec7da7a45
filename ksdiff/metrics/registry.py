"""Every metric a metrics table can hold: its name, column label, unit, which way is better, and family.

The one list the scorers write names from and the report reads labels, units and directions from, so the
report never imports the evaluation code (ksdiff.evaluate) and a new metric is declared in one place.
Names carry their units where two meshes give two units (``lve_l2_iod`` on landmarks, ``lve_l2_mm`` on
FLAME), so values in different units are never averaged or ranked together.
"""
from __future__ import annotations

from dataclasses import dataclass

from ksdiff.metrics.lve import lve_name
from ksdiff.metrics.protocol import PROTOCOL

GROUND_TRUTH = "ground_truth"
ACROSS_SAMPLES = -1  # 'sample' of a metric computed over all samples of a clip (sample diversity)
NO_SYNCNET = "not scored: no SyncNet weights configured"

LVE = lve_name(PROTOCOL.lve_variant)
LVE_FLAME = lve_name(PROTOCOL.lve_variant, units="mm")  # FLAME meshes: other units, so another metric
# The squared variant beside it (DiffSpeaker's and CodeTalker's code): PROTOCOL.lve_variants scores both.
LVE_SQ = lve_name("squared_l2")
LVE_FLAME_SQ = lve_name("squared_l2", units="mm")
FDD = "fdd_iod2"  # landmark meshes: squared inter-ocular units
FDD_FLAME = "fdd_mm2"  # FLAME meshes: mm²
MOD = "mod_iod"
# ksdiff-metrics-5: video metrics without weights (ksdiff.metrics.frame_fidelity, .cpbd, .lmd)
PSNR = "psnr_db"
SSIM = "ssim"
CPBD = "cpbd"
F_LMD = "f_lmd_px"  # pixels of the clip's recorded video
M_LMD = "m_lmd_px"
# ksdiff-metrics-5: metrics from weights the user supplies (ksdiff.metrics.weighted; FID and FVD set-level)
FID = "fid"
FVD = "fvd"
LPIPS = "lpips"
CSIM = "csim"
LSE_NAMES = ("lse_d", "lse_c", "lse_offset")
LSE_VIDEO_NAMES = ("lse_d_video", "lse_c_video")


@dataclass(frozen=True)
class MetricSpec:
    name: str
    label: str
    unit: str
    better: str  # 'lower' | 'higher' | 'closer to 0' | 'closer to ground truth'
    family: str  # lip shape, lip sync, head motion, upper face, expression distribution, video fidelity


SPECS: tuple[MetricSpec, ...] = (
    MetricSpec(LVE, f"LVE ({PROTOCOL.lve_variant})", "inter-ocular units", "lower", "lip shape"),
    MetricSpec(LVE_FLAME, f"LVE FLAME ({PROTOCOL.lve_variant})", "mm" if PROTOCOL.lve_variant == "l2" else "mm²",
               "lower", "lip shape"),
    MetricSpec(LVE_SQ, "LVE (squared_l2)", "inter-ocular units²", "lower", "lip shape"),
    MetricSpec(LVE_FLAME_SQ, "LVE FLAME (squared_l2)", "mm²", "lower", "lip shape"),
    MetricSpec("sample_diversity", "Sample diversity", "deg", "higher", "head motion"),
    MetricSpec("temporal_diversity", "Temporal diversity", "deg", "closer to ground truth", "head motion"),
    MetricSpec("beat_align", "BeatAlign", "", "higher", "head motion"),
    MetricSpec("beat_align_corrected", "BeatAlign (chance-corrected)", "", "higher", "head motion"),
    MetricSpec("lse_d", "LSE-D", "", "lower", "lip sync"),
    MetricSpec("lse_c", "LSE-C", "", "higher", "lip sync"),
    MetricSpec("lse_offset", "AV offset", "frames", "closer to 0", "lip sync"),
    # ground truth only: SyncNet on the dataset's own video frames instead of the re-rendered motion
    MetricSpec("lse_d_video", "LSE-D (source video)", "", "lower", "lip sync"),
    MetricSpec("lse_c_video", "LSE-C (source video)", "", "higher", "lip sync"),
    # ksdiff-metrics-4: upper-face dynamics and mouth opening (ksdiff.metrics.fdd, ksdiff.metrics.mod)
    MetricSpec(FDD, "FDD", "inter-ocular units²", "closer to 0", "upper face"),
    MetricSpec(FDD_FLAME, "FDD FLAME", "mm²", "closer to 0", "upper face"),
    MetricSpec(MOD, "MOD", "inter-ocular units", "lower", "lip shape"),
    # ksdiff-metrics-5: each sample's video against the clip's recorded video (CPBD: no reference), when
    # eval.video_metrics enables them. M-LMD measures the mouth's landmarks, as LVE does on meshes: lip shape.
    MetricSpec(PSNR, "PSNR", "dB", "higher", "video fidelity"),
    MetricSpec(SSIM, "SSIM", "", "higher", "video fidelity"),
    MetricSpec(CPBD, "CPBD", "", "higher", "video fidelity"),
    MetricSpec(F_LMD, "F-LMD", "px", "lower", "video fidelity"),
    MetricSpec(M_LMD, "M-LMD", "px", "lower", "lip shape"),
    # ksdiff-metrics-5, from weights the user supplies (eval.fid_inception, fvd_i3d, lpips_alexnet,
    # arcface_model): the method's frames against the clip's recorded video. CSIM measures whether the face
    # stays the same person, not how close the pixels are: its own family, identity.
    MetricSpec(LPIPS, "LPIPS", "", "lower", "video fidelity"),
    MetricSpec(CSIM, "CSIM", "", "higher", "identity"),
    # set-level like E-FID (attrs['fid'], attrs['fvd']): distributions over the method's scored test clips
    MetricSpec(FID, "FID", "", "lower", "video fidelity"),
    MetricSpec(FVD, "FVD", "", "lower", "video fidelity"),
    # set-level: one value per method over all scored test clips, kept in the metrics table's attrs['efid']
    MetricSpec("efid", "E-FID", "", "lower", "expression distribution"),
)
BY_NAME: dict[str, MetricSpec] = {s.name: s for s in SPECS}

# name -> (label, unit, which way is better): the report's column heads and arrows.
METRIC_INFO: dict[str, tuple[str, str, str]] = {s.name: (s.label, s.unit, s.better) for s in SPECS}
EFID = "efid"
SET_LEVEL = (EFID, FID, FVD)  # metrics with one value per method (attrs), never per-clip rows
