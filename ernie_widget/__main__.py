"""`ernie-widget` / `python -m ernie_widget`: ask from the terminal, run the gateway, or check the setup."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def _ask_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ernie-widget ask", description="Stream an ERNIE answer to the terminal.")
    p.add_argument("prompt", nargs="*", help="the question (read from stdin when omitted)")
    p.add_argument("-p", "--provider", help="qianfan, qianfan-v1, aistudio, openai, local, replay")
    p.add_argument("-m", "--model", help="model name (or a GGUF path for local)")
    p.add_argument("-s", "--system", help="system prompt")
    p.add_argument("-t", "--temperature", type=float)
    p.add_argument("--max-tokens", type=int)
    p.add_argument("--base-url", help="base URL of the service")
    p.add_argument("--reasoning", action="store_true", help="also print the model's reasoning")
    return p


def ask(argv: Sequence[str]) -> int:
    args = _ask_parser().parse_args(argv)
    prompt = " ".join(args.prompt).strip()
    if not prompt and not sys.stdin.isatty():
        prompt = sys.stdin.read().strip()
    if not prompt:
        print("ernie-widget: 请提供问题 / give a prompt, e.g. ernie-widget \"你好\"", file=sys.stderr)
        return 2
    from .client import Ernie, ErnieError

    try:
        client = Ernie(args.provider, model=args.model, base_url=args.base_url)
        stream = client.stream(prompt, system=args.system, temperature=args.temperature, max_tokens=args.max_tokens)
        in_reasoning = False
        with stream:
            for ev in stream:
                if ev.type == "reasoning" and args.reasoning:
                    if not in_reasoning:
                        sys.stderr.write("[思考 / thinking] ")
                        in_reasoning = True
                    sys.stderr.write(ev.text)
                    sys.stderr.flush()
                elif ev.type == "text":
                    if in_reasoning:
                        sys.stderr.write("\n")
                        in_reasoning = False
                    sys.stdout.write(ev.text)
                    sys.stdout.flush()
        sys.stdout.write("\n")
        return 0
    except ErnieError as err:
        sys.stdout.write("\n" if getattr(err, "partial_text", "") else "")
        print(f"ernie-widget: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nernie-widget: 已中断 / interrupted", file=sys.stderr)
        return 130


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in ("-h", "--help"):
        print("usage: ernie-widget [ask] PROMPT… | serve … | doctor\n\n"
              "  ask     stream an answer to the terminal (the default)\n"
              "  serve   run the ERNIE gateway for a team (needs ernie-widget[gateway])\n"
              "  doctor  check configuration, proxies, CA bundle, reachability and the key")
        return 0
    if argv and argv[0] == "serve":
        try:
            from .gateway.cli import main as serve_main
        except ImportError as exc:
            print(f"ernie-widget: 网关需要额外依赖 / the gateway needs: pip install 'ernie-widget[gateway]' ({exc})",
                  file=sys.stderr)
            return 2
        return serve_main(argv[1:])
    if argv and argv[0] == "doctor":
        from .doctor import main as doctor_main

        return doctor_main(argv[1:])
    if argv and argv[0] == "ask":
        argv = argv[1:]
    return ask(argv)


if __name__ == "__main__":
    sys.exit(main())
