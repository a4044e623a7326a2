"""Call the demo gateway with the official `openai` SDK and a dev client certificate.

    .venv/bin/python examples/evaluator_sdk.py --who alice --model muse-1 [--stream]

The certificate authenticates the caller (mTLS). The SDK insists on an API key and
sends it as a bearer token; a value that is not a JWT, such as "mtls", is ignored by the
gateway when a verified client certificate is presented. To use an OIDC token instead
(or as well), pass the token as `api_key`.
"""

from __future__ import annotations

import argparse
import ssl
from pathlib import Path

import openai

CERTS = Path(__file__).resolve().parents[1] / "certs" / "dev"


def client_for(who: str, base_url: str) -> openai.OpenAI:
    context = ssl.create_default_context(cafile=str(CERTS / "corp-ca" / "ca.pem"))
    context.load_cert_chain(CERTS / f"{who}.pem", CERTS / f"{who}-key.pem")
    return openai.OpenAI(
        base_url=base_url, api_key="mtls", http_client=openai.DefaultHttpxClient(verify=context)
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--who", default="alice")
    parser.add_argument("--model", default="muse-1")
    parser.add_argument("--base-url", default="https://localhost:8443/v1")
    parser.add_argument("--stream", action="store_true")
    args = parser.parse_args()
    client = client_for(args.who, args.base_url)
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


if __name__ == "__main__":
    main()
