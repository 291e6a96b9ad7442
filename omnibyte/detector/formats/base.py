"""What every format parser shares: the result (`Found`), the damage report that turns what
a parser saw into a confidence and a reason, and helpers for magics and fixed fields."""

from __future__ import annotations

import struct
from dataclasses import dataclass, replace

from omnibyte.modality import Modality

__all__ = ["Found", "Report", "cut_found", "mismatches", "check_magic", "near_magic", "printable4"]

U16LE, U32LE = struct.Struct("<H"), struct.Struct("<I")
U16BE, U32BE, U64BE = struct.Struct(">H"), struct.Struct(">I"), struct.Struct(">Q")

# what each rule is worth: a signature with its structure walked to the end is near-certain; every
# sign of damage takes some of it away, but the format is still the best explanation of the bytes
CERTAIN = 0.99
DAMAGED_MAGIC = 0.12
BAD_FIELD = 0.06
BAD_SIZE = 0.08
CUT_SHORT = 0.06
FLOOR = 0.35


@dataclass(frozen=True)
class Found:
    format: str
    modality: Modality
    start: int
    end: int  # exclusive, never past the data
    confidence: float
    reason: str
    solid: int  # structure verified up to here; [solid, end) rests on a size field only
    strong: bool  # intact magic and a valid header: enough to cut another file's declared tail


def cut_found(found: Found, end: int, why: str) -> Found:
    """`found` ending at `end` instead, because of what the bytes at `end` are."""
    end = max(found.start + 1, min(end, found.end))
    return replace(found, end=end, solid=min(found.solid, end), reason=f"{found.reason}; {why}",
                   confidence=round(max(FLOOR, found.confidence - CUT_SHORT), 3))


class Report:
    """Collects the damage a parser sees and turns it into a confidence and a reason."""

    def __init__(self, what: str):
        self.notes = [what]
        self.confidence = CERTAIN

    def damage(self, note: str, cost: float) -> None:
        self.notes.append(note)
        self.confidence -= cost

    def found(self, fmt: str, modality: Modality, start: int, end: int, solid: int, n: int,
              strong: bool) -> Found:
        if end > n:
            self.damage(f"cut short at {n - start} of {end - start} bytes", CUT_SHORT)
            end = n
        end = max(end, start + 1)
        # only an undamaged header is trusted to end another file's unverified tail
        intact = all(note.startswith("cut short") for note in self.notes[1:])
        return Found(fmt, modality, start, end, round(max(FLOOR, self.confidence), 3), "; ".join(self.notes),
                     max(start, min(solid, end)), strong and intact)


def mismatches(data: bytes, start: int, magic: bytes) -> int:
    got = data[start:start + len(magic)]
    return sum(a != b for a, b in zip(got, magic)) + len(magic) - len(got)


def check_magic(report: Report, data: bytes, start: int, magic: bytes, name: str) -> int:
    bad = mismatches(data, start, magic)
    if bad:
        report.damage(f"{name} magic damaged ({bad} byte{'s' * (bad > 1)})", DAMAGED_MAGIC * bad)
    return bad


def near_magic(report: Report, data: bytes, at: int, magic: bytes, name: str) -> bool:
    """Whether `magic` stands at `at` with at most one byte damaged; the damage is reported."""
    bad = mismatches(data, at, magic)
    if bad > 1:
        return False
    if bad:
        report.damage(f"{name} magic damaged", DAMAGED_MAGIC)
    return True


def printable4(b: bytes) -> bool:
    return len(b) == 4 and all(32 <= c < 127 for c in b)
