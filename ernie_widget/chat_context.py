"""The chat's @-mentions, kernel side: the variable list, chip snapshots, the last error, and ``context="auto"``.

Requests come from the view (`variables`, `mention`, `unmention`; protocol.py) on whatever thread the comm handler
runs on; reading the namespace goes through the main-thread runner (main_thread.py), so it never races the user's
cells, and a running cell answers "busy" at once. A chip's text is a snapshot taken when the chip is added, and
exactly that text is sent with the question (and stored with it, so the transcript shows what the model saw).
"""

from __future__ import annotations

import itertools
import logging
import threading
from collections.abc import Callable, Iterable
from typing import Any

from .main_thread import KernelBusy, MainThreadRunner, main_thread_runner
from .protocol import ContextItem

__all__ = ["MAX_CHIPS", "ChatContext"]

logger = logging.getLogger("ernie_widget")

#: chips one view may hold at once (snapshots are kept until sent or removed)
MAX_CHIPS = 32
#: how long a view's request may wait for the main thread
REQUEST_TIMEOUT = 3.0


class ChatContext:
    """@-mentions for one chat. ``emit`` sends a custom message to the views; ``vision()`` says whether the chat's
    model reads images (a figure is then sent as an image part, else described in text)."""

    def __init__(self, emit: Callable[[dict[str, Any]], None], vision: Callable[[], bool], shell: Any = None) -> None:
        if shell is None:
            shell = _shell()
        self._shell = shell
        self._emit = emit
        self._vision = vision
        self._runner = main_thread_runner(shell) if shell is not None else None
        self._chips: dict[int, tuple[ContextItem, list[str]]] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._last_error: str | None = None
        if shell is not None:
            shell.events.register("post_run_cell", self._after_cell)

    @property
    def shell(self) -> Any:
        """The IPython shell whose namespace is read (None outside IPython)."""
        return self._shell

    @property
    def runner(self) -> MainThreadRunner:
        """The main-thread runner for that shell."""
        return self._runner if self._runner is not None else main_thread_runner(self._shell)

    def close(self) -> None:
        if self._shell is not None:
            try:
                self._shell.events.unregister("post_run_cell", self._after_cell)
            except ValueError:
                pass

    # -- the view's requests ------------------------------------------------------------------------------------

    def on_variables(self, rid: int, prefix: str) -> None:
        from .context import list_variables

        ns, hidden = self._namespace()
        try:
            items = self._on_main(lambda: list_variables(ns, prefix, hidden=hidden))
        except KernelBusy:
            self._emit({"type": "variables", "rid": rid, "status": "busy", "items": []})
            return
        self._emit({"type": "variables", "rid": rid, "status": "ok", "items": items})

    def on_mention(self, rid: int, name: str) -> None:
        try:
            item, images = self.snapshot(name)
        except KernelBusy:
            self._emit({"type": "mention", "rid": rid, "status": "busy",
                        "error": "内核忙，请稍后再试 / the kernel is busy running a cell: try again when it is done"})
            return
        except (ValueError, LookupError) as err:  # MentionError and unknown names included
            self._emit({"type": "mention", "rid": rid, "status": "error", "error": str(err)})
            return
        with self._lock:
            if len(self._chips) >= MAX_CHIPS:
                self._chips.pop(next(iter(self._chips)))
            cid = next(self._ids)
            self._chips[cid] = (item, images)
        self._emit({"type": "mention", "rid": rid, "status": "ok", "cid": cid, "item": item})

    def on_unmention(self, cid: int) -> None:
        with self._lock:
            self._chips.pop(cid, None)

    def on_hello(self) -> None:
        """A view (re)connected: it offers "Fix last error" if the last cell raised."""
        if self._last_error is not None:
            self._emit({"type": "last_error", "summary": self._last_error})

    # -- used by the chat -----------------------------------------------------------------------------------------

    def snapshot(self, name: str) -> tuple[ContextItem, list[str]]:
        """The context of one mention now (on the main thread): its item and image parts (vision models only)."""
        from .context import describe

        ns, _ = self._namespace()
        vision = self._vision()
        mention = self._on_main(lambda: describe(name, ns, shell=self._shell, vision=vision))
        return mention.item, list(mention.images)

    def take(self, cids: Iterable[int]) -> tuple[list[ContextItem], list[str]]:
        """The snapshots of these chips, in order (unknown ids are skipped); they are used up."""
        items: list[ContextItem] = []
        images: list[str] = []
        with self._lock:
            for cid in cids:
                chip = self._chips.pop(cid, None)
                if chip is not None:
                    items.append(chip[0])
                    images.extend(chip[1])
        return items, images

    def for_question(self, mentions: Iterable[str | int], budget: int) -> tuple[list[ContextItem], list[str]]:
        """The context items and image parts of a question: chips by id (their snapshots), names described now;
        shortened, largest first, to fit ``budget`` tokens."""
        from .context import fit_to_budget

        cids = [m for m in mentions if isinstance(m, int)]
        items, images = self.take(cids)
        for name in (m for m in mentions if isinstance(m, str)):
            item, more = self.snapshot(name)
            items.append(item)
            images.extend(more)
        return (fit_to_budget(items, budget) if items else []), images

    def auto_summary(self, budget: int) -> str | None:
        """``context="auto"``: a compact list of the user's variables (names, types, sizes) for the system prompt,
        within a quarter of ``budget`` tokens; None when the kernel is busy or nothing is defined."""
        from .context import list_variables

        ns, hidden = self._namespace()
        try:
            entries = self._on_main(lambda: list_variables(ns, "", hidden=hidden, limit=60))
        except KernelBusy:
            return None
        rows = [f"- {e['name']}: {e['kind']}{' ' + e['size'] if e['size'] else ''}" for e in entries
                if e["name"] not in ("error", "cell") and not e["name"].startswith(("In[", "Out["))]
        if not rows:
            return None
        from .client.messages import estimate_tokens

        head = "The user's notebook defines these variables (they can mention one with @name):"
        while len(rows) > 1 and estimate_tokens("\n".join([head, *rows])) > max(50, budget // 4):
            rows.pop()
        return "\n".join([head, *rows])

    # -- internals ------------------------------------------------------------------------------------------------

    def _namespace(self) -> tuple[dict[str, Any], set[str]]:
        if self._shell is None:
            return {}, set()
        return self._shell.user_ns, set(getattr(self._shell, "user_ns_hidden", {}) or ())

    def _on_main(self, fn: Callable[[], Any]) -> Any:
        if self._runner is None:
            return fn()
        return self._runner.call(fn, timeout=REQUEST_TIMEOUT)

    def _after_cell(self, result: Any) -> None:
        """After every cell: offer "Fix last error" when it raised, withdraw the offer when a later one did not."""
        error = getattr(result, "error_in_exec", None) or getattr(result, "error_before_exec", None)
        summary = None
        if error is not None and not isinstance(error, KeyboardInterrupt):
            summary = f"{type(error).__name__}: {error}"[:300]
        if summary != self._last_error:
            self._last_error = summary
            self._emit({"type": "last_error", "summary": summary})


def _shell() -> Any:
    try:
        from IPython import get_ipython
    except ImportError:
        return None
    return get_ipython()
