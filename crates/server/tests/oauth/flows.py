"""A sandbox's OAuth provider driven by authlib (the client) and PyJWT (the
verifier), as a developer's app would: client credentials, then
authorization code + PKCE with refresh-token rotation, each token verified
against the published JWKS and used on the sandbox's API.

Usage: flows.py CONFIG_JSON   (issuer, sandbox, api, clients, redirect)
Exits non-zero naming the failing step.
"""
import json
import secrets
import sys

import jwt
import requests
from authlib.integrations.requests_client import OAuth2Session
from authlib.integrations.base_client.errors import OAuthError

config = json.loads(sys.argv[1])
issuer = config["issuer"]
api = config["api"]
sandbox = config["sandbox"]


def step(name, ok, detail=""):
    if not ok:
        print(f"FAILED: {name}: {detail}", file=sys.stderr)
        sys.exit(1)
    print(f"ok: {name}")


meta = requests.get(f"{issuer}/.well-known/openid-configuration", timeout=10).json()
step("discovery names the issuer", meta["issuer"] == issuer, meta)
step("discovery offers S256 only", meta["code_challenge_methods_supported"] == ["S256"], meta)
jwks = jwt.PyJWKClient(meta["jwks_uri"])


def verify(token, audience):
    key = jwks.get_signing_key_from_jwt(token)
    return jwt.decode(token, key.key, algorithms=["ES256"], audience=audience, issuer=issuer)


# Client credentials, scoped to reading.
machine = OAuth2Session(
    config["confidential"]["client_id"],
    config["confidential"]["client_secret"],
    scope="things:read",
)
token = machine.fetch_token(meta["token_endpoint"], grant_type="client_credentials")
claims = verify(token["access_token"], sandbox)
step("a client-credentials token verifies with PyJWT", claims["scope"] == "things:read", claims)
step("its subject is the client", claims["sub"] == config["confidential"]["client_id"], claims)
read = requests.get(f"{api}/things", headers={"Authorization": f"Bearer {token['access_token']}"}, timeout=10)
step("the token reads", read.status_code == 200, read.text)
write = requests.post(f"{api}/things", json={}, headers={"Authorization": f"Bearer {token['access_token']}"}, timeout=10)
challenge = write.headers.get("WWW-Authenticate", "")
step("writing needs things:write", write.status_code == 403 and 'error="insufficient_scope"' in challenge, (write.status_code, challenge))
step("the challenge names the scope", 'scope="things:write"' in challenge, challenge)

# Authorization code + PKCE, a public client (no secret).
app = OAuth2Session(
    config["public"]["client_id"],
    redirect_uri=config["redirect"],
    scope="openid things:read things:write offline_access",
    code_challenge_method="S256",
    token_endpoint_auth_method="none",
    revocation_endpoint_auth_method="none",
)
verifier = secrets.token_urlsafe(48)
nonce = secrets.token_urlsafe(16)
url, state = app.create_authorization_url(meta["authorization_endpoint"], code_verifier=verifier, nonce=nonce)
redirect = requests.get(url, allow_redirects=False, timeout=10)
location = redirect.headers.get("Location", "")
step("authorize consents and redirects with a code", redirect.status_code == 302 and "code=" in location, (redirect.status_code, location))
tokens = app.fetch_token(meta["token_endpoint"], authorization_response=location, code_verifier=verifier)
claims = verify(tokens["access_token"], sandbox)
step("the user's token carries its scopes", set(claims["scope"].split()) >= {"things:read", "things:write"}, claims)
identity = verify(tokens["id_token"], config["public"]["client_id"])
step("the ID token is for the client, with the nonce", identity["nonce"] == nonce and identity["sub"] == claims["sub"], identity)
made = requests.post(f"{api}/things", json={}, headers={"Authorization": f"Bearer {tokens['access_token']}"}, timeout=10)
step("the user's token writes", made.status_code in (200, 201), (made.status_code, made.text))
info = requests.get(meta["userinfo_endpoint"], headers={"Authorization": f"Bearer {tokens['access_token']}"}, timeout=10)
step("userinfo answers the user's claims", info.status_code == 200 and info.json()["sub"] == claims["sub"], info.text)

# Refresh tokens rotate; a reused one revokes its family.
first_refresh = tokens["refresh_token"]
rotated = app.refresh_token(meta["token_endpoint"], refresh_token=first_refresh)
step("a refresh gives a new refresh token", rotated["refresh_token"] != first_refresh, rotated)
verify(rotated["access_token"], sandbox)
try:
    app.refresh_token(meta["token_endpoint"], refresh_token=first_refresh)
    step("a reused refresh token is refused", False, "it was accepted")
except OAuthError as error:
    step("a reused refresh token is refused", error.error == "invalid_grant", error)
try:
    app.refresh_token(meta["token_endpoint"], refresh_token=rotated["refresh_token"])
    step("the reuse revoked the newer token too", False, "it was accepted")
except OAuthError as error:
    step("the reuse revoked the newer token too", error.error == "invalid_grant", error)

# A code is good once.
url, _ = app.create_authorization_url(meta["authorization_endpoint"], code_verifier=verifier)
location = requests.get(url, allow_redirects=False, timeout=10).headers["Location"]
app.fetch_token(meta["token_endpoint"], authorization_response=location, code_verifier=verifier)
try:
    app.fetch_token(meta["token_endpoint"], authorization_response=location, code_verifier=verifier)
    step("a replayed code is refused", False, "it was accepted")
except OAuthError as error:
    step("a replayed code is refused", error.error == "invalid_grant", error)

# A wrong verifier fails PKCE.
url, _ = app.create_authorization_url(meta["authorization_endpoint"], code_verifier=verifier)
location = requests.get(url, allow_redirects=False, timeout=10).headers["Location"]
try:
    app.fetch_token(meta["token_endpoint"], authorization_response=location, code_verifier=secrets.token_urlsafe(48))
    step("a PKCE verifier mismatch is refused", False, "it was accepted")
except OAuthError as error:
    step("a PKCE verifier mismatch is refused", error.error == "invalid_grant", error)

# Revocation (RFC 7009): an access token stops working; a refresh token ends its grant.
step("discovery names the revocation endpoint", meta.get("revocation_endpoint", "").endswith("/revoke"), meta)
doomed = machine.fetch_token(meta["token_endpoint"], grant_type="client_credentials")
before = requests.get(f"{api}/things", headers={"Authorization": f"Bearer {doomed['access_token']}"}, timeout=10)
step("a fresh token reads", before.status_code == 200, before.text)
revoked = machine.revoke_token(meta["revocation_endpoint"], token=doomed["access_token"], token_type_hint="access_token")
step("revoking answers 200", revoked.status_code == 200, revoked.text)
after = requests.get(f"{api}/things", headers={"Authorization": f"Bearer {doomed['access_token']}"}, timeout=10)
step("a revoked access token is refused", after.status_code == 401, (after.status_code, after.text))
url, _ = app.create_authorization_url(meta["authorization_endpoint"], code_verifier=verifier)
location = requests.get(url, allow_redirects=False, timeout=10).headers["Location"]
granted = app.fetch_token(meta["token_endpoint"], authorization_response=location, code_verifier=verifier)
revoked = app.revoke_token(meta["revocation_endpoint"], token=granted["refresh_token"], token_type_hint="refresh_token")
step("revoking a refresh token answers 200", revoked.status_code == 200, revoked.text)
try:
    app.refresh_token(meta["token_endpoint"], refresh_token=granted["refresh_token"])
    step("a revoked refresh token is refused", False, "it was accepted")
except OAuthError as error:
    step("a revoked refresh token is refused", error.error == "invalid_grant", error)
unknown = app.revoke_token(meta["revocation_endpoint"], token="not-a-token")
step("revoking an unknown token answers 200 too", unknown.status_code == 200, unknown.text)

print(json.dumps({"client_credentials_token": token["access_token"], "user_token": tokens["access_token"]}))
