#!/usr/bin/env python3
"""Talk to a running sspan-server with the official `openai` Python client.

    build/bin/sspan-server -m models/arith-tiny --port 8080 &
    python3 -m venv .venv && .venv/bin/pip install openai
    .venv/bin/python scripts/openai_client.py --base-url http://127.0.0.1:8080/v1

Checks what a client relies on: the model list, a completion with the span extension
field, that a streamed completion reassembles to the same text, chat (or the server's
400 when the model has no chat template), and that a bad request is a 400 the client
raises as BadRequestError. Exits non-zero when a check fails. Run by hand; not part of CI.
"""
import argparse
import sys

import openai


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base-url", default="http://127.0.0.1:8080/v1")
    ap.add_argument("--prompt", default="(1 / (7 - 6)) - (2 / (9 - 3)) [0]\n")
    args = ap.parse_args()
    client = openai.OpenAI(base_url=args.base_url, api_key="unused")
    failures = 0

    models = client.models.list()
    model = models.data[0].id
    print(f"models: {[m.id for m in models.data]}")

    done = client.completions.create(model=model, prompt=args.prompt, max_tokens=64, temperature=0,
                                     extra_body={"span": "arith"})
    text = done.choices[0].text
    span = (done.model_extra or {}).get("span", {})
    print(f"completion ({done.choices[0].finish_reason}, {done.usage.completion_tokens} tokens, "
          f"mean sparsity {span.get('mean_sparsity')}):\n{args.prompt}{text}")

    streamed = "".join(chunk.choices[0].text for chunk in client.completions.create(
        model=model, prompt=args.prompt, max_tokens=64, temperature=0, stream=True, extra_body={"span": "arith"}))
    same = streamed == text
    failures += not same
    print(f"streamed text equals the completion: {same}")

    try:
        chat = client.chat.completions.create(model=model, max_tokens=32, temperature=0,
                                              messages=[{"role": "user", "content": "9 * 9 [0]"}])
        print(f"chat: {chat.choices[0].message.content!r}")
    except openai.BadRequestError as e:
        print(f"chat: 400 as expected for a model without a chat template: {e.body.get('message') if e.body else e}")

    try:
        client.completions.create(model=model, prompt="1", max_tokens=0)
        print("bad request: accepted (unexpected)")
        failures += 1
    except openai.BadRequestError as e:
        print(f"bad request: BadRequestError {e.status_code}: {e.body.get('message') if e.body else e}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
