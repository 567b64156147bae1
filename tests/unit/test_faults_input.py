"""Fault matrix, bad input rows at the core: a damaged PNG with a valid signature, a cut JPEG, a prompt
over the provider's limit and misspelt or unknown Claythis motions each get a clear message, and
nothing is sent (the emulator sees no request) or nothing is created."""

from __future__ import annotations

import struct
import zlib

import pytest

from addon.core import png
from addon.core.errors import InputError
from addon.core.images import jpeg_problem, png_problem
from addon.core.models import JobState
from addon.core.runner import InputFile, JobRunner
from tests.emulator import Emulator
from tests.unit.fault_matrix import PNG, PROVIDERS, Matrix, config, request, run


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def _png(width: int, height: int, depth: int, color: int, raw: bytes, interlace: int = 0) -> bytes:
    header = struct.pack(">IIBBBBB", width, height, depth, color, 0, 0, interlace)
    return png.PNG_MAGIC + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(raw)) + _chunk(b"IEND", b"")


GOOD = png.encode_rgba8(8, 8, bytes(range(256)))
BAD_PNGS = {
    "cut short": GOOD[: len(GOOD) // 2],
    "bad CRC": GOOD[:40] + bytes([GOOD[40] ^ 0xFF]) + GOOD[41:],
    "no header": png.PNG_MAGIC + _chunk(b"IDAT", zlib.compress(b"\x00" * 9)) + _chunk(b"IEND", b""),
    "not zlib": png.PNG_MAGIC + GOOD[8:33] + _chunk(b"IDAT", b"this is not deflate data") + _chunk(b"IEND", b""),
    "too little data": _png(8, 8, 8, 6, b"\x00" * 20),
    "no IEND": GOOD[: GOOD.rindex(b"IEND") - 4],
    "signature only": png.PNG_MAGIC,
}


def test_the_png_check_accepts_real_pngs() -> None:
    assert png_problem(GOOD) is None and png_problem(PNG) is None
    assert png_problem(_png(3, 2, 16, 2, (b"\x00" + b"\x01" * 18) * 2)) is None  # 16-bit RGB
    assert png_problem(_png(5, 3, 1, 0, b"\x00\xff" * 3)) is None  # 1-bit grey
    assert png_problem(_png(4, 4, 8, 3, b"\x00\x01\x02\x03\x00" * 4)) is None  # 8-bit palette indices
    # Adam7 interlaced 3x3 RGBA: passes 1 (1x1), 2 (0 px), 3 (0 px), 4 (1x1), 5 (2x1), 6 (1x2), 7 (3x1)
    rows = [1 + 4, 1 + 4, 1 + 8, 1 + 4, 1 + 4, 1 + 12]
    assert png_problem(_png(3, 3, 8, 6, b"".join(b"\x00" * n for n in rows), interlace=1)) is None
    assert jpeg_problem(b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00\xff\xd9") is None


@pytest.mark.parametrize("case", sorted(BAD_PNGS))
def test_damaged_png_is_refused_before_sending(emu: Emulator, runner: JobRunner, matrix: Matrix, case: str) -> None:
    assert png_problem(BAD_PNGS[case]) is not None
    refused = 0
    for provider in PROVIDERS:
        with pytest.raises(InputError, match="is damaged") as caught:
            runner.submit(request(provider), config(emu, provider), [InputFile("hero.png", BAD_PNGS[case])])
        refused += "hero.png" in str(caught.value) and "save it again" in str(caught.value)
    ok = refused == len(PROVIDERS) and emu.requests == [] and runner.store.all() == []
    matrix.record("bad_png", "all", "submit", injected=len(PROVIDERS), survived=refused if ok else 0)
    assert ok


def test_cut_jpeg_is_refused(emu: Emulator, runner: JobRunner, matrix: Matrix) -> None:
    cut = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00\xff\xdb\x00\x43" + b"\x08" * 40
    with pytest.raises(InputError, match="cut short"):
        runner.submit(request("rodin"), config(emu, "rodin"), [InputFile("hero.jpg", cut)])
    ok = emu.requests == []
    matrix.record("bad_png", "rodin", "submit", survived=ok)
    assert ok


@pytest.mark.parametrize(("provider", "where", "length"), [("meshy", "prompt", 601), ("claid", "option", 2049)])
def test_prompt_over_the_limit_is_refused(emu: Emulator, runner: JobRunner, matrix: Matrix, provider: str,
                                          where: str, length: int) -> None:
    text = "a knight " * (length // 9 + 1)
    text = text[:length]
    with pytest.raises(InputError, match=r"600 characters|3 to 2048") as caught:
        if where == "prompt":
            runner.submit(request(provider, kind="text", prompt=text), config(emu, provider), [])
        else:
            runner.submit(request(provider, options={"prompt": text}), config(emu, provider),
                          [InputFile("hero.png", PNG)])
    ok = emu.requests == [] and (str(len(text)) in str(caught.value) or "2048" in str(caught.value))
    matrix.record("long_prompt", provider, "submit", survived=ok)
    assert ok and emu.requests == []


@pytest.mark.parametrize("name", ["Idle_Lop", "walk_lop_rig", "Punch_Jabb"])
def test_misspelt_claythis_motion_is_refused_with_a_suggestion(emu: Emulator, runner: JobRunner, matrix: Matrix,
                                                              name: str) -> None:
    with pytest.raises(InputError, match="did you mean") as caught:
        runner.submit(request("claythis", options={"motions": [name]}), config(emu, "claythis"),
                      [InputFile("hero.png", PNG)])
    ok = emu.requests == [] and "_Rig" in str(caught.value)
    matrix.record("bad_motion", "claythis", "submit", survived=ok)
    assert ok


def test_unknown_claythis_motion_is_refused_by_claythis_and_nothing_is_made(emu: Emulator, runner: JobRunner,
                                                                             matrix: Matrix) -> None:
    emu.claythis.known_motions = {"Idle_Loop_Rig"}
    job = run(runner, emu, "claythis", options={"motions": ["Moonwalk_Rig"]})
    ok = (job.state is JobState.FAILED and "refused the motion names (nothing was created)" in (job.error or "")
          and "Moonwalk_Rig" in (job.error or "") and emu.claythis.tasks == {})
    matrix.record("bad_motion", "claythis", "submit", survived=ok)
    assert ok, job.error
