"""scripts/batch.py's --height and --in-place flags become the API's scene options (height, in_place)."""

from __future__ import annotations

import pytest

from scripts.batch import parse_args


def args(*extra: str) -> list[str]:
    return ["batch.py", "--", "--images", "in", "--out", "out", "--rig", *extra]


def test_height_and_in_place_reach_the_options() -> None:
    parsed = parse_args(args("--height", "1.8", "--in-place", "--option", "ai_model=meshy-5"))
    assert parsed.options == {"ai_model": "meshy-5", "height": 1.8, "in_place": True}


def test_defaults_leave_the_options_alone() -> None:
    assert parse_args(args()).options == {}


@pytest.mark.parametrize("bad", ["0", "-2", "tall"])
def test_bad_height_is_refused(bad: str) -> None:
    with pytest.raises(SystemExit):
        parse_args(args("--height", bad))
