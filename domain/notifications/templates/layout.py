"""The email layout (`lang` and `dir` on a small responsive page, right-to-left for Arabic and the other
RTL languages) and the conversions between text and HTML: an email without an HTML source gets one made
from its text, and an HTML source without text gets its plain-text alternative derived from the HTML."""

from __future__ import annotations

import html as html_lib
import re
from html.parser import HTMLParser

from domain.notifications.templates.languages import Language

_FONTS = {
    "rtl": "Tahoma,'Segoe UI',Arial,sans-serif",
    "ltr": "-apple-system,'Segoe UI',Helvetica,Arial,sans-serif",
}
_LAYOUT = """<!doctype html>
<html lang="{lang}" dir="{dir}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="x-apple-disable-message-reformatting">
<title>{title}</title>
</head>
<body dir="{dir}" style="margin:0;padding:0;background:#f4f4f4;direction:{dir};text-align:{align};">
<div lang="{lang}" dir="{dir}" style="max-width:600px;margin:0 auto;padding:24px 16px;background:#ffffff;\
color:#1a1a1a;font-family:{fonts};font-size:16px;line-height:1.6;direction:{dir};text-align:{align};">
{body}
</div>
</body>
</html>
"""


def _is_document(markup: str) -> bool:
    head = markup.lstrip()[:9].lower()
    return head.startswith("<!doctype") or head.startswith("<html")


def email_layout(body: str, *, subject: str, language: Language) -> str:
    if _is_document(body):
        return body
    direction = language.direction
    return _LAYOUT.format(
        lang=html_lib.escape(language.tag),
        dir=direction,
        align="right" if direction == "rtl" else "left",
        fonts=_FONTS[direction],
        title=html_lib.escape(subject),
        body=body.strip(),
    )


_URL = re.compile(r"https?://[^\s<>\"']+")
_PARAGRAPHS = re.compile(r"\n[ \t]*\n+")


def _linkify(escaped: str) -> str:
    def link(match: re.Match[str]) -> str:
        url = match.group(0)
        trail = ""
        while url and url[-1] in ".,;:!?)]":
            url, trail = url[:-1], url[-1] + trail
        return f'<a href="{url}">{url}</a>{trail}'

    return _URL.sub(link, escaped)


def text_to_html(text: str) -> str:
    """Plain text -> escaped HTML paragraphs (blank lines split paragraphs, newlines become <br>)."""
    paragraphs = [p.strip() for p in _PARAGRAPHS.split(text.replace("\r\n", "\n")) if p.strip()]
    return "\n".join(
        '<p style="margin:0 0 16px;">' + _linkify(html_lib.escape(p)).replace("\n", "<br>\n") + "</p>"
        for p in paragraphs
    )


_SKIP = frozenset({"script", "style", "head", "title", "template"})
_PARAGRAPH_TAGS = frozenset(
    {"p", "h1", "h2", "h3", "h4", "h5", "h6", "ul", "ol", "table", "blockquote", "hr", "pre", "dl"}
)
_LINE_TAGS = frozenset({"div", "tr", "li", "section", "article", "header", "footer", "dt", "dd", "address"})


class _TextExtractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self.skipping = 0
        self.links: list[tuple[str, int]] = []  # (href, index in out where the anchor's text starts)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIP:
            self.skipping += 1
        elif tag == "br":
            self.out.append("\n")
        elif tag in _PARAGRAPH_TAGS:
            self.out.append("\n\n")
        elif tag == "li":
            self.out.append("\n- ")
        elif tag in _LINE_TAGS:
            self.out.append("\n")
        elif tag in ("td", "th"):
            self.out.append(" ")
        elif tag == "img":
            alt = dict(attrs).get("alt")
            if alt:
                self.out.append(alt)
        elif tag == "a":
            self.links.append((dict(attrs).get("href") or "", len(self.out)))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag != "a":
            self.handle_starttag(tag, attrs)

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP:
            self.skipping = max(0, self.skipping - 1)
        elif tag in _PARAGRAPH_TAGS:
            self.out.append("\n\n")
        elif tag in _LINE_TAGS and tag != "li":  # the next item starts its own line
            self.out.append("\n")
        elif tag == "a" and self.links:
            href, start = self.links.pop()
            href = href.strip()
            if not href or href.startswith("#") or href.lower().startswith("javascript:"):
                return
            shown = href.split(":", 1)[1] if href.lower().startswith(("mailto:", "tel:")) else href
            label = " ".join("".join(self.out[start:]).split())
            if not label:
                self.out.append(shown)
            elif shown not in label:
                self.out.append(f" ({shown})")

    def handle_data(self, data: str) -> None:
        if not self.skipping:
            self.out.append(re.sub(r"\s+", " ", data))


def html_to_text(markup: str) -> str:
    """HTML -> readable plain text: tags stripped, links kept as "text (url)", blank lines collapsed."""
    parser = _TextExtractor()
    parser.feed(markup)
    parser.close()
    lines = [line.strip() for line in "".join(parser.out).splitlines()]
    text = "\n".join(lines)
    return re.sub(r"\n{3,}", "\n\n", text).strip()
