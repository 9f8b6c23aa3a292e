#!/usr/bin/env python3
"""GET /customers with requests, through libucaasauth.

    pip install requests        # not needed by ucaasauth itself
    python3 requests_example.py [--profile NAME] [--base URL]

A requests.auth.AuthBase that sets the Authorization header from the
host's shared cache on every request, and a response hook that, on a 401
or 403 answer, rejects that header (so that the host logs in again, once)
and resends the request once with the new one. Exit status 0 when the API
answered 2xx.
"""

import argparse
import sys

import requests

import ucaasauth


class UcaasAuth(requests.auth.AuthBase):
    def __init__(self, handle):
        self.handle = handle

    def __call__(self, req):
        req.headers["Authorization"] = self.handle.value()
        req.register_hook("response", self.retry_once)
        return req

    def retry_once(self, resp, **kwargs):
        if resp.status_code not in (401, 403) or \
                getattr(resp.request, "_ucaasauth_retried", False):
            return resp
        self.handle.reject(resp.request.headers["Authorization"])
        resp.content  # finish reading, release the connection
        again = resp.request.copy()
        again._ucaasauth_retried = True
        again.headers["Authorization"] = self.handle.value()
        new = resp.connection.send(again, **kwargs)
        new.history.append(resp)
        new.request = again
        return new


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--profile", default=None)
    p.add_argument("--base", default="https://api.enablex.io/ucaas/v1")
    args = p.parse_args()
    try:
        with ucaasauth.open(args.profile) as ua, requests.Session() as s:
            s.auth = UcaasAuth(ua)
            r = s.get(args.base.rstrip("/") + "/customers", timeout=30)
    except ucaasauth.Error as e:
        print("ucaasauth: %s" % e, file=sys.stderr)
        return 2
    print(r.status_code)
    print(r.text)
    return 0 if r.ok else 1


if __name__ == "__main__":
    sys.exit(main())
