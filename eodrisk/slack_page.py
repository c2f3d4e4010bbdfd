"""The Slack sink's page (``GET /`` on the sink): the messages it received, newest first,
with their links clickable — the channel a user of the local platform reads.

Slack messages are mrkdwn: ``&``, ``<`` and ``>`` of the text arrive as entities and a link
is ``<url|label>`` (eodrisk_dag/messages.py writes them so); this page turns the links into
anchors and shows the rest as it is, in Block Kit order (header, sections, fields, context).
PagerDuty events and file shares are listed too.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable
from typing import Any

_LINK = re.compile(r"<([^<>|]+)\|([^<>]*)>")


def mrkdwn_html(text: str) -> str:
    """Slack mrkdwn to HTML: links become anchors; every other ``<``/``>`` is escaped."""
    out, pos = [], 0
    for match in _LINK.finditer(text):
        out.append(_text(text[pos : match.start()]))
        url, label = match.groups()
        out.append(f'<a href="{html.escape(html.unescape(url))}">{_text(label)}</a>')
        pos = match.end()
    out.append(_text(text[pos:]))
    return "".join(out)


def _text(text: str) -> str:
    """Slack text (entities for ``&<>``) as HTML text: entities kept, anything raw escaped."""
    return html.escape(html.unescape(text), quote=False)


def _block_texts(block: dict[str, Any]) -> Iterable[str]:
    text = block.get("text")
    if isinstance(text, dict):
        yield text.get("text", "")
    for item in block.get("fields", []) + block.get("elements", []):
        if isinstance(item, dict) and "text" in item:
            yield item["text"] if isinstance(item["text"], str) else item["text"].get("text", "")


def _record_html(record: dict[str, Any]) -> str:
    path, payload = record["path"], record["payload"]
    if path.startswith("/services/"):
        kind = "Slack"
        texts = [t for b in payload.get("blocks") or [] for t in _block_texts(b)]
        body = "".join(f"<div class=block>{mrkdwn_html(t)}</div>" for t in texts) or (
            f"<div class=block>{mrkdwn_html(payload.get('text', ''))}</div>"
        )
    elif path.endswith("/enqueue"):
        kind = "PagerDuty"
        event = payload.get("payload", {})
        body = (
            f"<div class=block>{html.escape(str(event.get('severity')))}: "
            f"{html.escape(str(event.get('summary')))} "
            f"(dedup_key {html.escape(str(payload.get('dedup_key')))})</div>"
        )
    else:
        kind = "Slack file"
        files = ", ".join(html.escape(str(f.get("title"))) for f in payload.get("files", []))
        comment = mrkdwn_html(str(payload.get("initial_comment") or ""))
        body = f"<div class=block>{files} {comment}</div>"
    return f'<article data-seq="{record["seq"]}"><h2>#{record["seq"]} {kind}</h2>{body}</article>'


def messages_page(records: list[dict[str, Any]]) -> str:
    """The page of ``records`` (as :func:`eodrisk.slack_sink.read_messages` reads them)."""
    items = "\n".join(_record_html(r) for r in reversed(records)) or "<p>No message yet.</p>"
    return (
        "<!DOCTYPE html><html><head><meta charset=utf-8><title>Slack sink — eodrisk</title>"
        "<style>body{font:14px system-ui,sans-serif;margin:2em;max-width:60em}"
        "article{border-top:1px solid #ccc;padding:.5em 0}h2{font-size:1em;color:#555}"
        ".block{white-space:pre-wrap;margin:.3em 0}</style></head><body>"
        f"<h1>Slack sink: {len(records)} message(s)</h1>{items}</body></html>"
    )
