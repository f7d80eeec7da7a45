"""CSIM: ksdiff's ArcFace embeddings and similarities equal InsightFace's own ArcFaceONNX.get / compute_sim on
identical frames and keypoints, with a small random ONNX model of ArcFace's signature (1 x 3 x 112 x 112 ->
512) saved to a file as a user would configure it (issue 24 item 4); known answers."""
import numpy as np
import pytest
import torch
from insightface.app.common import Face
from insightface.model_zoo.arcface_onnx import ArcFaceONNX

from ksdiff.metrics import csim
from ksdiff.metrics.weights import Weights
from tests.render_fixtures import face_photo


class TinyArcFace(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 8, 4, stride=4)
        self.fc = torch.nn.Linear(8 * 4 * 4, 512)

    def forward(self, x):
        h = torch.nn.functional.adaptive_avg_pool2d(torch.relu(self.conv(x)), 4)
        return self.fc(h.flatten(1))


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("arcface") / "arcface_random.onnx"
    torch.onnx.export(TinyArcFace().eval(), torch.zeros(1, 3, 112, 112), str(path), dynamo=False,
                      input_names=["input"], output_names=["fc1"], dynamic_axes={"input": {0: "n"}, "fc1": {0: "n"}})
    return Weights.of("arcface_model", path)


def _faces(seed, t=4, size=160):
    """Random frames and (T, 478, 3) landmarks whose five ArcFace points sit where a face's would, jittered."""
    rng = np.random.default_rng(seed)
    frames = rng.integers(0, 256, (t, size, size, 3)).astype(np.uint8)
    lm = np.full((t, 478, 3), np.nan)
    base = np.array([[60, 70], [100, 70], [80, 95], [64, 118], [96, 118]], float)
    for k, idx in enumerate(csim.FIVE_POINTS):
        lm[:, idx, :2] = base[k] + rng.normal(0, 2, (t, 2))
        lm[:, idx, 2] = 0
    return frames, lm


def test_embeddings_and_similarity_equal_insightface(weights):
    model = csim.load_arcface(weights)
    ref = ArcFaceONNX(model_file=weights.path)  # InsightFace's own session and input scaling
    frames, lm = _faces(0)
    other, lm2 = _faces(1)
    lm[2] = np.nan  # a frame without a face: no embedding
    got = csim.embeddings(model, frames, lm, batch=3)
    assert np.isnan(got[2]).all() and np.isfinite(np.delete(got, 2, 0)).all()
    got2 = csim.embeddings(model, other, lm2)
    for t in (0, 1, 3):
        want = ref.get(frames[t][..., ::-1].copy(), Face(kps=lm[t, list(csim.FIVE_POINTS), :2]))  # BGR, as cv2 reads
        np.testing.assert_allclose(got[t], want, rtol=1e-5, atol=1e-6)
        want2 = ref.get(other[t][..., ::-1].copy(), Face(kps=lm2[t, list(csim.FIVE_POINTS), :2]))
        sim = csim.cosine(got[t:t + 1], got2[t:t + 1])[0]
        assert sim == pytest.approx(ref.compute_sim(want, want2), abs=1e-6)
    assert np.allclose(csim.cosine(got[[0, 1, 3]], got[[0, 1, 3]]), 1)  # a face against itself
    assert np.isnan(csim.cosine(got[2:3], got2[2:3]))[0]


def test_a_real_face_against_itself_and_a_shifted_copy(weights):
    """CSIM of a real face with itself is 1; the same face moved in the frame, its landmarks moved with it,
    aligns to the same crop, so it stays near 1 (alignment works), while another face photo does not."""
    model = csim.load_arcface(weights)
    frame, lm = face_photo()
    shifted = np.roll(frame, (6, -4), axis=(0, 1))
    lm_s = lm + np.array([-4, 6, 0])
    e = csim.embeddings(model, np.stack([frame, shifted]), np.stack([lm, lm_s]))
    assert csim.cosine(e[:1], e[:1])[0] == pytest.approx(1)
    noise = np.random.default_rng(0).integers(0, 256, frame.shape).astype(np.uint8)
    e_noise = csim.embeddings(model, noise[None], lm[None])
    assert csim.cosine(e[:1], e[1:])[0] > csim.cosine(e[:1], e_noise)[0]


def test_five_points_are_insightface_order_on_a_real_face():
    """Image-left eye first, then the other eye, the nose tip, image-left then image-right mouth corner, on
    MediaPipe landmarks of a real face (insightface's Tom Hanks photo, tests.render_fixtures)."""
    kps = csim.five_points(face_photo()[1][None])[0]
    assert kps[0, 0] < kps[1, 0] and kps[3, 0] < kps[4, 0]
    assert kps[0, 1] < kps[2, 1] < kps[3, 1]
