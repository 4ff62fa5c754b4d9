// A real OpenID Connect provider for the SSO tests: the certified `oidc-provider` package from npm, configured
// from a JSON file (clients, users with group claims, signing keys, API resources), with a plain login form
// instead of the package's development screens and a small control API the tests use to change a user
// (groups, disabled) at the provider between two sign-ins.
//
//   node tests/oidc/provider.mjs <config.json>
//
// The config (written by tests/oidc/conftest.py):
//   issuer, port, keys (private JWKs; the first signs), cookie_secret,
//   clients [{client_id, client_secret, redirect_uris, post_logout_redirect_uris, grant_types, response_types}],
//   users [{id, username, password, email, name, groups, disabled}],
//   resources {"<audience>": {"scope": "api:read api:write"}}, default_resource,
//   access_token_ttl, id_token_ttl (seconds)
// Prints "ready <issuer>" on stdout once it listens.

import fs from 'node:fs';
import http from 'node:http';

import Provider, { errors } from 'oidc-provider';

const config = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
const users = new Map(config.users.map((user) => [user.id, { groups: [], disabled: false, ...user }]));
const resources = config.resources ?? {};

function htmlEscape(text) {
  return String(text).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]);
}

function page(title, body) {
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>${htmlEscape(title)}</title></head>`
    + `<body><main><h1>${htmlEscape(title)}</h1>${body}</main></body></html>`;
}

async function readBody(req) {
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  return Buffer.concat(chunks).toString('utf8');
}

function loginForm(uid, clientId, error = '') {
  return page(`Sign in to ${config.name ?? 'Test IdP'}`, `
    <p>Signing in to <code id="client">${htmlEscape(clientId)}</code></p>
    ${error ? `<p role="alert" id="error">${htmlEscape(error)}</p>` : ''}
    <form method="post" action="/interaction/${htmlEscape(uid)}/login">
      <label>Username <input name="login" autocomplete="username" autofocus></label>
      <label>Password <input name="password" type="password" autocomplete="current-password"></label>
      <button type="submit" id="idp-submit">Sign in</button>
    </form>`);
}

const provider = new Provider(config.issuer, {
  clients: config.clients,
  jwks: { keys: config.keys },
  cookies: { keys: [config.cookie_secret ?? 'test-provider-cookie-secret'] },
  // The ID token carries the profile, email and groups claims too (not only the userinfo endpoint), as
  // Entra ID and Okta can be set to do.
  conformIdTokenClaims: false,
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['name', 'preferred_username'],
    groups: ['groups'],
  },
  scopes: ['openid', 'offline_access', 'email', 'profile', 'groups'],
  async findAccount(ctx, id) {
    const user = users.get(id);
    // A disabled user has no account any more: refresh-token and code grants for them fail with invalid_grant.
    if (!user || user.disabled) return undefined;
    return {
      accountId: id,
      async claims() {
        return {
          sub: id,
          email: user.email,
          email_verified: true,
          name: user.name,
          preferred_username: user.username,
          groups: user.groups,
        };
      },
    };
  },
  // A user's `org` (set through the control API) goes into their JWT access tokens, as a provider mapper adds an
  // organisation claim (OIDC_API_ORGANIZATION_CLAIM).
  async extraTokenClaims(ctx, token) {
    const user = token.accountId ? users.get(token.accountId) : undefined;
    return user?.org ? { org: user.org } : undefined;
  },
  // PKCE for every client, so a relying party that skipped it could not sign in.
  pkce: { required: () => true },
  // Refresh tokens for every client allowed the grant (Keycloak's behaviour), without offline_access.
  issueRefreshToken: async (ctx, client) => client.grantTypeAllowed('refresh_token'),
  ttl: {
    AccessToken: config.access_token_ttl ?? 600,
    ClientCredentials: config.access_token_ttl ?? 600,
    IdToken: config.id_token_ttl ?? 600,
    RefreshToken: 3600,
    Session: 3600,
    Interaction: 600,
    Grant: 3600,
  },
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    rpInitiatedLogout: {
      enabled: true,
      async logoutSource(ctx, form) {
        ctx.body = page('Sign out', `${form}<button type="submit" form="op.logoutForm" value="yes" name="logout" id="idp-logout">Yes, sign me out</button>`);
      },
      async postLogoutSuccessSource(ctx) {
        ctx.body = page('Signed out', '<p id="signed-out">You are signed out of the identity provider.</p>');
      },
    },
    resourceIndicators: {
      enabled: true,
      // The API is the default audience when API scopes are asked for; otherwise the access token is the
      // provider's own (opaque, for its userinfo endpoint).
      defaultResource: async (ctx, client, oneOf) => {
        if (oneOf) return oneOf;
        const scope = String(ctx.oidc.params?.scope ?? '');
        return /(^|\s)api:/.test(scope) ? config.default_resource : undefined;
      },
      useGrantedResource: async () => true,
      async getResourceServerInfo(ctx, resourceIndicator) {
        const resource = resources[resourceIndicator];
        if (!resource) throw new errors.InvalidTarget();
        return {
          scope: resource.scope,
          audience: resourceIndicator,
          accessTokenTTL: config.access_token_ttl ?? 600,
          accessTokenFormat: 'jwt',
          jwt: { sign: { alg: 'RS256' } },
        };
      },
    },
  },
  async renderError(ctx, out, error) {
    if (error?.cause) process.stdout.write(`error cause: ${error.cause}\n`);
    ctx.type = 'html';
    ctx.body = page('Error', `<pre id="error">${htmlEscape(JSON.stringify(out))}</pre>`);
  },
});

// Login and consent screens (consent is given for everything asked: the test's users trust the test's clients).
provider.use(async (ctx, next) => {
  const match = ctx.path.match(/^\/interaction\/([^/]+)(\/login)?$/);
  if (!match) return next();
  const details = await provider.interactionDetails(ctx.req, ctx.res);
  const { prompt, params, uid } = details;
  if (prompt.name === 'login') {
    if (ctx.method !== 'POST') {
      ctx.type = 'html';
      ctx.body = loginForm(uid, params.client_id);
      return undefined;
    }
    const form = new URLSearchParams(await readBody(ctx.req));
    const user = [...users.values()].find((u) => u.username === form.get('login'));
    if (!user || user.password !== form.get('password') || user.disabled) {
      ctx.status = 401;
      ctx.type = 'html';
      ctx.body = loginForm(uid, params.client_id, 'Wrong username or password.');
      return undefined;
    }
    const returnTo = await provider.interactionResult(ctx.req, ctx.res, { login: { accountId: user.id } }, { mergeWithLastSubmission: false });
    ctx.status = 303;
    ctx.redirect(returnTo);
    return undefined;
  }
  if (prompt.name === 'consent') {
    const missing = prompt.details;
    const grant = details.grantId
      ? await provider.Grant.find(details.grantId)
      : new provider.Grant({ accountId: details.session.accountId, clientId: params.client_id });
    if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(' '));
    if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims);
    for (const [indicator, scopes] of Object.entries(missing.missingResourceScopes ?? {})) {
      grant.addResourceScope(indicator, scopes.join(' '));
    }
    const grantId = await grant.save();
    const returnTo = await provider.interactionResult(ctx.req, ctx.res, { consent: { grantId } }, { mergeWithLastSubmission: true });
    ctx.status = 303;
    ctx.redirect(returnTo);
    return undefined;
  }
  ctx.status = 400;
  ctx.body = `unsupported prompt ${prompt.name}`;
  return undefined;
});

// Control API for the tests: change a user at the provider (groups, disabled, name, email).
provider.use(async (ctx, next) => {
  const match = ctx.path.match(/^\/__control\/users\/([^/]+)$/);
  if (!match || ctx.method !== 'POST') return next();
  const user = users.get(decodeURIComponent(match[1]));
  if (!user) {
    ctx.status = 404;
    return undefined;
  }
  Object.assign(user, JSON.parse(await readBody(ctx.req)));
  ctx.body = { id: user.id, groups: user.groups, disabled: user.disabled };
  return undefined;
});

const server = http.createServer(provider.callback());
server.listen(config.port, '127.0.0.1', () => {
  process.stdout.write(`ready ${config.issuer}\n`);
});
for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => server.close(() => process.exit(0)));
}
