"""Credentials out of everything lfsd prints, logs, tags or writes into an artifact.

A tracking, registry, DVC or S3 URI may carry a password (`postgresql://mlflow:pw@db/mlflow`,
`http://user:pw@mlflow:5000`) or a secret in its query (`?password=`, a presigned URL's `X-Amz-Signature`).
lfsd never needs to show either: `redact` is the one place that takes them out of a URI, `redact_text`
out of every URI inside a message (an exception's text quotes the URL it failed on). Clients pass
credentials through environment variables (docs/operations.md, "Security model"), never in a URI.
"""

from __future__ import annotations

import re

MASK = "***"
# Query parameters whose value is a secret: matched as substrings of the lower-cased name.
SECRET_PARAMS = ("password", "passwd", "pwd", "secret", "token", "signature", "credential", "key", "auth", "sig")
_URI = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>`]+")
_PARTS = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<netloc>[^/?#]*)(?P<rest>.*)", re.S)


def _query(rest: str) -> str:
    path, q, tail = rest.partition("?")
    if not q:
        return rest
    query, hash_, fragment = tail.partition("#")
    items = []
    for item in query.split("&"):
        name, eq, _ = item.partition("=")
        items.append(f"{name}={MASK}" if eq and any(s in name.lower() for s in SECRET_PARAMS) else item)
    return f"{path}?{'&'.join(items)}{hash_}{fragment}"


def redact(uri: str | None, *, drop_user: bool = False) -> str:
    """`uri` with its password (`user:password@` -> `user:***@`) and secret query values masked; with
    `drop_user`, no user part at all (a link for a browser, which then asks for the login itself).
    Anything that is not a URI passes through unchanged; None gives ""."""
    if not uri:
        return ""
    m = _PARTS.fullmatch(uri)
    if m is None:
        return uri
    userinfo, at, host = m["netloc"].rpartition("@")
    if at and drop_user:
        netloc = host
    elif at and ":" in userinfo:
        netloc = f"{userinfo.split(':', 1)[0]}:{MASK}@{host}"
    else:
        netloc = m["netloc"]
    return f"{m['scheme']}{netloc}{_query(m['rest'])}"


def redact_text(text: str | None) -> str:
    """`text` with every URI in it passed through `redact`."""
    return _URI.sub(lambda m: redact(m.group(0)), text or "")
