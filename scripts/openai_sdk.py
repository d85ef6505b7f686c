"""Drives examples/axum_gateway with the official OpenAI Python SDK, the way the issue found
its defects: default client settings (2 retries of its own), the local upstream steered through
the gateway's /admin/ knobs. Run by scripts/openai_sdk.sh, which starts the gateway.

    python scripts/openai_sdk.py http://127.0.0.1:PORT

Each scenario prints what the SDK saw, how many HTTP requests the SDK sent to the gateway, how
many reached the upstream, and how long the call took; any unexpected outcome fails the run.
"""

import json
import logging
import sys
import time
import urllib.request

import openai

MODEL = "accounts/fireworks/models/llama-v3p1-8b-instruct"
MESSAGES = [{"role": "user", "content": "hi"}]


class SdkRequests(logging.Handler):
    """Counts the HTTP requests the SDK sends, retries included, from its own debug log."""

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.count = 0

    def emit(self, record):
        if record.getMessage().startswith("Sending HTTP Request"):
            self.count += 1


def admin(base, method, path):
    request = urllib.request.Request(base + path, method=method)
    with urllib.request.urlopen(request, timeout=10) as response:
        body = response.read()
        return json.loads(body) if body else None


failures = []
SCENARIOS = ["chat", "streamed chat", "models", "outage", "stall", "413", "429"]


def check(name, condition, detail):
    if not condition:
        failures.append(f"{name}: {detail}")


def run(base, sdk, counter, name, setup, call):
    admin(base, "POST", "/admin/reset")
    for method, path in setup:
        admin(base, method, path)
    counter.count = 0
    started = time.monotonic()
    try:
        outcome = call(sdk)
        error = None
    except openai.APIError as e:  # every SDK error, connection errors included
        outcome = None
        error = e
    elapsed = time.monotonic() - started
    upstream = admin(base, "GET", "/admin/stats")["requests"]
    seen = type(error).__name__ if error else "ok"
    status = getattr(error, "status_code", None)
    print(
        f"{name:<34} {seen:<22} status={status!s:<5} sdk_requests={counter.count} "
        f"upstream_requests={upstream:<2} elapsed={elapsed:5.1f}s",
        flush=True,
    )
    return outcome, error, counter.count, upstream, elapsed


def chat(sdk):
    return sdk.chat.completions.create(model=MODEL, messages=MESSAGES)


def stream(sdk):
    return [chunk for chunk in sdk.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True)]


def main():
    base = sys.argv[1].rstrip("/")
    counter = SdkRequests()
    log = logging.getLogger("openai")
    log.setLevel(logging.DEBUG)
    log.addHandler(counter)
    log.propagate = False
    # The SDK's defaults: 2 retries, its own backoff, 10 min timeout.
    sdk = openai.OpenAI(base_url=base + "/v1", api_key="unused-the-gateway-has-its-own")
    print(f"openai {openai.__version__} (max_retries={sdk.max_retries}) -> {base}", flush=True)

    out, err, sent, upstream, _ = run(base, sdk, counter, "chat", [], chat)
    check("chat", err is None and out.choices[0].message.content, f"error {err!r}")

    out, err, sent, upstream, _ = run(base, sdk, counter, "streamed chat", [], stream)
    check("streamed chat", err is None and len(out) > 1, f"error {err!r}")

    out, err, sent, upstream, _ = run(base, sdk, counter, "models", [], lambda s: s.models.list())
    check("models", err is None and any(m.id == MODEL for m in out.data), f"error {err!r}")

    # An outage the gateway retries: the SDK must not start two more rounds of it.
    out, err, sent, upstream, _ = run(
        base, sdk, counter, "outage (503 to everything)", [("POST", "/admin/outage?status=503")], chat
    )
    admin(base, "DELETE", "/admin/outage")
    check("outage", isinstance(err, openai.InternalServerError), f"got {err!r}")
    check("outage", sent == 1, f"the SDK sent {sent} requests (retried the gateway's final 503)")
    check("outage", upstream <= 5, f"{upstream} upstream attempts")

    # A stream cut for idleness: an APIError with the gateway's message, not a network error.
    out, err, sent, upstream, _ = run(
        base, sdk, counter, "stream stalled after 3 events", [("POST", "/admin/stall?after=3")], stream
    )
    check("stall", err is not None and not isinstance(err, openai.APIConnectionError), f"got {err!r}")
    check("stall", err is not None and "idle" in str(err), f"message {err}")
    check("stall", sent == 1, f"the SDK sent {sent} requests")

    # Too large for the gateway: a 413 the SDK reads as an API error with a body.
    huge = [{"role": "user", "content": "x" * (3 * 1024 * 1024)}]
    out, err, sent, upstream, _ = run(
        base, sdk, counter, "3 MB request", [], lambda s: s.chat.completions.create(model=MODEL, messages=huge)
    )
    check("413", isinstance(err, openai.APIStatusError) and err.status_code == 413, f"got {err!r}")
    check("413", isinstance(err, openai.APIStatusError) and isinstance(err.body, dict), f"body {getattr(err, 'body', None)!r}")
    check("413", upstream == 0, f"{upstream} upstream requests")

    # A rate limit longer than the gateway's 60 s deadline (last: it closes the gateway's gate
    # for 90 s). Without `x-should-retry: false` an SDK waits out the 90 s (openai-python >= 2
    # minutes' bound) or retries at once into the closed gate (openai-node, older python).
    out, err, sent, upstream, elapsed = run(
        base, sdk, counter, "429 with Retry-After: 90", [("POST", "/admin/throttle?count=1&retry_after=90")], chat
    )
    check("429", isinstance(err, openai.RateLimitError), f"got {err!r}")
    check("429", sent == 1 and elapsed < 10, f"the SDK sent {sent} requests in {elapsed:.1f}s")
    check("429", upstream == 1, f"{upstream} upstream requests")

    failed = {failure.split(":")[0] for failure in failures}
    if failures:
        print("FAILED:\n  " + "\n  ".join(failures))
    print(f"openai_sdk: {len(SCENARIOS) - len(failed)} passed, {len(failed)} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
