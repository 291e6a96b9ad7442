import json

import numpy as np
import pytest
import torch
from conftest import tiny_model

from omnibyte.cli import main
from omnibyte.errors import OmniByteError
from omnibyte.modality import Modality
from omnibyte.tools.anomaly import AnomalySettings, analyse_bytes, find_anomalies, find_regions

PATTERN = bytes(range(8)) * 2


def typical_surprisal(n: int, seed: int = 0, hard_per_kb: int = 10) -> np.ndarray:
    """A file the model reads at about 3 bits per byte, with an occasional sharp spike."""
    rng = np.random.default_rng(seed)
    surprisal = np.abs(rng.normal(3.0, 0.6, n))
    spikes = rng.choice(n, n * hard_per_kb // 1000, replace=False)
    surprisal[spikes] = rng.uniform(9.0, 15.0, spikes.size)  # single surprising bytes are normal, not anomalies
    return surprisal


def test_a_clean_file_has_no_regions():
    assert find_regions(typical_surprisal(4000)).regions == []


def test_an_injected_run_is_found_where_it_was_put():
    surprisal = typical_surprisal(4000)
    surprisal[1500:1564] = np.random.default_rng(1).normal(10.5, 1.0, 64)
    [region] = find_regions(surprisal).regions
    assert abs(region.start - 1500) <= 4 and abs(region.end - 1564) <= 4
    assert region.score == pytest.approx(7.5, abs=1.0)


def test_one_surprising_byte_in_a_native_header_is_a_region_and_elsewhere_is_not():
    surprisal = np.abs(np.random.default_rng(2).normal(0.3, 0.1, 3126))
    surprisal[54:] += 3.0  # pixels cost more than the all-but-fixed header
    surprisal[600::500] = 13.0  # and some are hard (so 14 bits does not stand out from them)
    surprisal[[20, 22, 900]] = 14.0  # two flipped bits in the header, one odd pixel
    assert find_regions(surprisal).regions == []  # no header: single bytes never count
    [region] = find_regions(surprisal, header_size=54).regions
    assert (region.start, region.end) == (20, 23)  # the two header bytes, merged
    assert region.score > 5  # (14 + 0.3 + 14) / 3 bits against a baseline of about 3.3
    surprisal[20] = surprisal[22] = 5.0  # below header_spike_bits
    assert find_regions(surprisal, header_size=54).regions == []


def test_the_two_seams_of_an_insertion_make_one_region():
    # predictable foreign content costs little, but its first byte and the first byte after it spike
    surprisal = typical_surprisal(4000, hard_per_kb=1)  # a file the model knows: hard bytes are rare
    surprisal[2000:2064] = 0.5
    surprisal[[2000, 2064]] = [17.0, 18.0]
    [region] = find_regions(surprisal).regions
    assert (region.start, region.end) == (2000, 2065)
    # far apart, they are two regions
    surprisal[2064], surprisal[2400] = 3.0, 18.0
    assert [(r.start, r.end) for r in find_regions(surprisal).regions] == [(2000, 2001), (2400, 2401)]


def test_seams_below_spike_bits_count_where_they_stand_far_above_the_rest_of_the_file():
    settings = AnomalySettings()
    rng = np.random.default_rng(5)
    calm = np.abs(rng.normal(1.0, 0.5, 3000)).clip(max=7.0)  # a file the model reads easily, never above 7 bits
    seam = max(settings.spike_floor_bits, np.median(calm) + settings.spike_excess_bits) + 0.5
    assert seam + 0.5 < settings.spike_bits  # well under spike_bits
    calm[[1200, 1264]] = [seam + 0.5, seam]  # an insertion's seams, far above everything else
    [region] = find_regions(calm, settings).regions
    assert (region.start, region.end) == (1200, 1265)
    # the same seams in a file with one byte of its own nearly as surprising do not stand out
    calm[300] = seam + 0.5 - settings.spike_margin_bits + 0.25
    assert find_regions(calm, settings).regions == []
    # noise throughout (random bytes): every byte has rivals farther away, so none stands out
    noise = rng.uniform(6.0, settings.spike_bits - 0.5, 2000)
    assert find_regions(noise, settings).regions == []


def test_a_spike_is_measured_against_the_files_own_baseline():
    settings = AnomalySettings()
    rng = np.random.default_rng(6)
    unpredictable = rng.normal(9.5, 0.8, 4000)  # random bytes: the model pays about 9.5 bits each
    unpredictable[[900, 2900]] = settings.spike_bits + 0.5  # the tail of that noise
    assert find_regions(unpredictable, settings).regions == []
    # the same bytes in a file the model reads at 3 bits are seams
    surprisal = typical_surprisal(4000, hard_per_kb=1)
    surprisal[[900, 2900]] = settings.spike_bits + 0.5
    assert [(r.start, r.end) for r in find_regions(surprisal, settings).regions] == [(900, 901), (2900, 2901)]
    assert find_regions(unpredictable, AnomalySettings(spike_excess_bits=0.0)).regions != []


def test_a_spike_in_a_file_where_hard_bytes_are_common_is_its_tail_not_a_seam():
    settings = AnomalySettings()
    surprisal = typical_surprisal(4000, hard_per_kb=0)
    surprisal[2000] = settings.spike_bits + 1.0
    assert [(r.start, r.end) for r in find_regions(surprisal, settings).regions] == [(2000, 2001)]
    # a file from outside what the model knows: it pays spike_floor_bits for a byte here and there,
    # more often than the spike budget allows (4,000 bytes: 8), so a 17-bit byte is its tail
    budget = int(settings.spikes_per_kb * 4)
    surprisal[np.linspace(100, 1700, budget + 1).astype(int)] = settings.spike_floor_bits + 1.0
    assert find_regions(surprisal, settings).regions == []
    # those near the spike are its own neighbourhood and do not count
    surprisal[np.linspace(100, 1700, budget + 1).astype(int)[:1]] = 3.0
    surprisal[1900] = settings.spike_floor_bits + 1.0
    assert [(r.start, r.end) for r in find_regions(surprisal, settings).regions] == [(2000, 2001)]


def test_spikes_in_a_noisy_file_the_warm_up_or_a_header_are_not_regions():
    rng = np.random.default_rng(4)
    surprisal = typical_surprisal(4000)
    surprisal[rng.choice(4000, 12, replace=False)] = 20.0  # 3 per 1,000 bytes: spikes are this file's normal
    assert find_regions(surprisal).regions == []
    surprisal = typical_surprisal(4000)
    surprisal[[3, 1003]] = 20.0  # both in the warm-up after a context start
    assert find_regions(surprisal, context_starts=(0, 1000)).regions == []
    surprisal = typical_surprisal(4000)
    surprisal[30] = 20.0  # a header byte: the header rule's, and it reports it once
    assert [(r.start, r.end) for r in find_regions(surprisal, header_size=54).regions] == [(30, 31)]


def test_surprises_spread_through_a_file_are_its_normal_but_one_standing_out_is_not():
    surprisal = typical_surprisal(4000)
    for start in range(200, 4000, 250):  # 40-byte passages the model finds hard, all alike, 15% of the file
        surprisal[start:start + 40] = 10.0
    assert find_regions(surprisal).regions == []
    surprisal[2310:2374] = 14.0  # one that stands out even from them (and more than merge_gap from them)
    [region] = find_regions(surprisal).regions
    assert abs(region.start - 2310) <= 2 and abs(region.end - 2374) <= 2
    # and a damaged run that is a large share of a short file still stands out from the rest
    short = typical_surprisal(400)
    short[100:180] = 11.0
    [region] = find_regions(short).regions
    assert abs(region.start - 100) <= 2 and abs(region.end - 180) <= 2


def test_native_header_sizes():
    from omnibyte.codecs import audio_to_wav, frames_to_y4m, pixels_to_bmp
    from omnibyte.tools.anomaly import native_header_size

    bmp = pixels_to_bmp(np.zeros((32, 32, 3), dtype=np.uint8))
    wav = audio_to_wav(np.full(4000, 128, dtype=np.uint8))
    y4m = frames_to_y4m(np.zeros((8, 16, 16), dtype=np.uint8))
    assert native_header_size(bmp, Modality.IMAGE) == 54
    assert native_header_size(wav, Modality.AUDIO) == 44
    assert native_header_size(y4m, Modality.VIDEO) == y4m.index(b"\n") + 1
    assert native_header_size(b"BM", Modality.IMAGE) == 2  # truncated: what there is
    assert native_header_size(b"YUV4MPEG2 " + b"x" * 500, Modality.VIDEO) == 0  # the line never ends
    assert native_header_size(bmp, Modality.TEXT) == 0


def test_a_run_in_a_flat_file_is_found_despite_zero_spread():
    surprisal = np.zeros(3000)
    surprisal[2000:2032] = 9.0
    [region] = find_regions(surprisal).regions
    assert abs(region.start - 2000) <= 1 and abs(region.end - 2032) <= 1


def test_a_level_below_a_uniform_guess_is_not_flagged():
    # 6 bits per byte stands far above a flat file's baseline but is still better than guessing
    surprisal = np.zeros(3000)
    surprisal[1000:1100] = 6.0
    assert find_regions(surprisal).regions == []


def test_nearby_runs_merge_into_one_region():
    surprisal = typical_surprisal(3000)
    surprisal[1000:1040] = 11.0
    surprisal[1050:1090] = 11.0
    [region] = find_regions(surprisal).regions
    assert abs(region.start - 1000) <= 4 and abs(region.end - 1090) <= 4


def test_the_first_bytes_of_each_context_are_never_flagged():
    surprisal = typical_surprisal(3000)
    surprisal[:8] = 12.0
    surprisal[2000:2008] = 12.0
    assert find_regions(surprisal, context_starts=(0, 2000)).regions == []


def test_an_empty_file_has_no_regions():
    assert find_regions(np.zeros(0)).regions == []


def test_bad_settings_and_arrays_are_refused():
    with pytest.raises(OmniByteError, match="window"):
        AnomalySettings(window=0)
    with pytest.raises(OmniByteError, match="max_excess_bits"):
        AnomalySettings(min_excess_bits=5, max_excess_bits=1)
    with pytest.raises(OmniByteError, match="spike_merge_gap"):
        AnomalySettings(spike_merge_gap=-1)
    with pytest.raises(OmniByteError, match="outlier_quantile"):
        AnomalySettings(outlier_quantile=1.5)
    with pytest.raises(OmniByteError, match="spike_bits"):
        AnomalySettings(spike_bits=float("nan"))
    with pytest.raises(OmniByteError, match="spike_margin_bits"):
        AnomalySettings(spike_margin_bits=-1.0)
    with pytest.raises(OmniByteError, match="one-dimensional"):
        find_regions(np.zeros((2, 2)))
    with pytest.raises(OmniByteError, match="finite"):
        find_regions(np.array([1.0, np.nan]))


@pytest.fixture(scope="module")
def pattern_model():
    """The tiny model trained for a moment on one repeating 16-byte pattern (about a second)."""
    model = tiny_model(seed=0).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    stream = torch.tensor(list(PATTERN * 8), dtype=torch.long)
    for _ in range(100):
        offsets = torch.randint(0, 16, (8,))
        batch = torch.stack([stream[o:o + 64] for o in offsets])  # (8, 64)
        logits = model(batch[:, :-1])
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.size(-1)), batch[:, 1:].reshape(-1))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval()


def test_a_model_finds_foreign_bytes_in_the_pattern_it_knows(pattern_model):
    data = bytearray(PATTERN * 25)
    data[200:248] = np.random.default_rng(0).integers(100, 256, 48, dtype=np.uint8).tobytes()
    report = analyse_bytes(pattern_model, bytes(data), Modality.BINARY)
    assert report.surprisal_bits.shape == (len(data),)
    [region] = report.regions
    assert abs(region.start - 200) <= 8 and abs(region.end - 248) <= 8


def test_find_anomalies_refuses_what_is_not_bytes(model):
    with pytest.raises(OmniByteError, match="expected bytes"):
        find_anomalies(model, [1, 2, 3])  # type: ignore[arg-type]


def test_the_cli_prints_regions_as_json(capsys, tmp_path):
    checkpoint = tiny_model().save_pretrained(tmp_path / "ckpt")
    path = tmp_path / "file.bin"
    path.write_bytes(PATTERN * 10)
    assert main(["anomalies", "--model", str(checkpoint), str(path), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["path"] == str(path) and isinstance(out["regions"], list)
    assert all(set(r) == {"start", "end", "score"} for r in out["regions"])


def test_the_cli_refuses_a_missing_file_in_one_line(capsys, tmp_path):
    assert main(["anomalies", "--preset", "tiny", str(tmp_path / "missing")]) == 1
    err = capsys.readouterr().err
    assert "file not found" in err and err.count("\n") == 1


def test_bytes_their_context_makes_dearer_are_a_region_and_hard_content_is_not():
    # a picture the model reads at about 5.5 bits a byte, a little better in place than alone
    rng = np.random.default_rng(3)
    in_place = np.abs(rng.normal(5.5, 1.2, 3126))
    alone = in_place + np.abs(rng.normal(0.8, 0.5, 3126))
    assert find_regions(in_place, alone_bits=alone).regions == []
    # a sentence written into it: 6.5 bits in place (no rule of surprisal alone sees that), 2.5 alone
    in_place[1000:1064], alone[1000:1064] = rng.normal(6.5, 0.5, 64), rng.normal(2.5, 0.5, 64)
    assert find_regions(in_place).regions == []
    [region] = find_regions(in_place, alone_bits=alone).regions
    assert 1000 - 16 <= region.start and region.end <= 1064 + 16 and region.end - region.start >= 32
    # hard content (a texture) costs as much alone as in place: no region
    in_place[1000:1064] = alone[1000:1064] = rng.normal(7.2, 0.5, 64)
    assert find_regions(in_place, alone_bits=alone).regions == []
    with pytest.raises(OmniByteError, match="one per byte"):
        find_regions(in_place, alone_bits=alone[:-1])
    # after damage the first rule finds (random bytes at 10.5 bits), what follows is read in a
    # damaged context: dearer in place than alone, but the damage's echo, not a second region
    in_place[1000:1064], alone[1000:1064] = rng.normal(6.5, 0.5, 64), rng.normal(2.5, 0.5, 64)
    in_place[600:664] = alone[600:664] = rng.normal(10.5, 0.5, 64)
    [damage] = find_regions(in_place, alone_bits=alone).regions
    assert abs(damage.start - 600) <= 8 and abs(damage.end - 664) <= 8


def test_score_alone_scores_each_byte_within_a_short_piece_of_its_own():
    from omnibyte.tools.score import score_alone, score_bytes

    model = tiny_model()
    data = bytes(np.random.default_rng(4).integers(0, 256, 200, dtype=np.uint8))
    alone = score_alone(model, data, piece=32)
    assert alone.shape == (200,) and np.all(np.isfinite(alone)) and np.all(alone >= 0)
    # a byte in the second half of its piece at offset 0 is scored there, as score_bytes scores a
    # 32-byte file of that piece
    piece = data[64:96]
    assert np.allclose(alone[64 + 16:96], score_bytes(model, piece).surprisal_bits[16:], atol=1e-4)
    # and the first byte of a piece at offset 0 is scored in the piece that started 16 bytes earlier
    assert np.allclose(alone[64], score_bytes(model, data[48:80]).surprisal_bits[16], atol=1e-4)
    with pytest.raises(OmniByteError, match="at least 2 bytes"):
        score_alone(model, data, piece=1)
