import { credentialsPath, readSavedCredential, saveCredential } from '../../../client/credentials.ts';
import { runDeviceFlow } from '../../../client/device-flow.ts';
import { StartupError } from '../../config.ts';
import type { Logger } from '../../logger.ts';
import { STORE_SERVE_SCOPE } from './protocol.ts';

/** Where the key a gateway presents to its data server came from. */
export type KeySource = 'PORTICO_REMOTE_API_KEY' | 'saved login' | 'device flow';

export interface RemoteKey {
  readonly key: string;
  readonly source: KeySource;
}

export interface KeyOptions {
  /** The data server, as `http(s)://host[:port][/base]`. */
  server: string;
  /** `PORTICO_REMOTE_API_KEY`. */
  apiKey: string | undefined;
  /** `PORTICO_REMOTE_AUTH_URL`: where the device flow runs, when not on the data server. */
  authUrl: string | undefined;
  /** Whether a person can answer the device flow: standard input and error are a terminal. */
  interactive: boolean;
  /** False for a switch, which never runs the device flow: the refusal then does not suggest it. */
  deviceFlowAtStart?: boolean;
  /** Where `portico login` keeps its keys. */
  credentialsFile?: string;
  log: Logger;
  /** Ends a device flow still waiting (the gateway stops). */
  signal?: AbortSignal;
}

/**
 * The key for the data server, in the contract's order (HTTP.md, Store backends): the environment,
 * then the key `portico login <data server>` saved, then, on a terminal, the device flow (the code
 * printed on standard error, the key saved as `portico login` would). `refused` is a key the data
 * server turned down: a source that still gives that same key is passed over.
 */
export async function obtainKey(options: KeyOptions, refused?: string): Promise<RemoteKey> {
  const { server, apiKey, log } = options;
  if (apiKey && apiKey !== refused) return { key: apiKey, source: 'PORTICO_REMOTE_API_KEY' };
  const file = options.credentialsFile ?? credentialsPath();
  const saved = await readSavedCredential(server, file).catch((error: unknown) => {
    log.warn({ err: error, file }, 'the saved keys could not be read');
    return undefined;
  });
  if (saved && saved.apiKey !== refused) return { key: saved.apiKey, source: 'saved login' };
  if (!options.interactive) {
    throw new StartupError(
      `The store at ${server} needs an API key with the scope ${STORE_SERVE_SCOPE}${refused ? ' (the data server refused the one given)' : ''}. ` +
        `Set PORTICO_REMOTE_API_KEY, or run \`portico login ${server}\` once on this machine` +
        (options.deviceFlowAtStart === false
          ? '.'
          : ', or start the gateway on a terminal to sign in with the device flow.'),
    );
  }
  const authority = options.authUrl ?? server;
  const grant = await runDeviceFlow(authority, {
    fetch,
    scope: STORE_SERVE_SCOPE,
    signal: options.signal,
    onDeviceCode: ({ userCode, verificationUriComplete }) =>
      process.stderr.write(
        `Portico: this gateway's store is at ${server}. To let it in, open ${verificationUriComplete}\n` +
          `as a user who holds the scope ${STORE_SERVE_SCOPE} and check that it shows the code ${userCode}.\n`,
      ),
  });
  if (!grant.scope.split(' ').includes(STORE_SERVE_SCOPE)) {
    throw new StartupError(
      `The user who approved the sign-in at ${authority} does not hold the scope ${STORE_SERVE_SCOPE}; an admin can grant it.`,
    );
  }
  await saveCredential(
    server,
    { apiKey: grant.accessToken, requestedScope: STORE_SERVE_SCOPE, grantedScope: grant.scope },
    file,
  );
  log.info({ server }, 'signed in to the data server with the device flow; the key is saved');
  return { key: grant.accessToken, source: 'device flow' };
}
