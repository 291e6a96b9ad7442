import subprocess
import sys

import pytest

import omnibyte


def test_every_public_name_resolves_to_what_its_module_defines():
    from omnibyte import detector, model

    for name in omnibyte.__all__:
        assert getattr(omnibyte, name) is not None
    assert omnibyte.BytePredictor is model.BytePredictor and omnibyte.ModalityDetector is detector.ModalityDetector


def test_the_detector_and_config_load_without_torch():
    code = ("import sys; from omnibyte import ModalityDetector, ModelConfig, Segment; "
            "ModalityDetector().detect_bytes(b'hello'); print('torch' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


def test_an_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'Nothing'"):
        omnibyte.Nothing  # noqa: B018
