import pytest
import yaml

from ksdiff import config
from tests.conftest import REPO


def test_repo_config_is_valid_and_defaults_are_filled():
    cfg = config.load(REPO / "config.yaml")
    assert cfg["fps"] == 25 and cfg["sample_rate"] == 16000
    assert cfg["landmarks"]["min_detection_score"] == 0.5  # default from the schema
    assert cfg["coeffs"]["n_expr"] == 50


def test_unknown_or_bad_values_are_reported_with_their_place(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text(yaml.safe_dump({"datasets": [{"name": "x", "root": "r", "layout": "youtube"}]}))
    with pytest.raises(config.ConfigError, match="datasets/0/layout"):
        config.load(p)
    with pytest.raises(config.ConfigError, match="datasets"):
        config.validate({})
