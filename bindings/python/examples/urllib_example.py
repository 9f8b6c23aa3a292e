#!/usr/bin/env python3
"""GET /customers with the standard library (urllib), through libucaasauth.

    python3 urllib_example.py [--profile NAME] [--base URL]

The header comes from the host's shared cache (one login per token
lifetime for the whole host). On a 401 or 403 answer the header is
rejected, so that the next call logs in again, and the request is retried
once. Exit status 0 when the API answered 2xx.
"""

import argparse
import json
import sys
import urllib.error
import urllib.request

import ucaasauth


def get(ua, url):
    """(status, body) of GET url with the profile's Authorization header."""
    for attempt in (1, 2):
        value = ua.value()
        req = urllib.request.Request(url, headers={"Authorization": value})
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            if e.code in (401, 403) and attempt == 1:
                # Drops that token for the whole host, unless another
                # process already replaced it; then try again, once.
                ua.reject(value)
                continue
            return e.code, e.read()


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--profile", default=None)
    p.add_argument("--base", default="https://api.enablex.io/ucaas/v1")
    args = p.parse_args()
    try:
        with ucaasauth.open(args.profile) as ua:
            status, body = get(ua, args.base.rstrip("/") + "/customers")
    except ucaasauth.Error as e:
        # e.name, e.status, e.detail: never a secret.
        print("ucaasauth: %s" % e, file=sys.stderr)
        return 2
    print(status)
    try:
        print(json.dumps(json.loads(body), indent=2))
    except ValueError:
        pass
    return 0 if 200 <= status < 300 else 1


if __name__ == "__main__":
    sys.exit(main())
