"""The download limit's sources: MARIONETTE_MAX_DOWNLOAD_MB wins over the preference, which wins over
2 GiB; a value that is not a positive whole number is refused with a message, never taken silently."""

from __future__ import annotations

import pytest

from addon.core.config import download_limit
from addon.core.downloads import DEFAULT_MAX_BYTES
from addon.core.errors import ConfigError


def test_environment_then_preference_then_default() -> None:
    assert download_limit(None, {}) == DEFAULT_MAX_BYTES == 2 << 30
    assert download_limit(0, {}) == DEFAULT_MAX_BYTES  # an unset IntProperty reads as 0 in old files
    assert download_limit(300, {}) == 300 << 20
    assert download_limit(300, {"MARIONETTE_MAX_DOWNLOAD_MB": " 5 "}) == 5 << 20
    assert download_limit(300, {"MARIONETTE_MAX_DOWNLOAD_MB": ""}) == 300 << 20


@pytest.mark.parametrize(("raw", "message"), [("lots", "whole number"), ("1.5", "whole number"),
                                              ("0", "at least 1 MB"), ("-3", "at least 1 MB")])
def test_bad_environment_values_are_refused(raw: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        download_limit(300, {"MARIONETTE_MAX_DOWNLOAD_MB": raw})
