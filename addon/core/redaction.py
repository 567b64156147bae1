"""Keys kept out of logs and messages: every configured key is registered here, and every log record and
every message shown to the artist is passed through `redact`, which also finds a key's escaped and quoted
forms (repr, JSON, URL-quoted, bytes). Keys are checked where they enter (`key_problem`)."""

from __future__ import annotations

import json
import logging
import threading
from urllib.parse import quote, quote_plus

# -----------------------------------------------------------------------------------------

MIN_SECRET_LENGTH = 6  # shorter values would redact ordinary words; no real key is that short
REDACTED = "[key hidden]"
_secrets: set[str] = set()
_secrets_lock = threading.Lock()


def key_problem(value: str) -> str | None:
    """Why `value` cannot be an API key, in words that never quote it, or None. Keys are printable
    ASCII without spaces: anything else is a paste gone wrong (a line break, a zero-width space) and
    would either be refused by the HTTP stack with the key in its message or fail to encode."""
    for index, ch in enumerate(value):
        code = ord(ch)
        where = f" (character {index + 1} of {len(value)})"
        if ch in "\r\n":
            return "it contains a line break" + where
        if ch == " " or ch == "\t":
            return "it contains a space or tab" + where
        if code < 0x20 or code == 0x7F:
            return f"it contains a control character (U+{code:04X})" + where
        if code > 0x7E:
            return f"it contains a character that is not plain ASCII (U+{code:04X})" + where
    return None


def secret_forms(value: str) -> set[str]:
    """The key and the escaped or quoted forms it takes in messages: repr (Python's escapes, as requests
    quotes a refused header), JSON strings, unicode_escape, its UTF-8 bytes' repr, URL quoting."""
    forms = {value, repr(value)[1:-1], json.dumps(value)[1:-1], json.dumps(value, ensure_ascii=False)[1:-1],
             value.encode("unicode_escape").decode("ascii"), repr(value.encode("utf-8", "replace"))[2:-1],
             quote(value, safe=""), quote_plus(value, safe="")}
    for form in list(forms):
        forms.add(json.dumps(form)[1:-1])  # a message that was itself JSON-escaped (a journal, a log as JSON)
    return {form for form in forms if len(form) >= MIN_SECRET_LENGTH}


def register_secret(value: str) -> None:
    """Remember a key so that `redact` and the log filter hide it (and its escaped forms) from now on,
    in memory only."""
    value = (value or "").strip()
    if len(value) < MIN_SECRET_LENGTH:
        return
    forms = secret_forms(value)
    with _secrets_lock:
        known = forms <= _secrets
        _secrets.update(forms)
    if not known:
        install_log_redaction()


def redact(text: str) -> str:
    """`text` with every registered key (and each escaped form of it) replaced; cheap when there is none."""
    if not _secrets or not text:
        return text
    with _secrets_lock:
        secrets = sorted(_secrets, key=len, reverse=True)
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text


class SecretFilter(logging.Filter):
    """Rewrites a log record whose message or traceback carries a registered key. Never drops a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not _secrets:
            return True
        try:
            message = record.getMessage()
        except Exception:  # a broken format string is the logging module's business, not ours
            return True
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
        elif record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


SECRET_FILTER = SecretFilter()
# The add-on's own package ("addon" in a checkout, "bl_ext.user_default.marionette" when installed).
PACKAGE = __name__.rsplit(".core.", 1)[0]
_THIRD_PARTY_LOGGERS = ("urllib3", "requests")


def install_log_redaction() -> None:
    """Put SECRET_FILTER on every logger of this add-on (and of requests/urllib3) that exists now.

    A filter on a logger sees the records made there, so each module logger gets it; this is called
    again whenever a key or a worker appears, which covers modules imported later.
    """
    names = [PACKAGE, *_THIRD_PARTY_LOGGERS]
    names += [name for name in list(logging.root.manager.loggerDict)
              if name.startswith(PACKAGE + ".") or name.startswith(tuple(n + "." for n in _THIRD_PARTY_LOGGERS))]
    for name in names:
        logger = logging.getLogger(name)
        if SECRET_FILTER not in logger.filters:
            logger.addFilter(SECRET_FILTER)


