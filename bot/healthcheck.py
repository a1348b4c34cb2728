"""``python -m bot.healthcheck``: exit 0 if the running bot's ``/healthz`` says 200, else 1.

The container's HEALTHCHECK runs this every 30 s, so it imports the standard library only (not
discord.py or the settings: a second of CPU per probe for nothing). It reads METRICS_PORT and
METRICS_HOST from the environment, as the bot does.
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request
from collections.abc import Mapping

TIMEOUT_SECONDS = 4.0  # under the HEALTHCHECK's --timeout
# Listening on every address means the probe, in the same container, dials loopback.
_ANY = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}  # noqa: S104 - matched, not bound


def health_url(env: Mapping[str, str]) -> str | None:
    port = env.get("METRICS_PORT", "").strip()
    if not port.isdigit() or int(port) == 0:
        return None
    host = env.get("METRICS_HOST", "127.0.0.1").strip()
    host = _ANY.get(host, host)
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{int(port)}/healthz"


def probe(url: str, *, timeout: float = TIMEOUT_SECONDS) -> tuple[bool, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - http to ourselves
            return response.status == 200, response.read(500).decode(errors="replace").strip()
    except urllib.error.HTTPError as error:  # 503: the body says what is wrong
        return False, f"HTTP {error.code}: {error.read(500).decode(errors='replace').strip()}"
    except (OSError, ValueError) as error:
        return False, f"no answer: {type(error).__name__}"


def main(env: Mapping[str, str] = os.environ) -> int:
    url = health_url(env)
    if url is None:
        print("METRICS_PORT is not set: the bot serves no /healthz to check.", file=sys.stderr)
        return 1
    healthy, detail = probe(url)
    print(detail, file=sys.stdout if healthy else sys.stderr)
    return 0 if healthy else 1


if __name__ == "__main__":
    sys.exit(main())
