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


def test_the_wheel_holds_every_subpackage_and_the_shipped_checkpoint(tmp_path):
    import zipfile
    from pathlib import Path

    setuptools = pytest.importorskip("setuptools")
    if int(setuptools.__version__.split(".")[0]) < 68:
        pytest.skip("pyproject.toml needs setuptools >= 68")
    import shutil

    root = Path(__file__).resolve().parent.parent
    source = tmp_path / "source"  # setuptools writes build/ beside the sources: a copy keeps the tree clean
    source.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(root / name, source / name)
    shutil.copytree(root / "omnibyte", source / "omnibyte", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(root / "assets" / "checkpoint", source / "assets" / "checkpoint")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                    str(tmp_path), str(source)], check=True, capture_output=True, cwd=tmp_path)
    (wheel,) = tmp_path.glob("omnibyte-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    packages = {str(p.parent.relative_to(root)) for p in (root / "omnibyte").rglob("__init__.py")}
    assert {f"{package}/__init__.py" for package in packages} <= names
    assert {"omnibyte/model/transformer.py", "omnibyte/web/service.py", "omnibyte/tools/classical.py"} <= names
    data = {n.split(".data/data/", 1)[1] for n in names if ".data/data/" in n}
    assert data == {"share/omnibyte/checkpoint/config.json", "share/omnibyte/checkpoint/model.safetensors"}
