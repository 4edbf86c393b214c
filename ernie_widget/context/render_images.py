"""matplotlib figures and PIL images: an image part for a vision model, else a short description in text.

Neither library is imported here unless the value's own class comes from it (then it is loaded already). The image
sent is at most `MAX_SIDE` pixels on its longer side: a figure is drawn at a lower dpi, an image is thumbnailed on
a copy, so a poster-sized figure does not become megabytes of base64 in one message.
"""

from __future__ import annotations

import io
import math
import sys
from typing import Any

from ernie_widget.client.messages import image

from .keyguard import check_value
from .kinds import module_of
from .rendered import Rendered
from .textcut import clip

__all__ = ["is_image", "render_image"]

MAX_SIDE = 1_568
MAX_AXES = 8
TEXT_CHARS = 120


def _family(value: Any) -> str | None:
    cls = type(value)
    module = module_of(cls)
    if module.startswith("matplotlib.") and _is(cls, "matplotlib.figure", "FigureBase"):
        return "figure"
    if module.startswith("matplotlib.") and _is(cls, "matplotlib.axes", "Axes"):
        return "axes"
    if module.startswith("PIL.") and _is(cls, "PIL.Image", "Image"):
        return "pil"
    return None


def is_image(value: Any) -> bool:
    """A matplotlib figure or axes, or a PIL image (drawing one for a vision model takes longer than text)."""
    return _family(value) is not None


def render_image(value: Any, max_chars: int, *, vision: bool) -> Rendered | None:
    family = _family(value)
    if family == "figure":
        return _figure(value, vision)
    if family == "axes":
        return _figure(value.get_figure(), vision)
    if family == "pil":
        return _pil(value, vision)
    return None


def _is(cls: type, module: str, name: str) -> bool:
    target = getattr(sys.modules.get(module), name, None)
    return isinstance(target, type) and issubclass(cls, target)


def _text(value: Any) -> str:
    text = str(value or "")
    check_value(text, shown=TEXT_CHARS)
    return clip(text, TEXT_CHARS)


def _figure(fig: Any, vision: bool) -> Rendered:
    if module_of(type(fig)) == "matplotlib.figure" and type(fig).__name__ == "SubFigure":
        fig = fig.figure  # a SubFigure is drawn as part of its root figure
    width_in, height_in = (float(x) for x in fig.get_size_inches())
    dpi = float(fig.dpi)
    w, h = round(width_in * dpi), round(height_in * dpi)
    axes = list(fig.axes)
    kind = f"matplotlib Figure, {w} × {h} px, {len(axes)} axes"
    if vision:  # the model sees the figure itself: one line of text is enough
        buf = io.BytesIO()
        scale = min(1.0, MAX_SIDE / max(w, h, 1))
        fig.savefig(buf, format="png", dpi=dpi * scale, bbox_inches="tight")
        url = image(buf.getvalue())["image_url"]["url"]
        return Rendered(f"{kind} (attached as an image)", f"Figure {w} × {h}", "", [url])
    lines = []
    suptitle = getattr(fig, "_suptitle", None)  # no public getter before matplotlib 3.8
    if suptitle is not None and suptitle.get_text():
        lines.append(f"title: {_text(suptitle.get_text())}")
    for i, ax in enumerate(axes[:MAX_AXES]):
        parts = [f"axes {i + 1}"]
        for what, text in (("title", ax.get_title()), ("x", ax.get_xlabel()), ("y", ax.get_ylabel())):
            if text:
                parts.append(f"{what}: {_text(text)}")
        parts.append(f"x range {_range(ax.get_xlim())}, y range {_range(ax.get_ylim())}")
        drawn = [(len(ax.lines), "lines"), (len(ax.collections), "collections"), (len(ax.patches), "patches"),
                 (len(ax.images), "images")]
        parts += [f"{n} {what}" for n, what in drawn if n]
        labels = [_text(label) for label in ax.get_legend_handles_labels()[1][:10]]
        if labels:
            parts.append("legend: " + ", ".join(labels))
        lines.append(" · ".join(parts))
    if len(axes) > MAX_AXES:
        lines.append(f"…[{len(axes) - MAX_AXES} more axes]")
    lines.append("(the figure itself is not sent: this model does not read images)")
    return Rendered(kind, f"Figure {w} × {h}", "\n".join(lines))


def _range(lim: Any) -> str:
    low, high = lim
    return f"{float(low):.4g} … {float(high):.4g}"


def _pil(img: Any, vision: bool) -> Rendered:
    w, h = img.size
    kind = f"PIL image, {w} × {h} px, mode {img.mode}"
    label = f"Image {w} × {h}"
    if not vision:
        source = f"format {img.format}" if img.format else "made in memory"
        return Rendered(kind, label, f"{source}; the image itself is not sent: this model does not read images")
    small = img
    if max(w, h) > MAX_SIDE:  # reduce() is a box filter into a new image: the user's image is not touched
        small = img.reduce(math.ceil(max(w, h) / MAX_SIDE))
    if small.mode not in ("1", "L", "LA", "P", "RGB", "RGBA", "I", "I;16"):  # what PNG holds (not CMYK, YCbCr…)
        small = small.convert("RGBA" if "A" in small.mode else "RGB")
    return Rendered(f"{kind} (attached as an image)", label, "", [image(small)["image_url"]["url"]])
