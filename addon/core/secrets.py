"""API keys kept in a private file in the extension's user folder, outside every .blend file.

Blender saves add-on preferences into userpref.blend; the preference fields read and write here
instead, so keys never reach a .blend, the journal or a log.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from pathlib import Path

log = logging.getLogger(__name__)


class KeyStore:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    def _read(self) -> dict[str, str]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError, RecursionError):
            log.error("the key file %s could not be read; keys must be entered again", self.path.name)
            return {}
        if not isinstance(data, dict):
            log.error("the key file %s is not a key list; keys must be entered again", self.path.name)
            return {}
        return {k: v for k, v in data.items() if isinstance(k, str) and isinstance(v, str)}

    def get(self, name: str) -> str:
        with self._lock:
            return self._read().get(name, "")

    def set(self, name: str, value: str) -> None:
        with self._lock:
            data = self._read()
            if value:
                data[name] = value
            else:
                data.pop(name, None)
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_name(self.path.name + ".tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(data, fh)
            os.replace(tmp, self.path)
