"""With several faces in the frame, landmarks follow the one that speaks."""
import numpy as np
import pytest

from ksdiff import config
from ksdiff.data.synth.corpus import plan_speakers, speaker_rig
from ksdiff.extract.landmarks import LandmarkOptions, track_frames


@pytest.fixture(scope="module")
def two_faces():
    """Frames of two faces side by side, (talking-left frames, talking-right frames)."""
    cfg = config.defaults()
    spk = plan_speakers(cfg)[0]
    portrait, rig = speaker_rig(cfg, spk)
    yaw, pitch, roll = portrait.base_pose
    n = 50
    jaw = 0.5 - 0.5 * np.cos(np.arange(n) * 2 * np.pi / 8)  # a syllable every 8 frames, closed at first
    # The silent face holds its mouth a little open: on the first frame it is the
    # larger face, which the size-and-centre rule alone would pick.
    still = rig.render(rig.pose(yaw, pitch, roll, np.zeros(3), 0.4, 0.0))
    talk = [rig.render(rig.pose(yaw, pitch, roll, np.zeros(3), float(j), 0.0)) for j in jaw]
    left = [np.concatenate([t, still], axis=1) for t in talk]
    right = [np.concatenate([still, t], axis=1) for t in talk]
    return left, right, still.shape[1]


def _centre_x(frames):
    seq = [(k, k / 25, k, f) for k, f in enumerate(frames)]
    cols, _ = track_frames(seq, LandmarkOptions())
    det = cols["detected"]
    assert det.mean() > 0.9
    assert (cols["n_faces"][det] >= 2).all()
    lm = cols["landmarks"][det].reshape(det.sum(), -1, 3)
    return np.nanmean(lm[:, :, 0], axis=1)


def test_the_talking_face_is_followed_wherever_it_is(two_faces):
    left, right, w = two_faces
    assert (_centre_x(left) < w).all()
    assert (_centre_x(right) > w).all()
