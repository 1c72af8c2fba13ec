import { setTimeout as sleep } from 'node:timers/promises';
import { networkError, PorticoClientError, parseJson, responseError } from './errors.ts';

export interface DeviceCodePrompt {
  userCode: string;
  verificationUri: string;
  /** The verification URI with the code filled in. */
  verificationUriComplete: string;
}

export interface DeviceFlowOptions {
  fetch: typeof fetch;
  /** Shows the person the code and where to confirm it. */
  onDeviceCode: (prompt: DeviceCodePrompt) => void;
  /**
   * Space-separated scopes to ask for; the key gets those the approving user has (none when
   * none are asked). Undefined: every scope of the gateway's `scopes_supported` but `admin`,
   * so the key gets the user's scopes without the power to manage credentials.
   */
  scope?: string;
  clientId?: string;
  signal?: AbortSignal;
}

export interface DeviceGrant {
  accessToken: string;
  scope: string;
}

const DEVICE_GRANT = 'urn:ietf:params:oauth:grant-type:device_code';
/** The scope that manages credentials: a login asks for it only by name. */
const ADMIN_SCOPE = 'admin';
/** RFC 8628 §3.5: each `slow_down` adds five seconds to the polling interval. */
const SLOW_DOWN_SECONDS = 5;

interface OAuthAnswer {
  status: number;
  body: Record<string, unknown>;
}

async function call(fetcher: typeof fetch, url: string, init: RequestInit): Promise<OAuthAnswer> {
  let response: Response;
  try {
    response = await fetcher(url, { ...init, headers: { accept: 'application/json', ...init.headers } });
  } catch (error) {
    if (init.signal?.aborted) throw init.signal.reason;
    throw networkError(error);
  }
  const body = parseJson(await response.text());
  return { status: response.status, body: typeof body === 'object' && body !== null ? (body as never) : {} };
}

const postForm = (fetcher: typeof fetch, url: string, fields: Record<string, string>, signal?: AbortSignal) =>
  call(fetcher, url, { method: 'POST', body: new URLSearchParams(fields), signal });

/** An OAuth error answer (`{ error, error_description }`) as the client's error. */
function oauthError({ status, body }: OAuthAnswer): PorticoClientError {
  const description = body.error_description ?? body.error;
  return responseError(status, typeof description === 'string' ? { error: description } : null);
}

function stringField(answer: OAuthAnswer, name: string): string {
  const value = answer.body[name];
  if (typeof value !== 'string' || value === '') {
    throw new PorticoClientError(
      'INTERNAL_SERVER_ERROR',
      [{ message: `The gateway's answer has no ${name}.` }],
      {
        status: answer.status,
      },
    );
  }
  return value;
}

/** Every scope the gateway's metadata lists (RFC 8414 `scopes_supported`) but `admin`. */
function defaultScope(metadata: OAuthAnswer): string {
  const supported = metadata.body.scopes_supported;
  if (!Array.isArray(supported)) return '';
  return supported.filter((name) => typeof name === 'string' && name !== ADMIN_SCOPE).join(' ');
}

/**
 * The OAuth 2.0 device authorization grant (RFC 8628) against a gateway: finds the endpoints
 * in its metadata (RFC 8414), asks for a code, shows it, and polls until the person approves
 * (an API key of theirs), denies, or lets the code expire.
 */
export async function runDeviceFlow(url: string, options: DeviceFlowOptions): Promise<DeviceGrant> {
  const { fetch: fetcher, signal } = options;
  const clientId = options.clientId ?? 'portico-cli';
  const metadata = await call(fetcher, new URL('/.well-known/oauth-authorization-server', url).href, {
    signal,
  });
  if (metadata.status !== 200) throw oauthError(metadata);

  const scope = options.scope ?? defaultScope(metadata);
  const started = await postForm(
    fetcher,
    stringField(metadata, 'device_authorization_endpoint'),
    { client_id: clientId, ...(scope ? { scope } : {}) },
    signal,
  );
  if (started.status !== 200) throw oauthError(started);
  const deviceCode = stringField(started, 'device_code');
  const verificationUri = stringField(started, 'verification_uri');
  options.onDeviceCode({
    userCode: stringField(started, 'user_code'),
    verificationUri,
    verificationUriComplete:
      typeof started.body.verification_uri_complete === 'string'
        ? started.body.verification_uri_complete
        : verificationUri,
  });

  const tokenEndpoint = stringField(metadata, 'token_endpoint');
  const expiresAt = Date.now() + Number(started.body.expires_in ?? 600) * 1000;
  let intervalSeconds = Number(started.body.interval ?? 5);
  for (;;) {
    await sleep(intervalSeconds * 1000, undefined, { signal });
    const answer = await postForm(
      fetcher,
      tokenEndpoint,
      { grant_type: DEVICE_GRANT, device_code: deviceCode, client_id: clientId },
      signal,
    );
    if (answer.status === 200) {
      return { accessToken: stringField(answer, 'access_token'), scope: String(answer.body.scope ?? '') };
    }
    const error = answer.body.error;
    if (error === 'authorization_pending' && Date.now() < expiresAt) continue;
    if (error === 'slow_down') {
      intervalSeconds += SLOW_DOWN_SECONDS;
      continue;
    }
    if (error === 'access_denied') {
      throw new PorticoClientError('DEVICE_ACCESS_DENIED', [{ message: 'The sign-in was denied.' }], {
        status: answer.status,
      });
    }
    // Still pending past the code's lifetime: expired, whatever the gateway's clock says.
    if (error === 'expired_token' || error === 'authorization_pending') {
      throw new PorticoClientError(
        'DEVICE_CODE_EXPIRED',
        [{ message: 'The code expired before anyone approved it.' }],
        { status: answer.status },
      );
    }
    throw oauthError(answer);
  }
}

/** The default prompt of a client whose saved key was refused: on stderr, out of the program's output. */
export function printDeviceCode({ userCode, verificationUriComplete }: DeviceCodePrompt): void {
  process.stderr.write(
    `Portico: the saved key was refused. To sign in again, open ${verificationUriComplete} and check that it shows the code ${userCode}.\n`,
  );
}
