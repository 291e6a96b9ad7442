"""The long fuzz run: the properties of tests/test_fuzz.py on 100,000+ seeded random cases.

The checks are the test file's own `check_*` functions; only the inputs differ: instead of
hypothesis, a seeded RNG draws arbitrary bytes, native files (alone or joined) with up to six
edits (set, flip, insert, delete, truncate, splice), forged compressor containers and argument
lists. Every case is reproducible from (seed, target, index), and any input that breaks a
property is saved under /tmp/omnibyte-fuzz/ with its traceback. A case running past
--case-timeout seconds counts as a failure too (a hang is a crash a user waits for).

    nice -n 5 python -m benchmarks.fuzz --json benchmarks/results/fuzz.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import signal
import sys
import tempfile
import time
import traceback
from collections import Counter
from pathlib import Path

from omnibyte.detector import ModalityDetector
from tests import fuzz_cases as tf

ROOT = Path(__file__).resolve().parent.parent

FAILURES_DIR = Path("/tmp/omnibyte-fuzz")
# cases per target for --scale 1: 103,000 in all
CASES = {
    "detector": 45_000,
    "detector+libmagic": 5_000,
    "decode_native": 24_000,
    "to_native": 15_000,
    "decompress": 3_000,
    "cli-parse": 10_000,
    "cli-main": 1_000,
}
NATIVES = list(tf.NATIVE.values())
RANDOM_TEXT = "aé€\u00a0\ud800\udcff\x00 -=./\\$;|`'\"*?\n\t狐🦊"


class CaseTimeout(Exception):
    pass


def _alarm(signum, frame):
    raise CaseTimeout("case ran past --case-timeout")


# ---- inputs, drawn like the hypothesis strategies ----

def arbitrary(rng: random.Random, limit: int = 4000) -> bytes:
    return rng.randbytes(int(limit ** rng.random()) if rng.random() < 0.95 else 0)


def damaged(rng: random.Random, seeds: list[bytes], joins: int = 1) -> bytes:
    whole = b"".join(rng.choice(seeds) for _ in range(rng.randint(1, joins)))
    edits = []
    for _ in range(rng.randint(0, 6)):
        if rng.random() < 0.5:
            chunk = rng.randbytes(rng.randint(1, 8))
        else:
            seed = rng.choice(tf.SEEDS)
            at = rng.randint(0, len(seed))
            chunk = seed[at:at + rng.randint(0, 400)]
        edits.append((rng.choice(tf.EDITS), rng.randrange(2**16), rng.randrange(256), chunk))
    return tf.apply_edits(whole, edits)


def some_bytes(rng: random.Random, seeds: list[bytes], joins: int = 1) -> bytes:
    return arbitrary(rng) if rng.random() < 0.4 else damaged(rng, seeds, joins)


def token(rng: random.Random, vocabulary: list[str], junk: float = 0.3) -> str:
    if rng.random() >= junk:
        return rng.choice(vocabulary)
    return "".join(rng.choice(RANDOM_TEXT) if rng.random() < 0.7 else chr(rng.randrange(0x20, 0x3000))
                   for _ in range(rng.randint(0, 12)))


# ---- one case of each target: (what to save if it fails, a callable running the check) ----

def make_targets(model, containers, cli_folder: Path):
    plain, with_magic = ModalityDetector(use_libmagic=False), ModalityDetector()
    modalities = list(tf.NATIVE_MODALITIES)

    def detector(rng):
        data = some_bytes(rng, NATIVES, joins=3)
        return data, lambda: tf.check_detector(data, plain) or "segmented"

    def detector_magic(rng):
        data = some_bytes(rng, tf.SEEDS, joins=2)
        return data, lambda: tf.check_detector(data, with_magic) or "segmented"

    def decode_native(rng):
        modality = rng.choice(modalities)
        data = some_bytes(rng, [tf.NATIVE[modality]] if rng.random() < 0.7 else tf.SEEDS, joins=2)
        return (modality, data), lambda: tf.check_decode(data, modality) or f"decoded {modality}"

    def to_native(rng):
        modality = rng.choice([None, *modalities])
        data = some_bytes(rng, tf.SEEDS)
        return (modality, data), lambda: f"{modality}: {tf.check_to_native(data, modality)}"

    def decompress(rng):
        kind = rng.choice(["arbitrary", "damaged", "forged"])
        original = None
        if kind == "arbitrary":
            blob = (b"OMB\x01" if rng.random() < 0.5 else b"") + arbitrary(rng, 200)
        elif kind == "damaged":
            blob, original = rng.choice(containers)
            blob = tf.apply_edits(blob, [(rng.choice(tf.EDITS), rng.randrange(2**16), rng.randrange(256),
                                          rng.randbytes(rng.randint(1, 8))) for _ in range(rng.randint(1, 4))])
        else:
            sizes = (rng.randint(0, 40), rng.randint(0, 70), rng.randint(0, 18))
            streams = [rng.randbytes(rng.randint(0, 40)) for _ in range(rng.randint(0, 3))]
            blob = tf.forged_container(model, rng.randint(0, 6), sizes, streams, rng.randrange(2**32))
        return blob, lambda: f"{kind}: {tf.check_decompress(model, blob, original)}"

    parser = tf.build_parser()

    def cli_parse(rng):
        argv = [token(rng, tf.OPTIONS + tf.VALUES) for _ in range(rng.randint(0, 8))]
        if rng.random() < 0.8:  # mostly a real subcommand with its own options, like the test's command_line
            command = rng.choice(sorted(tf.COMMAND_OPTIONS))
            argv = [command, *(rng.choice(tf.COMMAND_OPTIONS[command]) if rng.random() < 0.5 else a for a in argv)]
        return argv, lambda: tf.check_parse(argv, parser)

    def cli_main(rng):
        command = rng.choice(tf.CHEAP_COMMANDS)
        rest = [token(rng, tf.CHEAP_TOKENS, junk=0.1) for _ in range(rng.randint(0, 4))]
        if rng.random() < 0.5:  # well formed: the command's files, so it gets past argparse and does its work
            rest = [o for o in rest if o.startswith("-")] + rng.sample(tf.FILE_NAMES, 1 + (command == "decompress"))
        argv = tf.cheap_argv(command, rest)
        return argv, lambda: f"{command}: {tf.check_main(argv, cli_folder)}"

    targets = {"detector": detector, "detector+libmagic": detector_magic, "decode_native": decode_native,
               "to_native": to_native, "cli-parse": cli_parse, "cli-main": cli_main}
    if model is not None:
        targets["decompress"] = decompress
    return targets


def _save(target: str, index: int, case, error: str) -> str:
    FAILURES_DIR.mkdir(parents=True, exist_ok=True)
    stem = FAILURES_DIR / f"{target}-{index}"
    data = case[-1] if isinstance(case, tuple) else case
    if isinstance(data, bytes):
        stem.with_suffix(".bin").write_bytes(data)
    stem.with_suffix(".txt").write_text(f"{target} case {index}\ninput: {case!r}\n\n{error}",
                                        errors="backslashreplace")
    return str(stem.with_suffix(".bin" if isinstance(data, bytes) else ".txt"))


def run_target(name: str, draw, cases: int, seed: int, timeout: float) -> dict:
    outcomes: Counter[str] = Counter()
    failures = []
    slowest = (0.0, None)
    started = time.perf_counter()
    for index in range(cases):
        rng = random.Random(f"{seed}/{name}/{index}")
        case, check = draw(rng)
        signal.setitimer(signal.ITIMER_REAL, timeout)
        t0 = time.perf_counter()
        try:
            outcomes[check()] += 1
        except BaseException as exc:  # noqa: BLE001 (anything escaping a check is the finding)
            if isinstance(exc, KeyboardInterrupt):
                raise
            error = "".join(traceback.format_exception(exc))
            outcomes["FAILED"] += 1
            if len(failures) < 20:
                failures.append({"index": index, "error": f"{type(exc).__name__}: {str(exc)[:300]}",
                                 "saved": _save(name, index, case, error)})
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
        elapsed = time.perf_counter() - t0
        if elapsed > slowest[0]:
            slowest = (elapsed, index)
    seconds = time.perf_counter() - started
    result = {"cases": cases, "seconds": round(seconds, 1), "cases_per_second": round(cases / seconds, 1),
              "outcomes": dict(outcomes.most_common()), "failures": failures,
              "slowest_case": {"index": slowest[1], "seconds": round(slowest[0], 3)}}
    print(f"{name:>18}: {cases:>7,} cases in {seconds:7.1f} s, {outcomes['FAILED']} failed; "
          f"slowest {slowest[0]:.2f} s (case {slowest[1]})", flush=True)
    return result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scale", type=float, default=1.0, help="multiply every target's case count")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--targets", help=f"comma-separated subset of: {', '.join(CASES)}")
    ap.add_argument("--case-timeout", type=float, default=20.0, help="seconds before a case counts as a hang")
    ap.add_argument("--json", type=Path, help="write the report here")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(1)  # steady per-case cost on a shared machine
    signal.signal(signal.SIGALRM, _alarm)
    model = containers = None
    if tf.compress is not None:
        from conftest import tiny_model

        model = tiny_model()
        containers = tf.make_containers(model)
    else:
        print(f"decompress: skipped ({tf.COMPRESS_MISSING})")
    cli_folder = tf.make_cli_folder(Path(tempfile.mkdtemp(prefix="omnibyte-fuzz-cli-")))
    targets = make_targets(model, containers, cli_folder)
    chosen = args.targets.split(",") if args.targets else list(CASES)
    report = {"command": " ".join(["python", "benchmarks/fuzz.py", *sys.argv[1:]]), "seed": args.seed,
              "python": platform.python_version(), "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
              "compressor": "tested" if model is not None else f"skipped: {tf.COMPRESS_MISSING}", "targets": {}}
    started = time.perf_counter()
    for name in chosen:
        if name in targets:
            report["targets"][name] = run_target(name, targets[name], round(CASES[name] * args.scale), args.seed,
                                                 args.case_timeout)
    report["total_cases"] = sum(t["cases"] for t in report["targets"].values())
    report["total_failures"] = sum(t["outcomes"].get("FAILED", 0) for t in report["targets"].values())
    report["seconds"] = round(time.perf_counter() - started, 1)
    print(f"{report['total_cases']:,} cases in {report['seconds']:.0f} s, {report['total_failures']} failed"
          + (f"; inputs saved under {FAILURES_DIR}" if report["total_failures"] else ""))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2, ensure_ascii=True) + "\n")
    return 1 if report["total_failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
