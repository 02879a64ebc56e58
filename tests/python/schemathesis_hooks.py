"""Schemathesis hooks for tests/tests/schemathesis.rs: which credentials each operation carries.

Loaded by `st run` through SCHEMATHESIS_HOOKS; the credentials come from the environment the
Rust test sets:

- AGENTTRACE_EDGE_KEY: `id:secret`, the edge's signing key: `/v1/batches` and `/v1/keys/verify`
  are signed as the edge signs them (HMAC-SHA256 over the exact body sent).
- AGENTTRACE_API_KEY: `public:secret` of a project key with every scope: the routes a project
  key alone may call (exports, queries, Langfuse's `/api/public` routes).
- AGENTTRACE_SESSION: a signed-in owner's session token: every route whose security lists
  `session` (AgentTrace's own control plane and reads; organizations and members too, which no
  project key reaches).
- AGENTTRACE_SIGN_OUT_SESSION: another session of that owner, for `/v1/auth/sign-out` alone, so
  that signing out never ends the session the rest of the run uses.
- AGENTTRACE_BYSTANDER_SESSION: the session of another member, for ending every session of a
  member (only the member themself may), which the configuration points at that member.
"""

import hashlib
import hmac
import os
import time

import requests
import schemathesis

EDGE_ROUTES = ["/v1/batches", "/v1/keys/verify"]
SIGN_OUT = "/v1/auth/sign-out"
REVOKE_SESSIONS = "/v1/organizations/{organization}/members/{user}/sessions/revoke"


class EdgeSignature(requests.auth.AuthBase):
    """`x-agenttrace-signature: t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`."""

    def __init__(self, spec):
        key_id, secret = spec.split(":", 1)
        self.key_id = key_id
        self.secret = secret.encode()

    def __call__(self, request):
        body = request.body or b""
        if isinstance(body, str):
            body = body.encode()
        now = str(int(time.time()))
        tag = hmac.new(self.secret, now.encode() + b"." + body, hashlib.sha256).hexdigest()
        request.headers["x-agenttrace-signature"] = f"t={now},v1={tag}"
        request.headers["x-agenttrace-key-id"] = self.key_id
        return request


schemathesis.auth.set_from_requests(EdgeSignature(os.environ["AGENTTRACE_EDGE_KEY"])).apply_to(
    path=EDGE_ROUTES
)


@schemathesis.auth(refresh_interval=None)
class Credentials:
    """A bearer token chosen by the operation's path."""

    def get(self, case, context):
        if case.operation.path == SIGN_OUT:
            return os.environ["AGENTTRACE_SIGN_OUT_SESSION"]
        if case.operation.path == REVOKE_SESSIONS:
            return os.environ["AGENTTRACE_BYSTANDER_SESSION"]
        security = case.operation.definition.raw.get("security") or []
        if any("session" in requirement for requirement in security):
            return os.environ["AGENTTRACE_SESSION"]
        return os.environ["AGENTTRACE_API_KEY"]

    def set(self, case, token, context):
        case.headers = case.headers or {}
        case.headers["Authorization"] = f"Bearer {token}"


