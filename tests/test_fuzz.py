"""Fuzzing: no bytes and no argument list breaks the detector, the codecs, the compressor's
container or the command line.

Each property is a `check_*` function that raises AssertionError on a violation (or lets an
unexpected exception through); the tests below feed them with hypothesis, and
`benchmarks/fuzz.py` feeds the very same functions 100,000+ seeded mutations.

Profiles: "ci" (the default: a few seconds for the whole file) and "long" (thousands of
examples per test), picked with OMNIBYTE_FUZZ_PROFILE=long.
"""

from __future__ import annotations

import os
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from omnibyte.modality import Modality
from tests.fuzz_cases import (
    CHEAP_COMMANDS,
    CHEAP_TOKENS,
    COMPRESS_MISSING,
    DETECTOR,
    DETECTOR_MAGIC,
    FUZZ,
    FUZZ_SLOW,
    NATIVE,
    NATIVE_MODALITIES,
    PROFILE,
    SEEDS,
    UPLOADS,
    apply_edits,
    argument,
    cheap_argv,
    check_decode,
    check_decompress,
    check_detector,
    check_main,
    check_parse,
    check_to_native,
    command_line,
    compress,
    damaged,
    edit,
    forged_container,
    make_cli_folder,
    make_containers,
)


@FUZZ
@given(st.binary(max_size=4000))
def test_detector_segments_cover_arbitrary_bytes(data):
    check_detector(data, DETECTOR)


@FUZZ
@given(damaged(list(NATIVE.values()), joins=3))
def test_detector_segments_cover_damaged_and_spliced_native_files(data):
    check_detector(data, DETECTOR)


@FUZZ_SLOW
@given(st.one_of(st.binary(min_size=64, max_size=3000), damaged(SEEDS, joins=2)))
def test_detector_with_libmagic_segments_cover_any_bytes(data):
    check_detector(data, DETECTOR_MAGIC)


@pytest.mark.parametrize("modality", NATIVE_MODALITIES, ids=str)
@FUZZ
@given(data=st.one_of(st.binary(max_size=5000), damaged(SEEDS, joins=2)))
def test_decode_native_never_raises_on_any_bytes_and_keeps_its_promised_shape(modality, data):
    check_decode(data, modality)


@pytest.mark.parametrize("modality", NATIVE_MODALITIES, ids=str)
@FUZZ
@given(data=st.data())
def test_decode_native_of_its_own_format_damaged_keeps_its_promised_shape(modality, data):
    check_decode(data.draw(damaged([NATIVE[modality]])), modality)


@pytest.mark.parametrize("modality", [None, *NATIVE_MODALITIES], ids=str)
@FUZZ
@given(data=st.one_of(st.binary(max_size=3000), damaged(SEEDS)))
def test_to_native_converts_exactly_or_refuses_with_omnibyte_error(modality, data):
    check_to_native(data, modality)


@pytest.mark.parametrize("name", sorted(UPLOADS))
def test_every_upload_seed_converts_cleanly(name):
    assert check_to_native(UPLOADS[name], None) == "converted"


needs_compress = pytest.mark.skipif(compress is None, reason=COMPRESS_MISSING or "")


@pytest.fixture(scope="module")
def fuzz_model():
    import torch
    from conftest import tiny_model

    # one thread: a tiny model's steps are too small to share, and on a loaded machine two
    # threads spin-waiting on each other made these tests ten times slower
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield tiny_model()
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def containers(fuzz_model):
    return make_containers(fuzz_model)


@needs_compress
@FUZZ_SLOW
@given(st.one_of(st.binary(max_size=200), st.binary(max_size=200).map(lambda b: b"OMB\x01" + b)))
def test_decompressing_arbitrary_bytes_is_refused_with_omnibyte_error(fuzz_model, blob):
    assert check_decompress(fuzz_model, blob) == "refused"


@needs_compress
@FUZZ_SLOW
@given(data=st.data())
def test_a_damaged_container_never_decompresses_to_wrong_bytes(fuzz_model, containers, data):
    blob, original = data.draw(st.sampled_from(containers))
    check_decompress(fuzz_model,
                     data.draw(st.builds(apply_edits, st.just(blob), st.lists(edit, min_size=1, max_size=4))),
                     original)


@needs_compress
@FUZZ_SLOW
@given(tag=st.integers(0, 6), sizes=st.tuples(st.integers(0, 40), st.integers(0, 70), st.integers(0, 18)),
       streams=st.lists(st.binary(max_size=40), max_size=3), checksum=st.integers(0, 2**32 - 1))
def test_a_forged_header_that_passes_its_check_is_still_caught(fuzz_model, tag, sizes, streams, checksum):
    check_decompress(fuzz_model, forged_container(fuzz_model, tag, sizes, streams, checksum))


@FUZZ
@given(st.one_of(st.lists(argument, max_size=8), command_line))
def test_parsing_any_argument_list_gives_a_namespace_or_an_argparse_exit(argv):
    check_parse(argv)


@pytest.fixture(scope="module")
def cli_folder(tmp_path_factory):
    return make_cli_folder(tmp_path_factory.mktemp("cli-fuzz"))


@FUZZ_SLOW
@given(command=st.sampled_from(CHEAP_COMMANDS),
       rest=st.lists(st.one_of(st.sampled_from(CHEAP_TOKENS), st.text(max_size=8)), max_size=6))
def test_the_cli_on_any_arguments_exits_0_1_or_2_without_a_traceback(cli_folder, command, rest):
    check_main(cheap_argv(command, rest), cli_folder)


@pytest.mark.parametrize("threads", ["5000", "99999999999"])
def test_a_thread_count_torch_cannot_take_is_refused_by_the_parser(threads):
    # 99999999999 overflowed inside torch; 100000 made the first matrix product segfault
    assert check_parse(["info", "--preset", "tiny", "--threads", threads]) == "exit 2"


@pytest.mark.parametrize("name", ["a\x00b", "\ud800"])
@pytest.mark.parametrize("command", ["detect", "decompress"])
def test_a_file_name_no_filesystem_can_hold_is_an_argument_error(cli_folder, command, name):
    argv = [command, name] if command == "detect" else [command, "--preset", "tiny", name, "out.bin"]
    assert check_main(argv, cli_folder) == "exit 2"


def test_a_file_name_that_is_not_utf8_is_shown_escaped_on_a_strict_terminal(cli_folder):
    assert check_main(["detect", os.fsdecode(b"\xff.bin")], cli_folder) == "exit 0"


def test_the_profiles_are_registered_and_the_long_one_is_long():
    assert settings.get_profile("long").max_examples >= 10 * settings.get_profile("ci").max_examples
    assert PROFILE in ("ci", "long")


def test_a_wav_claiming_a_2_ghz_sample_rate_converts_in_bounded_memory():
    # the resampler sized its kernel by the claimed rate alone: 8.6 million taps, ~1 GB and
    # seconds of work, for a 1 kB upload
    import tracemalloc

    wav = bytearray(UPLOADS["wav"])
    struct.pack_into("<I", wav, 24, 2**31 - 1)
    check_to_native(UPLOADS["wav"], Modality.AUDIO)  # imports scipy first, so only the conversion is measured
    tracemalloc.start()
    try:
        assert check_to_native(bytes(wav), Modality.AUDIO) == "converted"
        assert tracemalloc.get_traced_memory()[1] < 20 * 2**20
    finally:
        tracemalloc.stop()

