"""The container's health check (the slim image has no curl): exit 0 when the bot's
GET /healthz on HEALTH_PORT answers 200 with "database": "ok", else 1."""

from __future__ import annotations

import json
import os
import sys
import urllib.request

URL = f"http://127.0.0.1:{os.environ.get('HEALTH_PORT', '8080')}/healthz"

try:
    with urllib.request.urlopen(URL, timeout=5) as response:
        body = json.load(response)
        healthy = response.status == 200 and isinstance(body, dict) and body.get("database") == "ok"
except (OSError, ValueError) as err:
    print(f"{URL}: {err}")
    sys.exit(1)
print(f"{URL}: {'ok' if healthy else 'unhealthy'}")
sys.exit(0 if healthy else 1)
