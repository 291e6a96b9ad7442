"""Nasty inputs (tests/nasty/, rebuilt by tests/nasty/build.py): each gets a clear message or is
handled, quickly and in bounded memory, in the command line and in the app's prompt building."""

from __future__ import annotations

import resource
import subprocess
import sys
import time
from pathlib import Path

import pytest

from omnibyte.cli import main
from omnibyte.codecs import MAX_UPLOAD_BYTES
from omnibyte.errors import OmniByteError, read_file
from omnibyte.generation.prompt import MAX_PROMPT_TOKENS, build_prompt

NASTY = Path(__file__).resolve().parent / "nasty"
ROOT = NASTY.parent.parent

# file: the message it must be refused with, or None when it is handled
EXPECTED = {
    "empty.bin": "is empty",
    "one-byte.bin": None,
    "huge-dimensions.bmp": "declares too many pixels",
    "bomb.png": "declares too many pixels",
    "4gb-claim.wav": None,  # read as the 1,000 samples that are there
    "huge-frame.y4m": "declares 100000x100000 frames",
    "invalid-utf8.txt": None,  # shown with the invalid bytes escaped, never dropped
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_cli_refuses_or_handles_each_nasty_file_quickly(name, tmp_path, capsys):
    started = time.process_time()  # CPU time: a busy machine does not stretch it
    # seeded: unseeded, the untrained model can end the document within its 4 bytes (about 4 chances in 260)
    code = main(["generate", "--preset", "tiny", "--prompt-file", str(NASTY / name), "--convert", "--max-bytes", "4",
                 "--seed", "0", "--quiet", "-o", str(tmp_path / "out.bin")])
    err = capsys.readouterr().err
    assert time.process_time() - started < 10
    if EXPECTED[name] is None:
        assert code == 0 and (tmp_path / "out.bin").stat().st_size == 4, err
    else:
        assert code == 1 and EXPECTED[name] in err and err.count("\n") <= 3, err
    # the detector takes every one of them without complaint
    assert main(["detect", str(NASTY / name)]) == 0


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_app_prompt_refuses_or_handles_each_nasty_file(name):
    data = (NASTY / name).read_bytes()
    if EXPECTED[name] is None:
        assert build_prompt(upload=data, filename=name).tokens
    else:
        with pytest.raises(OmniByteError, match=EXPECTED[name]):
            build_prompt(upload=data, filename=name)
    assert build_prompt(upload=data, filename=name, raw=True).tokens if data else True


def test_file_names_with_separators_and_shell_characters_are_only_names(tmp_path):
    weird = tmp_path / "a;rm -rf $(echo x) `y` & 'z'.txt"
    weird.write_text("just text")
    assert main(["generate", "--preset", "tiny", "--prompt-file", str(weird), "--convert", "--max-bytes", "2",
                 "--quiet", "-o", str(tmp_path / "out.bin")]) == 0
    # in the app a name is only a hint for the file type: nothing is opened by it
    prompt = build_prompt(upload=b"just text", filename="../../etc/passwd;$(reboot).txt")
    assert prompt.part_bytes == b"just text"


def test_a_file_over_the_cap_is_refused_from_its_size_before_it_is_read(tmp_path):
    huge = tmp_path / "huge.bin"
    with open(huge, "wb") as f:  # sparse: 200 MB long, nothing written
        f.truncate(200 * 2**20)
    started = time.process_time()
    with pytest.raises(OmniByteError, match="the limit is 52,428,800 bytes"):
        read_file(huge, limit=MAX_UPLOAD_BYTES)
    assert time.process_time() - started < 0.5


def test_a_50_mb_text_prompt_runs_quickly_in_bounded_memory(tmp_path):
    big = tmp_path / "big.txt"
    line = b"All work and no play makes Jack a dull boy.\n"
    big.write_bytes(line * ((MAX_UPLOAD_BYTES - 1000) // len(line)))
    # the CLI in a fresh process that reports its own peak memory as it exits
    # VmHWM, not ru_maxrss: Linux keeps ru_maxrss across exec, so a child forked from this
    # (large) pytest process would report the parent's size
    run_cli = ("import re, runpy, sys\n"
               "try:\n    runpy.run_module('omnibyte', run_name='__main__')\n"
               "finally:\n    status = open('/proc/self/status').read()\n"
               "    print('peak-kib', re.search(r'VmHWM:\\s+(\\d+)', status).group(1), file=sys.stderr)")
    # CPU seconds of the child, not wall-clock: the bound is about work done, and a machine
    # busy with other jobs (a training run, a parallel test) stretches wall-clock time only
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.run([sys.executable, "-c", run_cli, "generate", "--preset", "tiny", "--prompt-file", str(big),
                           "--convert", "--max-bytes", "4", "--quiet", "-o", str(tmp_path / "out.bin")],
                          capture_output=True, text=True, cwd=ROOT, timeout=120)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu_seconds = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    assert proc.returncode == 0, proc.stderr
    peak_mib = int(proc.stderr.split("peak-kib")[-1]) / 1024
    assert f"only the last {MAX_PROMPT_TOKENS:,} are the prompt" in proc.stderr
    # the bound docs/measured.md (Security) states: under 30 CPU seconds and under 600 MiB for a 50 MB prompt file
    assert cpu_seconds < 30 and peak_mib < 600, (cpu_seconds, peak_mib)
