"""schemathesis hooks for scripts/api-fuzz.sh: every write that carries a valid Idempotency-Key
gets a key of its own, as a real client's writes do, and an invalid key reaches the service.

- schemathesis draws header values from a small pool, so two different bodies often carry the
  same key: the service rightly answers the second one 422 (`idempotency_key_reused`), or replays
  the first one's 201 for a student a stateful sequence has since deleted. Neither is what the key
  is for, so a key the service would accept is replaced by a fresh UUID just before the request
  is sent. Negative cases keep their key whatever it is: changing a valid header there turns them
  into other cases than the ones schemathesis checks the answer of.
- requests sends a header's characters as Latin-1, and Rocket drops a header value that is not
  UTF-8 before any of the service's code runs (it logs "Dropping header"), so a non-ASCII key
  would arrive as no key at all. Such keys are sent as UTF-8, as most clients send them, so that
  the service sees the key the case is about, and refuses it.
"""

import re
import uuid

import schemathesis

HEADER = "idempotency-key"
# What src/idempotency.rs accepts once HTTP has trimmed the value: 1 to 255 printable ASCII.
ACCEPTED = re.compile(r"[ -~]{1,255}")


@schemathesis.hook
def before_call(context, case, **kwargs):
    headers = case.headers or {}
    negative = case.meta is not None and case.meta.generation.mode.is_negative
    for name, value in headers.items():
        if name.lower() != HEADER or not isinstance(value, str):
            continue
        if not negative and ACCEPTED.fullmatch(value.strip()):
            headers[name] = str(uuid.uuid4())
        elif not value.isascii():
            headers[name] = value.encode("utf-8").decode("latin-1")
