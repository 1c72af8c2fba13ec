import {
  csrfFor,
  csrfOk,
  html,
  PorticoError,
  type RequestContext,
  type Route,
  readForm,
  renderPage,
} from '../../src/index.ts';
import roles from '../roles/index.ts';
import { answer, grantedScopes, pendingFor, poll } from './flows.ts';
import { DEVICE_CODE_TTL_SECONDS, formatUserCode, startAuthorization } from './service.ts';

export const DEVICE_GRANT = 'urn:ietf:params:oauth:grant-type:device_code';

const oauthJson = (body: Record<string, unknown>, status = 200, headers: Record<string, string> = {}) =>
  Response.json(body, { status, headers: { 'cache-control': 'no-store', pragma: 'no-cache', ...headers } });
const oauthError = (error: string, description?: string, status = 400) =>
  oauthJson({ error, ...(description ? { error_description: description } : {}) }, status);

/** RFC 8414 metadata naming the two endpoints and every scope the gateway knows (`admin` included). */
function metadata(_request: Request, { runtime }: RequestContext) {
  const issuer = runtime.env.publicUrl;
  return oauthJson({
    issuer,
    device_authorization_endpoint: `${issuer}/oauth/device_authorization`,
    token_endpoint: `${issuer}/oauth/token`,
    grant_types_supported: [DEVICE_GRANT],
    // The catalogue the `scopes` query lists: a client asks from it (portico login: all but admin).
    scopes_supported: [...roles.api.scopeCatalogue(runtime).keys()],
    token_endpoint_auth_methods_supported: ['none'],
    response_types_supported: [],
  });
}

async function deviceAuthorization(request: Request, context: RequestContext) {
  const form = await readForm(request);
  const clientId = form?.get('client_id')?.trim();
  if (!form || !clientId || clientId.length > 200) {
    return oauthError('invalid_request', 'A form with client_id (at most 200 characters) is required.');
  }
  const scope = (form.get('scope') ?? '').trim().replace(/\s+/g, ' ');
  if (scope.length > 2000) return oauthError('invalid_scope', 'The scope is too long.');
  const { runtime, db } = context;
  const { deviceCode, userCode } = await startAuthorization(
    db.system,
    { clientId, scope, intervalSeconds: runtime.settings.device.intervalSeconds },
    new Date(runtime.clock.now()),
  );
  const verificationUri = `${runtime.env.publicUrl}/device`;
  return oauthJson({
    device_code: deviceCode,
    user_code: formatUserCode(userCode),
    verification_uri: verificationUri,
    verification_uri_complete: `${verificationUri}?user_code=${formatUserCode(userCode)}`,
    expires_in: DEVICE_CODE_TTL_SECONDS,
    interval: runtime.settings.device.intervalSeconds,
  });
}

async function token(request: Request, context: RequestContext) {
  const form = await readForm(request);
  if (!form) return oauthError('invalid_request', 'Send a form (application/x-www-form-urlencoded).');
  if (form.get('grant_type') !== DEVICE_GRANT) return oauthError('unsupported_grant_type');
  const deviceCode = form.get('device_code');
  const clientId = form.get('client_id');
  if (!deviceCode || !clientId)
    return oauthError('invalid_request', 'device_code and client_id are required.');
  try {
    const result = await poll(context, deviceCode, clientId);
    if (!result.ok) return oauthError(result.error);
    return oauthJson({ access_token: result.accessToken, token_type: 'Bearer', scope: result.scope });
  } catch (error) {
    if (error instanceof PorticoError && error.code === 'RATE_LIMITED') {
      const retryAfter = String(error.extensions.retryAfter ?? 60);
      return oauthJson({ error: 'invalid_request', error_description: error.message }, 429, {
        'retry-after': retryAfter,
      });
    }
    throw error;
  }
}

const page = (title: string, body: ReturnType<typeof html>, status = 200, setCookie?: string | null) =>
  renderPage({ title, body, status, headers: setCookie ? { 'set-cookie': setCookie } : undefined });

/** Where a signed-in person types (or confirms) a user code, sees the client, and decides. */
async function devicePage(request: Request, context: RequestContext) {
  if (!context.viewer.sessionId) {
    // Signing in brings the person back here, the code they followed kept.
    const { pathname, search } = new URL(request.url);
    return page(
      'Connect a device',
      html`<p>Sign in first, then come back to this page.</p><p><a href="/login?next=${encodeURIComponent(pathname + search)}">Sign in</a></p>`,
      401,
    );
  }
  const typed = new URL(request.url).searchParams.get('user_code');
  const entry = (error?: string) =>
    html`${error ? html`<p class="error" role="alert">${error}</p>` : ''}<form method="get" action="/device">
<label>Code shown on your device <input name="user_code" autocomplete="off" autocapitalize="characters" required placeholder="XXXX-XXXX" value="${typed ?? ''}"></label>
<button type="submit">Continue</button></form>`;
  if (!typed) return page('Connect a device', entry());
  let pending: Awaited<ReturnType<typeof pendingFor>>;
  try {
    pending = await pendingFor(context, typed);
  } catch (error) {
    if (!(error instanceof PorticoError)) throw error;
    return page('Connect a device', entry(error.message), 400);
  }
  const csrf = csrfFor(request);
  // What the key will hold: the person approves exactly that.
  const scopes = grantedScopes(context.runtime, pending.scope, context.viewer.scopes);
  return page(
    'Connect a device',
    html`<p><strong>${pending.clientId}</strong> asks to act as you${
      scopes.length > 0
        ? html` with the scopes <strong>${scopes.join(', ')}</strong>`
        : ' with no scopes (public data and your own account only)'
    }. It will get an API key of yours, listed with your keys and revocable there.</p>
<p>Code: <strong>${formatUserCode(pending.userCode)}</strong>. Approve only if your device shows the same code.</p>
<form method="post" action="/device">${csrf.field}<input type="hidden" name="user_code" value="${pending.userCode}">
<div class="actions"><button type="submit" name="decision" value="approve">Approve</button>
<button type="submit" name="decision" value="deny" class="danger">Deny</button></div></form>`,
    200,
    csrf.setCookie,
  );
}

async function deviceDecision(request: Request, context: RequestContext) {
  const form = await readForm(request);
  if (!form || !csrfOk(request, form, context.runtime.env.publicUrl)) {
    return page(
      'Refused',
      html`<p class="error">This form expired. <a href="/device">Start again</a>.</p>`,
      403,
    );
  }
  const approve = form.get('decision') === 'approve';
  try {
    await answer(context, form.get('user_code') ?? '', approve);
  } catch (error) {
    if (!(error instanceof PorticoError)) throw error;
    return page(
      'Connect a device',
      html`<p class="error" role="alert">${error.message}</p><p><a href="/device">Start again</a></p>`,
      400,
    );
  }
  return page(
    approve ? 'Device connected' : 'Device refused',
    html`<p role="status">${approve ? 'Your device is signed in. You can close this window.' : 'The device was refused.'}</p>`,
  );
}

export const deviceRoutes: Route[] = [
  { method: 'GET', path: '/.well-known/oauth-authorization-server', handler: metadata },
  { method: 'POST', path: '/oauth/device_authorization', handler: deviceAuthorization },
  { method: 'POST', path: '/oauth/token', handler: token },
  { method: 'GET', path: '/device', handler: devicePage },
  { method: 'POST', path: '/device', handler: deviceDecision },
];
