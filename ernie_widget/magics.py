"""`%ernie` / `%%ernie`: generate code, markdown or text inline, streamed into the cell output.

The stream runs on the package's private loop; the main thread drains it and updates one display
handle at ≤ 20 Hz, so the cell blocks like any other and a kernel interrupt cancels the request
(docs/notebook-facts.md §5.4). Model text is untrusted: it is rendered to sanitized HTML in the kernel,
never emitted as raw text/markdown or text/html (JupyterLab trusts live outputs).
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring
from traitlets import Bool, CaselessStrEnum, Float, Int, Unicode

from .client.defaults import CONNECT_TIMEOUT, MAX_RETRIES, MAX_STREAM_SECONDS, STREAM_IDLE_TIMEOUT, TIMEOUT
from .client.errors import ErnieError
from .client.messages import estimate_tokens
from .conversations import (
    CLEARED_NOTICE,
    LAST_CALL_THREAD,
    Conversation,
    ThreadBusyError,
    get_thread,
)
from .magic_actions import doctor, fix_prompt, list_providers, paste_code_block
from .magic_errors import one_line
from .magic_input import ask_questions_not_help, raw_prompt, record_errors, unquote
from .magic_mentions import attach_mentions, with_context
from .magic_output import Outcome, stream_answer
from .protocol import ContextItem

__all__ = ["FORMAT_INSTRUCTIONS", "ErnieMagics", "load_ipython_extension", "unload_ipython_extension"]

FORMATS = ("code", "markdown", "text", "json", "html", "math")

#: what each output format asks of the model (appended to the system prompt)
FORMAT_INSTRUCTIONS = {
    "code": ("Answer with source code only, in a single fenced code block (Python unless another language is "
             "asked for). Put any explanation in code comments, not outside the block."),
    "markdown": None,
    "text": "Answer in plain text without markdown formatting.",
    "json": "Answer with valid JSON only: no prose and no code fences.",
    "html": "Answer with an HTML fragment only.",
    "math": "Answer with a LaTeX math expression only, without $ delimiters and without prose.",
}



_STRING_OPTIONS = ("model", "provider", "format", "system", "params", "out", "thread", "over", "schema")


def _stream_disabled_by_env() -> bool:
    """ERNIE_STREAM=0: one final display per cell (nbval/papermill record only the first display)."""
    return os.environ.get("ERNIE_STREAM", "").strip().lower() in ("0", "false", "no", "off")


_clients: dict[tuple[Any, ...], Any] = {}
_session_credentials: dict[str, dict[str, str]] = {}


def _client_for(provider: str | None, model: str | None, **limits: Any) -> Any:
    """One `Ernie` per (provider, model, credentials, configuration), so connection pools are reused.

    The key includes the configuration variables, so changing QIANFAN_API_KEY or a base URL in the
    notebook takes effect at the next cell instead of reusing a stale client.
    """
    from .client import Ernie
    from .client.config import ENV_VARS, environment

    creds = _session_credentials.get(provider or "", {}) if provider else {}
    if provider is None and _session_credentials:
        provider, creds = next(iter(_session_credentials.items()))
    env = environment()
    key = (provider, model, tuple(sorted(creds.items())), tuple(env.get(v) for v in ENV_VARS),
           tuple(sorted(limits.items())))
    client = _clients.get(key)
    if client is None:
        client = _clients[key] = Ernie(provider, model=model, **creds, **limits)  # type: ignore[arg-type]
    return client


@magics_class
class ErnieMagics(Magics):
    """ERNIE in IPython. Configure with ``%config ErnieMagics.model = "ernie-4.5-turbo-32k"``."""

    provider = Unicode(None, allow_none=True, help="Provider: qianfan, qianfan-v1, aistudio, openai, local, replay").tag(config=True)
    model = Unicode(None, allow_none=True, help="Default model name").tag(config=True)
    format = CaselessStrEnum(FORMATS, default_value="markdown", help="Default output format").tag(config=True)
    max_history = Int(2, help="Exchanges of the thread sent with each prompt").tag(config=True)
    thread = Unicode(None, allow_none=True,
                     help="Conversation every %ernie call continues, as if given --thread (None: each call stands "
                          "alone)").tag(config=True)
    stream = Bool(True, help="Update the output while the answer streams (ERNIE_STREAM=0 turns it off)").tag(config=True)
    system = Unicode(None, allow_none=True, help="Default system prompt").tag(config=True)
    temperature = Float(None, allow_none=True, help="Default temperature").tag(config=True)
    token_budget = Int(0, help="Tokens this session may spend through the magics (0 = no limit)").tag(config=True)
    context_budget = Int(4000, help="Tokens of @-mention context per prompt (largest items shortened first)").tag(
        config=True)
    update_interval = Float(0.05, help="Seconds between display updates (≤ 20 Hz)").tag(config=True)
    timeout = Float(TIMEOUT, help="Seconds to connect and get the first byte").tag(config=True)
    connect_timeout = Float(CONNECT_TIMEOUT, help="Seconds to open the connection (a dead host fails after this)"
                            ).tag(config=True)
    stream_idle_timeout = Float(STREAM_IDLE_TIMEOUT, allow_none=True,
                                help="Seconds without data before a stream fails").tag(config=True)
    max_stream_seconds = Float(MAX_STREAM_SECONDS, allow_none=True,
                               help="Longest answer in seconds (None: no limit)").tag(config=True)
    max_retries = Int(MAX_RETRIES, help="Retries of 429/5xx/connection errors before the answer starts").tag(config=True)

    def _limits(self) -> dict[str, Any]:
        return {"timeout": self.timeout, "connect_timeout": self.connect_timeout,
                "stream_idle_timeout": self.stream_idle_timeout,
                "max_stream_seconds": self.max_stream_seconds, "max_retries": self.max_retries}

    def __init__(self, shell: Any = None, **kwargs: Any) -> None:
        super().__init__(shell=shell, **kwargs)
        self.tokens_used = 0

    @property
    def _ns(self) -> dict[str, Any]:
        """The user namespace (empty when the magics run without a shell)."""
        return self.shell.user_ns if self.shell is not None else {}

    # -- the magic -------------------------------------------------------------------------------

    @magic_arguments()
    @argument("prompt", nargs="*", help="the prompt (line magic); the cell body is the prompt for %%ernie")
    @argument("-m", "--model", help="model name")
    @argument("-p", "--provider", help="qianfan, qianfan-v1, aistudio, openai, local, replay")
    @argument("-f", "--format", choices=FORMATS, help="output format (default markdown)")
    @argument("-s", "--system", help="system prompt")
    @argument("-t", "--temperature", type=float, help="sampling temperature")
    @argument("--max-tokens", type=int, help="maximum answer tokens")
    @argument("--params", help="JSON object of extra request parameters")
    @argument("-o", "--out", help="store the final text (for -f code: the code) in this variable")
    @argument("--no-stream", action="store_true", help="show only the final answer")
    @argument("--search", action="store_true",
              help="search the web: ERNIE cites its sources, listed under the answer (Qianfan web_search)")
    @argument("--image", action="append", default=[], metavar="VAR",
              help="attach an image variable (figure, PIL image, bytes or path); repeatable")
    @argument("--thread", help="continue this conversation (shared with ErnieChat(thread=...)); without it, and "
              "without %%config ErnieMagics.thread, each call stands alone")
    @argument("--reset", action="store_true", help="forget the thread's history first")
    @argument("--dry-run", action="store_true", help="print the exact messages and token estimate; send nothing")
    @argument("--trust-html", action="store_true", help="with -f html: render the model's HTML (sanitized)")
    @argument("--no-mentions", action="store_true",
              help="send @name as typed (by default @variable attaches that variable's context)")
    @argument("--over", metavar="DF", help="run the cell as a template over every row of a DataFrame/list")
    @argument("--schema", metavar="VAR", help="a pydantic model class or JSON Schema dict: the answer is validated "
              "JSON (returned parsed); with --over, one ernie_<field> column per field")
    @argument("--list", action="store_true", help="providers, models and configured credentials")
    @argument("--fix", action="store_true", help="explain the last exception and propose a fix")
    @argument("--paste", type=int, metavar="N", help="put code block N of the thread's last answer in the next cell")
    @argument("--login", action="store_true",
              help="enter a key for this session (never echoed or saved); it is checked with one request")
    @argument("--logout", action="store_true", help="forget the session key (back to the environment or offline)")
    @argument("--doctor", action="store_true", help="check configuration, network and key")
    @line_cell_magic
    def ernie(self, line: str, cell: str | None = None) -> Any:
        """Ask ERNIE. ``%ernie 你好`` or ``%%ernie -f code`` with the prompt in the cell body.

        Each call stands alone: earlier answers are not sent with it. ``--thread NAME`` (or
        ``%config ErnieMagics.thread = "NAME"``) continues a conversation, shared with ``ErnieChat(thread=NAME)``.

        ``{name}``, ``{In[n]}``, ``{Out[n]}`` and ``{Err[n]}`` are filled in from the notebook;
        every other brace stays literal (``{{`` / ``}}`` escape). ``%ernie what is a DataFrame?`` asks (it is not
        read as a help request); ``%ernie?`` alone shows this help.
        """
        try:
            args = parse_argstring(self.ernie, line)
        except UsageError:
            raise
        except SystemExit:  # argparse on a bad option
            raise UsageError("参数错误，见 %ernie? / invalid options, see %ernie?") from None
        # IPython splits magic lines without removing quotes (`-s "be brief"` gives '"be brief"'),
        # so option values lose one pair of surrounding quotes here; prompt words stay as typed.
        for name in _STRING_OPTIONS:
            setattr(args, name, unquote(getattr(args, name)))
        args.image = [unquote(v) for v in args.image]
        if args.list:
            return list_providers(self.provider, self.model, _session_credentials)
        if args.login:
            return self._login(args.provider)
        if args.logout:
            return self._logout()
        if args.doctor:
            provider = args.provider or self.provider
            return doctor(provider, self.model, _session_credentials.get(provider or "", {}))
        if args.paste is not None:
            return paste_code_block(self.shell, args.paste, args.thread or self.thread or LAST_CALL_THREAD)
        # a cell body ends with a newline that is not part of the question
        prompt = cell.strip("\r\n").rstrip() if cell is not None else raw_prompt(line, args.prompt)
        if args.over:
            if not prompt.strip():
                raise UsageError("请提供模板 / give a prompt template for --over")
            return self._over(args, prompt)
        text = self._interpolate(prompt) if prompt.strip() else ""
        if args.schema and text.strip():
            return self._structured(args, text)
        if args.fix:
            # the cell and traceback go in verbatim: their braces are code, not prompt fields
            text = fix_prompt(self._ns) + ("\n\n" + text if text.strip() else "")
        if not text.strip():
            raise UsageError("请提供问题 / give a prompt: %ernie 你好, or %%ernie with the prompt in the cell")
        return self._generate(args, text)

    def _interpolate(self, prompt: str) -> str:
        from .interpolate import interpolate

        return interpolate(prompt, self._ns, warn=lambda msg: print(msg, file=sys.stderr), named_blocks=True)

    # -- generation ------------------------------------------------------------------------------

    def _request_params(self, args: Any) -> dict[str, Any]:
        params: dict[str, Any] = {}
        if args.params:
            try:
                extra = json.loads(args.params)
            except ValueError as exc:
                raise UsageError(f"--params 不是有效 JSON / --params is not valid JSON: {exc}") from None
            if not isinstance(extra, dict):
                raise UsageError("--params 必须是 JSON 对象 / --params must be a JSON object")
            params.update(extra)
        temperature = args.temperature if args.temperature is not None else self.temperature
        if temperature is not None:
            params["temperature"] = temperature
        if args.max_tokens is not None:
            params["max_tokens"] = args.max_tokens
        if args.search:
            params.setdefault("web_search", True)  # --params '{"web_search": {…}}' says more
        return params

    def _system_prompt(self, args: Any, fmt: str) -> str | None:
        parts = [p for p in (args.system or self.system, FORMAT_INSTRUCTIONS.get(fmt)) if p]
        return "\n\n".join(parts) or None

    def _conversation(self, args: Any) -> Conversation:
        """The thread named by --thread or ErnieMagics.thread (with its memory), else a call that stands alone: an
        unrelated earlier answer must not steer this one. A lone call is still recorded, as the only exchange of
        LAST_CALL_THREAD, so `--paste N` finds its code."""
        name = args.thread or self.thread
        if name:
            return get_thread(name)
        conv = get_thread(LAST_CALL_THREAD)
        if not conv.busy and not args.dry_run:
            conv.clear()
        return conv

    def _reads_images(self, args: Any) -> bool:
        from .client import model_info

        return model_info(args.model or self.model).vision

    def _build_messages(self, conv: Conversation, args: Any, text: str, fmt: str,
                        mention_images: list[str] | None = None) -> list[dict[str, Any]]:
        ns = self._ns
        # a call without a thread stands alone, also in a dry run (which must not clear the last call's record)
        history = [] if conv.name == LAST_CALL_THREAD else conv.history(self.max_history)
        content: Any = text
        if mention_images:
            content = [{"type": "text", "text": text},
                       *({"type": "image_url", "image_url": {"url": u}} for u in mention_images)]
        if args.image:
            from .client.messages import image

            parts: list[dict[str, Any]] = content if isinstance(content, list) else [{"type": "text", "text": text}]
            for name in args.image:
                if name not in ns:
                    raise UsageError(f"找不到变量 / no variable named {name!r} for --image")
                try:
                    parts.append(image(ns[name]))
                except ErnieError as err:
                    raise UsageError(err.message) from None
            content = parts
        messages: list[dict[str, Any]] = []
        system = self._system_prompt(args, fmt)
        if system:
            messages.append({"role": "system", "content": system})
        messages.extend(history)
        if messages and messages[-1]["role"] == "user":
            messages.pop()  # an unanswered question left by a failed turn
        messages.append({"role": "user", "content": content})
        return messages

    def _generate(self, args: Any, text: str) -> Any:
        fmt = (args.format or self.format).lower()
        conv = self._conversation(args)
        if args.reset:
            if conv.busy:
                raise UsageError(conv.busy_error().message)
            conv.clear()
        items: list[ContextItem] = []
        mention_images: list[str] = []
        if not args.no_mentions:
            items, mention_images = attach_mentions(text, self._ns, self.shell, budget=self.context_budget,
                                                    vision=self._reads_images(args))
        messages = self._build_messages(conv, args, with_context(text, items), fmt, mention_images)
        params = self._request_params(args)
        prompt_tokens, answer_limit = estimate_tokens(messages), int(params.get("max_tokens") or 1024)
        estimate = prompt_tokens + answer_limit
        if args.dry_run:
            return self._show_dry_run(messages, params, prompt_tokens, answer_limit)
        if self.token_budget and self.tokens_used + estimate > self.token_budget:
            raise UsageError(
                f"超出本会话的 token 预算 / this would exceed the session token budget: used {self.tokens_used}, "
                f"estimate {estimate}, budget {self.token_budget} (raise ErnieMagics.token_budget)"
            )
        try:
            client = _client_for(args.provider or self.provider, args.model or self.model, **self._limits())
        except ErnieError as err:
            raise one_line(err) from None
        try:
            conv.begin_or_raise()
        except ThreadBusyError as err:
            raise UsageError(err.message) from None
        streaming = self.stream and not args.no_stream and not _stream_disabled_by_env()
        outcome = Outcome()
        try:
            conv.append({"role": "user", "content": text, **({"context": items} if items else {})})
            outcome = stream_answer(client, messages, params, fmt, streaming=streaming, trust_html=args.trust_html,
                                     update_interval=self.update_interval)
            answer = outcome.answer()
            if answer.get("excluded"):
                conv.exclude_before(len(conv), notify=False)
                print(CLEARED_NOTICE, file=sys.stderr)
            conv.append(answer)
        finally:
            conv.end_turn()
        reply = outcome.reply
        if reply is not None and reply.trimmed_turns:
            print(f"历史过长，已省略最早的 {reply.trimmed_turns} 条消息 / the history was trimmed "
                  f"({reply.trimmed_turns} oldest messages left out)", file=sys.stderr)
        if reply is not None and reply.usage:
            self.tokens_used += reply.usage.total_tokens
        else:
            self.tokens_used += estimate_tokens(messages) + estimate_tokens(outcome.text)
        if outcome.interrupted:
            # a real interrupt: "Run all" must stop here too; the partial answer is already shown
            raise KeyboardInterrupt
        if outcome.error is not None:
            raise one_line(outcome.error) from None
        if not outcome.withdrawn:
            self._after(args, fmt, outcome.text)
        return None

    def _after(self, args: Any, fmt: str, text: str) -> None:
        from .render import extract_code, extract_code_blocks, looks_like_prose

        value = extract_code(text) if fmt == "code" else text
        if args.out:
            self._ns[args.out] = value
        if fmt == "code" and value.strip() and self.shell is not None:
            if not extract_code_blocks(text) and looks_like_prose(value):
                print("回答不是代码，未插入新单元格 / the answer is prose, not code: no cell was inserted "
                      "(ask again, or copy what you need)", file=sys.stderr)
                return
            self.shell.set_next_input(value, replace=False)

    def _show_dry_run(self, messages: list[dict[str, Any]], params: dict[str, Any], prompt_tokens: int,
                      answer_limit: int) -> None:
        from .client.redact import redact

        shown = json.dumps({"messages": messages, **params}, ensure_ascii=False, indent=2)
        budget = f" / budget {self.token_budget - self.tokens_used} left" if self.token_budget else ""
        print(redact(shown))
        # the answer limit is what the budget reserves, not what the prompt costs: say which is which
        print(f"# 估计 token / estimated tokens: prompt ≈ {prompt_tokens} + answer limit {answer_limit} = "
              f"{prompt_tokens + answer_limit}{budget} — 未发送 / nothing was sent")

    def _schema(self, args: Any) -> dict[str, Any]:
        """``schema=`` for the request when --schema names a variable (a schema asks for JSON: no format prompt)."""
        if not args.schema:
            return {}
        if args.schema not in self._ns:
            raise UsageError(f"找不到变量 / no variable named {args.schema!r} for --schema (a pydantic model class "
                             "or a JSON Schema dict)")
        return {"schema": self._ns[args.schema]}

    def _structured(self, args: Any, text: str) -> Any:
        """One answer as validated JSON: the parsed value is the cell's result (and --out's)."""
        try:
            client = _client_for(args.provider or self.provider, args.model or self.model, **self._limits())
            reply = client.chat(text, system=args.system or self.system, **self._schema(args),
                                **self._request_params(args))
        except ErnieError as err:
            raise one_line(err) from None
        if args.out:
            self._ns[args.out] = reply.parsed
        return reply.parsed

    def _over(self, args: Any, template: str) -> Any:
        ns = self._ns
        if args.over not in ns:
            raise UsageError(f"找不到变量 / no variable named {args.over!r} for --over")
        try:
            client = _client_for(args.provider or self.provider, args.model or self.model, **self._limits())
            fmt = (args.format or self.format).lower()
            schema = self._schema(args)
            system = (args.system or self.system) if schema else self._system_prompt(args, fmt)
            result = client.map(template, ns[args.over], system=system, namespace=ns, **schema,
                                **self._request_params(args))
        except ErnieError as err:
            raise one_line(err) from None
        if args.out:
            ns[args.out] = result
        return result

    # -- actions ---------------------------------------------------------------------------------

    def _login(self, provider: str | None) -> None:
        import getpass

        provider = provider or "qianfan"
        if provider == "qianfan-v1":
            ak = getpass.getpass("千帆 API Key (AK): ")
            sk = getpass.getpass("千帆 Secret Key (SK): ")
            creds = {"api_key": ak.strip(), "secret_key": sk.strip()}
        elif provider in ("qianfan", "aistudio", "openai"):
            label = {"qianfan": "千帆 API Key (bce-v3/ALTAK-…)", "aistudio": "星河 access token",
                     "openai": "API key"}[provider]
            creds = {"api_key": getpass.getpass(f"{label}: ").strip()}
        else:
            raise UsageError(f"{provider} 不需要密钥 / provider {provider} needs no key")
        if not all(creds.values()):
            raise UsageError("未输入密钥 / no key entered")
        from .client.redact import register_secret
        from .doctor import FAIL, WARN, run_checks

        for v in creds.values():
            register_secret(v)
        # one test request before the key is kept: a typo should fail here, not at the next question
        checks = run_checks(provider, model=self.model, api_key=creds["api_key"], secret_key=creds.get("secret_key"))
        key_check = [c for c in checks if c.name in ("key", "network")]
        failed = [c for c in key_check if c.status == FAIL]
        if any(c.name == "key" for c in failed):
            raise UsageError(f"未保存 / nothing saved: {failed[0].message}")
        for check in key_check:
            if check.status in (WARN, FAIL):  # unreachable now: keep the key, say it was not checked
                print(f"! 暂时无法验证密钥 / could not check the key now: {check.message}")
        _session_credentials.clear()
        _session_credentials[provider] = creds
        _clients.clear()
        if self.provider is None:
            self.provider = provider
        checked = "" if any(c.status in (WARN, FAIL) for c in key_check) else "，已验证 / checked, "
        print(f"✓ 已保存到本会话（不写入磁盘）{checked}/ key kept for this session only (provider={provider}); "
              "%ernie --logout forgets it")

    def _logout(self) -> None:
        """Forget the keys entered with --login; say what answers now (the environment's key or the offline model)."""
        from .client.config import environment, resolve_config

        had = list(_session_credentials)
        _session_credentials.clear()
        _clients.clear()
        if self.provider in had:
            self.provider = None
        try:
            now = resolve_config(self.provider, env=environment()).provider
        except ErnieError:
            now = "none configured / 未配置"
        print(f"✓ 已忘记本会话的密钥 / forgot the session key{'s' if len(had) != 1 else ''} "
              f"({', '.join(had) or 'none'}); now answering: {now}")

# magic_arguments writes the usage as a reST literal block ("::" then the indented usage); `%ernie?` shows it as
# plain text, where the marker is noise
if ErnieMagics.ernie.__doc__ and ErnieMagics.ernie.__doc__.startswith("::"):
    ErnieMagics.ernie.__doc__ = ErnieMagics.ernie.__doc__[2:].lstrip("\n")

_hooks: dict[int, Any] = {}


def load_ipython_extension(ipython: Any) -> None:
    """Register %ernie / %%ernie, the Err[n] recorder, and the transformer that lets a line magic end in '?'."""
    magics = ErnieMagics(shell=ipython)
    ipython.register_magics(magics)
    if ask_questions_not_help not in ipython.input_transformers_cleanup:
        ipython.input_transformers_cleanup.append(ask_questions_not_help)
    ipython.user_ns.setdefault("Err", {})
    hook = record_errors(ipython)
    _hooks[id(ipython)] = hook
    ipython.events.register("post_run_cell", hook)


def unload_ipython_extension(ipython: Any) -> None:
    if ask_questions_not_help in ipython.input_transformers_cleanup:
        ipython.input_transformers_cleanup.remove(ask_questions_not_help)
    hook = _hooks.pop(id(ipython), None)
    if hook is not None:
        try:
            ipython.events.unregister("post_run_cell", hook)
        except ValueError:
            pass
