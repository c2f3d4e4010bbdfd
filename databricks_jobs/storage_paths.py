"""Paths between delta-rs, Spark and the filesystem, for any legal storage root.

delta-rs hands back file locations as URIs, percent-encoded (``file:///lake%20root/...``,
``s3://bucket/a%23b/...``); Spark (Hadoop's ``Path``) takes a path string, encodes it
itself, and expands glob characters (``{}[]*?\\``) in it. So a location goes from delta-rs
to Spark as :func:`spark_path` of :func:`uri_to_path` of it, and a root with a space, '#',
'%', a non-ASCII letter or a glob character reads the files it names. (Spark's internal
``__globPaths__=false`` option is no way out: with several paths under a folder whose name
holds a glob character it reads every file twice.)
"""

from __future__ import annotations

import re
from urllib.parse import unquote, urlsplit

_GLOB = re.compile(r"([{}\[\]*?\\])")


def uri_to_path(uri: str) -> str:
    """The path a delta-rs file location names. delta-rs percent-encodes every location it
    returns: a local one as an encoded path (``/lake%20root/...``) or a ``file://`` URI, an
    object-store one as a URI; the result is the decoded path, with scheme and authority
    kept for an object store."""
    parts = urlsplit(uri)
    path = unquote(parts.path, errors="strict")
    if not parts.scheme or parts.scheme == "file":
        return path
    return f"{parts.scheme}://{parts.netloc}{path}"


def spark_path(path: str) -> str:
    """``path`` for Spark's file readers: Hadoop glob characters escaped, so the pattern
    matches exactly the one file or folder ``path`` names."""
    return _GLOB.sub(r"\\\1", path)


# delta-rs (1.x, local file system) parses a local path as a URL after resolving it: it
# decodes a valid percent escape ("%41" opens ".../A"), panics on "[", "]", "^" or "|"
# (read as a bad host name), takes "\" for a separator, and refuses control characters;
# neither a file URI nor a symlink avoids it. Spark's Delta (on Databricks) has no such
# limit, so only a local lake root is refused, before any I/O, with this explanation.
_DELTA_RS_UNSAFE = re.compile(r"[\[\]^|\\\x00-\x1f\x7f]|%[0-9A-Fa-f]{2}")


def check_local_lake_root(root: str) -> str:
    """``root`` unless it is a local path delta-rs cannot open (``ValueError`` saying why)."""
    if "://" not in root and (bad := _DELTA_RS_UNSAFE.search(root)):
        raise ValueError(
            f"lake root {root!r}: {bad.group()!r} cannot be used in a local lake root (delta-rs "
            "misreads '[', ']', '^', '|', '\\', control characters and percent escapes such as "
            "'%41' in local paths); choose a folder without them (spaces, '#', '%' before a "
            "non-hex character, quotes and non-ASCII letters are fine)"
        )
    return root
