"""Start the real OpenID Connect provider (npm `oidc-provider`, tests/oidc/provider.mjs); talk to it as clients do."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urljoin, urlsplit

import jwt
import requests
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.conftest import port_in

REPO_ROOT = Path(__file__).resolve().parent.parent.parent
PROVIDER_SCRIPT = REPO_ROOT / "tests" / "oidc" / "provider.mjs"
API_AUDIENCE = "urn:analytics-platform:api"
OTHER_AUDIENCE = "urn:other-service:api"
# The ports this suite may use (the task's range); the provider takes the first half, daphne the second.
PROVIDER_PORTS = range(18800, 18850)
APP_PORTS = range(18850, 18900)


def signing_key(kid: str) -> tuple[rsa.RSAPrivateKey, dict[str, Any]]:
    """A fresh RSA key and its private JWK (the provider signs with it; tests may forge with it)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = jwt.algorithms.RSAAlgorithm.to_jwk(key, as_dict=True)
    jwk.pop("key_ops", None)  # PyJWT writes ["sign"]; the provider verifies its own ID tokens with it too
    jwk.update({"kid": kid, "use": "sig", "alg": "RS256"})
    return key, jwk


@dataclass
class User:
    id: str
    username: str
    password: str
    email: str
    name: str
    groups: list[str] = field(default_factory=list)


@dataclass
class Client:
    client_id: str
    client_secret: str
    redirect_uris: list[str] = field(default_factory=list)
    post_logout_redirect_uris: list[str] = field(default_factory=list)
    grant_types: list[str] = field(default_factory=lambda: ["authorization_code", "refresh_token"])
    response_types: list[str] = field(default_factory=lambda: ["code"])


class OidcTestProvider:
    """One `node provider.mjs` process; `restart` keeps users and clients (sessions are lost, as in memory)."""

    def __init__(
        self,
        *,
        directory: Path,
        clients: list[Client],
        users: list[User],
        access_token_ttl: int = 600,
        name: str = "Test IdP",
    ) -> None:
        node = shutil.which("node")
        if node is None or not (REPO_ROOT / "node_modules" / "oidc-provider").exists():
            raise RuntimeError("node and node_modules/oidc-provider are needed: run `npm ci` (make install)")
        self.node = node
        self.directory = directory
        self.port = port_in(PROVIDER_PORTS)
        self.issuer = f"http://localhost:{self.port}"
        self.key, jwk = signing_key("key-1")
        self.retired_keys: list[rsa.RSAPrivateKey] = []
        self.config: dict[str, Any] = {
            "name": name,
            "issuer": self.issuer,
            "port": self.port,
            "keys": [jwk],
            "cookie_secret": secrets.token_urlsafe(16),
            "clients": [client.__dict__ for client in clients],
            "users": [user.__dict__ for user in users],
            "resources": {
                API_AUDIENCE: {"scope": "api:read api:write"},
                OTHER_AUDIENCE: {"scope": "other:read"},
            },
            "default_resource": API_AUDIENCE,
            "access_token_ttl": access_token_ttl,
        }
        self.process: subprocess.Popen | None = None
        self.start()

    def start(self) -> None:
        config_path = self.directory / "provider.json"
        config_path.write_text(json.dumps(self.config))
        self.log_path = self.directory / "provider.log"
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [self.node, str(PROVIDER_SCRIPT), str(config_path)],
            cwd=REPO_ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the OIDC provider exited:\n{self.log_path.read_text()}")
            try:
                if requests.get(f"{self.issuer}/.well-known/openid-configuration", timeout=1).ok:
                    return
            except requests.ConnectionError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"the OIDC provider did not answer within 20 s:\n{self.log_path.read_text()}")

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)

    def rotate_keys(self, *, keep_old: bool = False) -> None:
        """Sign with a new key (new kid) from now on; restarts the provider."""
        old = self.config["keys"]
        self.retired_keys.insert(0, self.key)
        self.key, jwk = signing_key(f"key-{len(old) + len(self.retired_keys)}")
        self.config["keys"] = [jwk, *old] if keep_old else [jwk]
        self.stop()
        self.start()

    def user_update(self, user_id: str, **changes: Any) -> None:
        """Change a user at the provider (groups, disabled, ...) through its control API."""
        response = requests.post(f"{self.issuer}/__control/users/{user_id}", json=changes, timeout=5)
        response.raise_for_status()

    def token_endpoint(self) -> str:
        return f"{self.issuer}/token"

    def client_credentials_token(self, client: Client, *, resource: str = API_AUDIENCE, scope: str = "api:read") -> str:
        """A JWT access token for a machine client (client credentials grant)."""
        response = requests.post(
            self.token_endpoint(),
            data={"grant_type": "client_credentials", "resource": resource, "scope": scope},
            auth=(client.client_id, client.client_secret),
            timeout=5,
        )
        assert response.status_code == 200, response.text
        return response.json()["access_token"]

    def authorize(self, url: str, user: User, *, session: requests.Session | None = None) -> str:
        """Follow an authorization request at the provider as `user` (signing in on its form); returns where the
        provider finally redirects the browser back to (the client's redirect URI with code and state)."""
        session = session or requests.Session()
        location = url
        while location.startswith(self.issuer):
            page = session.get(location, allow_redirects=False, timeout=5)
            if page.status_code == 200 and 'name="login"' in page.text:
                page = session.post(
                    urljoin(self.issuer, _form_action(page.text)),
                    data={"login": user.username, "password": user.password},
                    allow_redirects=False,
                    timeout=5,
                )
            assert page.is_redirect, page.text
            location = urljoin(self.issuer, page.headers["Location"])
        return location

    def user_tokens(self, client: Client, user: User, *, scope: str = "openid email profile groups api:read") -> dict:
        """Run the authorization code flow with PKCE as a user would, without a browser; returns the token response."""
        session = requests.Session()
        verifier = secrets.token_urlsafe(48)
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        redirect_uri = client.redirect_uris[0]
        response = session.get(
            f"{self.issuer}/auth",
            params={
                "client_id": client.client_id,
                "response_type": "code",
                "scope": scope,
                "redirect_uri": redirect_uri,
                "state": secrets.token_urlsafe(8),
                "nonce": secrets.token_urlsafe(8),
                "code_challenge": challenge,
                "code_challenge_method": "S256",
            },
            allow_redirects=False,
            timeout=5,
        )
        location = self.authorize(urljoin(self.issuer, response.headers["Location"]), user, session=session)
        assert location.startswith(redirect_uri), location
        code = parse_qs(urlsplit(location).query)["code"][0]
        response = requests.post(
            self.token_endpoint(),
            data={
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": redirect_uri,
                "code_verifier": verifier,
            },
            auth=(client.client_id, client.client_secret),
            timeout=5,
        )
        assert response.status_code == 200, response.text
        return response.json()


class _FormFinder(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.action = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "form" and not self.action:
            self.action = dict(attrs).get("action") or ""


def _form_action(html: str) -> str:
    finder = _FormFinder()
    finder.feed(html)
    if not finder.action:
        raise AssertionError("no form on the provider's page: " + " ".join(html.split())[:300])
    return finder.action
