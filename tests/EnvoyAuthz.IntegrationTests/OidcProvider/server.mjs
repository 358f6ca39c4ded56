// Loopback OpenID provider for EnvoyAuthz integration tests. TEST USE ONLY.
//
// Runs the real `oidc-provider` package on 127.0.0.1 with:
//   - issuer http://127.0.0.1:<port>, discovery, JWKS (/jwks) and token (/token) endpoints;
//   - signing keys generated at start (one RS256, one ES256), never committed; with --state-file they
//     are persisted to that file so a restarted process serves the same keys;
//   - the client_credentials grant for configurable confidential clients, issuing JWT access tokens
//     (resourceIndicators, accessTokenFormat 'jwt') carrying groups and realm_access.roles;
//   - test-only admin endpoints under /__test/ (key rotation, JWKS/discovery outage, delay, counters).
//
// Usage: node server.mjs [--port N] [--state-file PATH] [--clients-file PATH] [--ignore-stdin]
// Env:   OIDC_PORT, OIDC_STATE_FILE, OIDC_CLIENTS (JSON array), OIDC_AUDIENCES ("*" or comma list),
//        OIDC_DEFAULT_AUDIENCE.
// Prints exactly one line `READY <issuer>` on stdout once listening. Exits on SIGTERM/SIGINT and
// when stdin closes (unless --ignore-stdin), so a crashed test run never leaves it behind.
//
// Token request extensions (form fields on POST /token, read only by this test server):
//   test_alg     RS256 (default) or ES256: which of the current signing keys signs the token.
//   test_groups  space-separated groups replacing the client's configured `groups` claim.
//   test_roles   space-separated roles replacing the client's configured realm_access.roles.
//   test_ttl     access token lifetime in seconds (default 300).
//   test_claims  JSON object merged over the final payload (null deletes a claim), e.g. {"iss":"x"}.
//   test_header  JSON object merged over the JWS protected header (e.g. {"typ":"JWT"}).
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import { parseArgs } from 'node:util';

const [major, minor] = process.versions.node.split('.').map(Number);
if (major < 20 || (major === 20 && minor < 19)) {
  process.stderr.write(`oidc-provider 9 needs Node.js >= 20.19; this is ${process.version}\n`);
  process.exit(2);
}

const { default: Provider } = await import('oidc-provider');

const { values: args } = parseArgs({
  options: {
    port: { type: 'string' },
    'state-file': { type: 'string' },
    'clients-file': { type: 'string' },
    'ignore-stdin': { type: 'boolean', default: false },
  },
});

const HOST = '127.0.0.1';
const SUPPORTED_ALGS = ['RS256', 'ES256'];
const port = Number(args.port ?? process.env.OIDC_PORT ?? 0);
const stateFile = args['state-file'] ?? process.env.OIDC_STATE_FILE;
const defaultAudience = process.env.OIDC_DEFAULT_AUDIENCE || 'https://authz.test';
const audiences = (process.env.OIDC_AUDIENCES || '*').split(',').map((s) => s.trim()).filter(Boolean);

const DEFAULT_CLIENTS = [
  { client_id: 'svc-client', client_secret: 'svc-secret', scope: 'read write', groups: ['airflow-users', 'data-eng'], roles: ['reader', 'writer'] },
  { client_id: 'admin-client', client_secret: 'admin-secret', scope: 'read write admin', groups: ['airflow-admins'], roles: ['admin'] },
  { client_id: 'reader-client', client_secret: 'reader-secret', scope: 'read', groups: ['viewers'], roles: ['viewer'] },
];

function loadClients() {
  let raw;
  if (args['clients-file']) raw = fs.readFileSync(args['clients-file'], 'utf8');
  else if (process.env.OIDC_CLIENTS) raw = process.env.OIDC_CLIENTS;
  if (!raw) return DEFAULT_CLIENTS;
  const parsed = JSON.parse(raw);
  if (!Array.isArray(parsed) || parsed.length === 0) throw new Error('clients must be a non-empty JSON array');
  return parsed;
}

const clients = loadClients();
const clientsById = new Map(clients.map((c) => [c.client_id, c]));
const allScopes = [...new Set(clients.flatMap((c) => (c.scope || '').split(' ').filter(Boolean)))];

// ---- signing keys -------------------------------------------------------------------------------

let keySerial = 0;

function generateKey(alg) {
  const { privateKey } = alg === 'ES256'
    ? crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' })
    : crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  keySerial += 1;
  const kid = `${alg.toLowerCase()}-${keySerial}-${crypto.randomBytes(4).toString('hex')}`;
  return { ...privateKey.export({ format: 'jwk' }), kid, alg, use: 'sig' };
}

// state: { keys: [private JWK...] newest first, current: { RS256: kid, ES256: kid } }
function loadOrCreateState() {
  if (stateFile && fs.existsSync(stateFile)) {
    const saved = JSON.parse(fs.readFileSync(stateFile, 'utf8'));
    keySerial = saved.keySerial ?? saved.keys.length;
    return { keys: saved.keys, current: saved.current };
  }
  const keys = SUPPORTED_ALGS.map(generateKey);
  return { keys, current: Object.fromEntries(keys.map((k) => [k.alg, k.kid])) };
}

function saveState() {
  if (!stateFile) return;
  const tmp = `${stateFile}.tmp`;
  fs.writeFileSync(tmp, JSON.stringify({ ...state, keySerial }), { mode: 0o600 });
  fs.renameSync(tmp, stateFile);
}

const state = loadOrCreateState();
saveState();

// ---- test-controlled faults and counters -----------------------------------------------------------

const faults = { jwksStatus: 0, discoveryStatus: 0, delayMs: 0 };
const counters = { jwks: 0, discovery: 0, token: 0 };

// ---- provider ------------------------------------------------------------------------------------

function bodyParam(ctx, name) {
  const value = ctx.oidc?.body?.[name];
  return typeof value === 'string' && value !== '' ? value : undefined;
}

function jsonParam(ctx, name) {
  const raw = bodyParam(ctx, name);
  if (!raw) return undefined;
  const parsed = JSON.parse(raw);
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new Error(`${name} must be a JSON object`);
  }
  return parsed;
}

function mergeOver(target, patch) {
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete target[k];
    else target[k] = v;
  }
  return target;
}

function buildProvider(issuer) {
  const configuration = {
    clients: clients.map((c) => ({
      client_id: c.client_id,
      client_secret: c.client_secret,
      grant_types: ['client_credentials'],
      response_types: [],
      redirect_uris: [],
      scope: c.scope,
      token_endpoint_auth_method: c.token_endpoint_auth_method || 'client_secret_basic',
    })),
    jwks: { keys: state.keys },
    scopes: ['openid', 'offline_access', ...allScopes],
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      introspection: { enabled: false },
      revocation: { enabled: false },
      resourceIndicators: {
        enabled: true,
        defaultResource: async () => defaultAudience,
        useGrantedResource: async () => true,
        getResourceServerInfo: async (ctx, resourceIndicator) => {
          if (!audiences.includes('*') && !audiences.includes(resourceIndicator)) {
            throw new Provider.errors.InvalidTarget(`unknown resource ${resourceIndicator}`);
          }
          const alg = bodyParam(ctx, 'test_alg') || 'RS256';
          if (!SUPPORTED_ALGS.includes(alg)) {
            throw new Provider.errors.InvalidRequest(`test_alg must be one of ${SUPPORTED_ALGS.join(', ')}`);
          }
          const ttl = Number(bodyParam(ctx, 'test_ttl') || 300);
          if (!Number.isInteger(ttl) || ttl < 1) {
            throw new Provider.errors.InvalidRequest('test_ttl must be a positive integer');
          }
          return {
            audience: resourceIndicator,
            scope: allScopes.join(' '),
            accessTokenFormat: 'jwt',
            accessTokenTTL: ttl,
            jwt: { sign: { alg, kid: state.current[alg] } },
          };
        },
      },
    },
    extraTokenClaims: async (ctx, token) => {
      const client = clientsById.get(token.clientId);
      if (!client) return undefined;
      const groups = bodyParam(ctx, 'test_groups')?.split(' ').filter(Boolean) ?? client.groups ?? [];
      const roles = bodyParam(ctx, 'test_roles')?.split(' ').filter(Boolean) ?? client.roles ?? [];
      return { groups, realm_access: { roles } };
    },
    formats: {
      customizers: {
        jwt: async (ctx, _token, jwt) => {
          const claims = jsonParam(ctx, 'test_claims');
          if (claims) mergeOver(jwt.payload, claims);
          const header = jsonParam(ctx, 'test_header');
          if (header) jwt.header = { ...(jwt.header || {}), ...header };
        },
      },
    },
    ttl: {
      ClientCredentials: (_ctx, token) => token.resourceServer?.accessTokenTTL || 300,
    },
    cookies: { keys: [crypto.randomBytes(32).toString('base64url')] },
    clientBasedCORS: () => false,
  };
  const provider = new Provider(issuer, configuration);
  provider.on('server_error', (_ctx, err) => process.stderr.write(`oidc server_error: ${err?.stack || err}\n`));
  return provider;
}

// ---- http server ---------------------------------------------------------------------------------

let handler; // current provider.callback(); replaced on key rotation
let issuer;

function sendJson(res, status, body) {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' });
  res.end(text);
}

function snapshot() {
  return {
    issuer,
    current: state.current,
    kids: state.keys.map((k) => k.kid),
    faults,
    counters,
  };
}

function rotate(url) {
  const keepOld = url.searchParams.get('keepOld') !== 'false';
  const algParam = url.searchParams.get('alg');
  const algs = algParam ? [algParam] : SUPPORTED_ALGS;
  for (const alg of algs) {
    if (!SUPPORTED_ALGS.includes(alg)) throw Object.assign(new Error(`alg must be one of ${SUPPORTED_ALGS}`), { status: 400 });
  }
  const fresh = algs.map(generateKey);
  let keys = [...fresh, ...state.keys];
  if (!keepOld) keys = keys.filter((k) => !algs.includes(k.alg) || fresh.includes(k));
  state.keys = keys;
  for (const k of fresh) state.current[k.alg] = k.kid;
  handler = buildProvider(issuer).callback();
  saveState();
}

function statusParam(url, fallback) {
  const status = Number(url.searchParams.get('status') ?? fallback);
  if (!Number.isInteger(status) || status < 100 || status > 599) throw Object.assign(new Error('bad status'), { status: 400 });
  return status;
}

function handleAdmin(req, res, url) {
  const route = `${req.method} ${url.pathname}`;
  switch (route) {
    case 'GET /__test/state':
      break;
    case 'POST /__test/rotate':
      rotate(url);
      break;
    case 'POST /__test/stop-jwks': {
      // JWKS (and, unless discovery=false, discovery) answer `status` (default 503)
      const status = statusParam(url, 503);
      faults.jwksStatus = status;
      faults.discoveryStatus = url.searchParams.get('discovery') === 'false' ? 0 : status;
      break;
    }
    case 'POST /__test/start-jwks':
      faults.jwksStatus = 0;
      faults.discoveryStatus = 0;
      break;
    case 'POST /__test/delay': {
      const ms = Number(url.searchParams.get('ms') ?? 0);
      if (!Number.isInteger(ms) || ms < 0) throw Object.assign(new Error('bad ms'), { status: 400 });
      faults.delayMs = ms;
      break;
    }
    case 'POST /__test/reset-counters':
      counters.jwks = 0;
      counters.discovery = 0;
      counters.token = 0;
      break;
    default:
      sendJson(res, 404, { error: 'not_found', route });
      return;
  }
  sendJson(res, 200, snapshot());
}

const server = http.createServer((req, res) => {
  const url = new URL(req.url, issuer || `http://${HOST}`);
  try {
    if (url.pathname.startsWith('/__test/')) {
      handleAdmin(req, res, url);
      return;
    }
    let faultStatus = 0;
    let delayed = false;
    if (url.pathname === '/jwks') {
      counters.jwks += 1;
      faultStatus = faults.jwksStatus;
      delayed = true;
    } else if (url.pathname === '/.well-known/openid-configuration') {
      counters.discovery += 1;
      faultStatus = faults.discoveryStatus;
      delayed = true;
    } else if (url.pathname === '/token') {
      counters.token += 1;
    }
    const respond = () => {
      if (faultStatus) {
        sendJson(res, faultStatus, { error: 'injected_fault', status: faultStatus });
      } else {
        handler(req, res);
      }
    };
    if (delayed && faults.delayMs > 0) setTimeout(respond, faults.delayMs);
    else respond();
  } catch (err) {
    sendJson(res, err.status || 500, { error: 'test_server_error', message: String(err.message || err) });
  }
});

function shutdown(code) {
  server.close();
  server.closeAllConnections?.();
  process.exit(code);
}

process.on('SIGTERM', () => shutdown(0));
process.on('SIGINT', () => shutdown(0));
if (!args['ignore-stdin']) {
  process.stdin.on('end', () => shutdown(0));
  process.stdin.on('close', () => shutdown(0));
  process.stdin.on('error', () => shutdown(0));
  process.stdin.resume();
}

server.on('error', (err) => {
  process.stderr.write(`listen failed: ${err.stack || err}\n`);
  process.exit(1);
});

server.listen(port, HOST, () => {
  issuer = `http://${HOST}:${server.address().port}`;
  handler = buildProvider(issuer).callback();
  process.stdout.write(`READY ${issuer}\n`);
});
