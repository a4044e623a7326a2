"""Call the demo gateway with the official `openai` SDK and a dev client certificate.

    .venv/bin/python examples/evaluator_sdk.py --who alice --model muse-1 [--stream]

Run `python -m gateway.demo` first: it makes the dev certificates under certs/dev/ and
serves the gateway on https://localhost:8443.

The certificate authenticates the caller (mTLS). The SDK insists on an API key and
sends it as a bearer token; a value that is not a JWT, such as "mtls", is ignored by the
gateway when a verified client certificate is presented. To use an OIDC token instead
(or as well), pass the token as `api_key`.
"""

from __future__ import annotations

import argparse
import ssl
import sys
from pathlib import Path

import openai

CERTS = Path(__file__).resolve().parents[1] / "certs" / "dev"


def client_for(who: str, base_url: str, certs: Path = CERTS) -> openai.OpenAI:
    context = ssl.create_default_context(cafile=str(certs / "corp-ca" / "ca.pem"))
    context.load_cert_chain(certs / f"{who}.pem", certs / f"{who}-key.pem")
    return openai.OpenAI(
        base_url=base_url, api_key="mtls", http_client=openai.DefaultHttpxClient(verify=context)
    )


def fail(message: str) -> SystemExit:
    """One line on standard error and status 2: what went wrong and what to do."""
    print(f"evaluator_sdk: {message}", file=sys.stderr)
    return SystemExit(2)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Ask the gateway for a chat completion as a dev caller (mTLS), with the "
        "openai SDK. Exit status: 0 answered, 1 the gateway refused, 2 cannot call it."
    )
    parser.add_argument(
        "--who",
        default="alice",
        metavar="NAME",
        help="the caller: uses CERTS/NAME.pem and CERTS/NAME-key.pem (default: alice)",
    )
    parser.add_argument(
        "--model", default="muse-1", help="the public model id to ask (default: muse-1)"
    )
    parser.add_argument(
        "--base-url",
        default="https://localhost:8443/v1",
        metavar="URL",
        help="the gateway's OpenAI-compatible base URL (default: https://localhost:8443/v1)",
    )
    parser.add_argument(
        "--certs",
        type=Path,
        default=CERTS,
        metavar="DIR",
        help="the dev certificates folder made by `python -m gateway.demo` (default: certs/dev)",
    )
    parser.add_argument("--stream", action="store_true", help="print the answer as it is generated")
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    if not args.base_url.startswith(("https://", "http://")):
        raise fail(f"--base-url {args.base_url}: give an https:// or http:// URL")
    authority = args.certs / "corp-ca" / "ca.pem"
    if not authority.is_file():
        raise fail(
            f"--certs {args.certs}: no such file {authority}; give the dev certificates folder "
            "(run `python -m gateway.demo` to make it)"
        )
    for path in (args.certs / f"{args.who}.pem", args.certs / f"{args.who}-key.pem"):
        if not path.is_file():
            raise fail(
                f"--who {args.who}: no such file {path}; give a caller whose certificate and "
                f"key are in {args.certs}"
            )
    try:
        client = client_for(args.who, args.base_url, args.certs)
    except (ssl.SSLError, OSError) as exc:
        raise fail(
            f"--who {args.who}: cannot use the certificate and key in {args.certs}: {exc}"
        ) from None
    messages: list[openai.types.chat.ChatCompletionMessageParam] = [
        {"role": "user", "content": "Say hello to the evaluator."}
    ]
    try:
        if args.stream:
            stream = client.chat.completions.create(
                model=args.model,
                messages=messages,
                stream=True,
                stream_options={"include_usage": True},
            )
            for chunk in stream:
                if chunk.choices and chunk.choices[0].delta.content:
                    print(chunk.choices[0].delta.content, end="", flush=True)
                if chunk.usage:
                    print(f"\n[usage: {chunk.usage.total_tokens} tokens]")
        else:
            completion = client.chat.completions.create(model=args.model, messages=messages)
            print(completion.choices[0].message.content)
            if completion.usage:
                print(f"[usage: {completion.usage.total_tokens} tokens]")
    except openai.APIStatusError as error:
        body = error.body if isinstance(error.body, dict) else {}
        print(f"refused: HTTP {error.status_code} {body.get('code')}: {body.get('message')}")
        raise SystemExit(1) from None
    except openai.APIConnectionError as error:
        cause = error.__cause__ or error
        raise fail(
            f"cannot reach the gateway at --base-url {args.base_url} ({cause}); is it "
            "running (`python -m gateway.demo`)?"
        ) from None


if __name__ == "__main__":
    main()
