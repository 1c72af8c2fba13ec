import { parseArgs } from 'node:util';
import { credentialsPath, forgetCredential, readSavedCredential, saveCredential } from './credentials.ts';
import { runDeviceFlow } from './device-flow.ts';
import {
  ApiKeysDocument,
  createClient,
  PorticoClientError,
  RevokeApiKeyDocument,
  ViewerDocument,
} from './index.ts';

/** `portico login` and `portico logout`: they talk to a running gateway and need no configuration. */
const CLIENT_COMMANDS: Record<string, string> = {
  login:
    'Sign this machine in to a gateway (device flow) and save the key: login <url> [--scope "a b"] (default: every scope the gateway offers but admin; you get those you hold).',
  logout: 'Revoke and forget the key saved for a gateway: logout <url>.',
};

/** Exit codes besides 0, so that scripts can tell the failures apart. */
export const EXIT = { failed: 1, usage: 2, denied: 3, expired: 4 } as const;

export interface ClientCliOptions {
  env?: Record<string, string | undefined>;
  fetch?: typeof fetch;
  out?: (text: string) => void;
  err?: (text: string) => void;
}

export async function runClientCli(argv: string[], options: ClientCliOptions = {}): Promise<number> {
  const out = options.out ?? ((text) => process.stdout.write(`${text}\n`));
  const err = options.err ?? ((text) => process.stderr.write(`${text}\n`));
  const fetcher = options.fetch ?? fetch;
  const path = credentialsPath(options.env);
  let parsed: ReturnType<typeof parseCommand>;
  try {
    parsed = parseCommand(argv);
  } catch (error) {
    err(`${(error as Error).message}\n\n${usage(path)}`);
    return EXIT.usage;
  }
  if (parsed.help) {
    out(usage(path));
    return 0;
  }
  const { command, url, scope } = parsed;

  try {
    if (command === 'logout') {
      const saved = await readSavedCredential(url.href, path);
      if (!saved) {
        out(`No key is saved for ${url.origin}.`);
        return 0;
      }
      const revoked = await revokeOnGateway(url, saved.apiKey, fetcher);
      await forgetCredential(url.href, path);
      out(
        revoked
          ? `Signed out of ${url.origin}: the key is revoked and forgotten.`
          : `Forgot the key for ${url.origin}; the gateway did not confirm its revocation (revoke it under your API keys).`,
      );
      return 0;
    }

    const grant = await runDeviceFlow(url.href, {
      fetch: fetcher,
      scope,
      onDeviceCode: ({ userCode, verificationUriComplete }) =>
        out(
          `Open ${verificationUriComplete} in a browser where you are signed in,\nand check that it shows the code ${userCode}.\nWaiting for approval…`,
        ),
    });
    await saveCredential(
      url.href,
      { apiKey: grant.accessToken, requestedScope: scope, grantedScope: grant.scope },
      path,
    );
    const { viewer } = await createClient({ url: url.href, apiKey: grant.accessToken, fetch: fetcher }).query(
      ViewerDocument,
    );
    out(`Signed in to ${url.origin} as ${viewer.user?.email}; the key is saved in ${path}.`);
    if (scope === undefined) out('No --scope given: asked for every scope the gateway offers but admin.');
    out(
      grant.scope
        ? `Scopes: ${grant.scope}.`
        : 'The key has no scopes: it reaches public data and your own account only.',
    );
    return 0;
  } catch (error) {
    if (!(error instanceof PorticoClientError)) throw error;
    if (error.code === 'DEVICE_ACCESS_DENIED') {
      err('The sign-in was denied in the browser. Nothing was saved.');
      return EXIT.denied;
    }
    if (error.code === 'DEVICE_CODE_EXPIRED') {
      err(`The code expired before it was approved. Run portico login ${url.origin} again.`);
      return EXIT.expired;
    }
    err(`portico ${command} failed: ${error.message} (${error.code})`);
    return EXIT.failed;
  }
}

function parseCommand(argv: string[]) {
  const { positionals, values } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: { scope: { type: 'string' }, help: { type: 'boolean', short: 'h' } },
  });
  const [command, address, ...extra] = positionals;
  if (values.help) return { help: true } as const;
  if ((command !== 'login' && command !== 'logout') || !address || extra.length > 0) {
    throw new Error('Name one gateway URL.');
  }
  const url = URL.canParse(address) ? new URL(address) : null;
  if (!url || (url.protocol !== 'http:' && url.protocol !== 'https:')) {
    throw new Error(`"${address}" is not an http(s) URL.`);
  }
  // Without --scope the device flow asks for its default; `--scope ""` asks for nothing.
  return { help: false, command, url, scope: values.scope?.trim() } as const;
}

/** Best effort: the key revokes itself, so that forgetting it here also ends it there. */
async function revokeOnGateway(url: URL, apiKey: string, fetcher: typeof fetch): Promise<boolean> {
  const client = createClient({ url: url.href, apiKey, fetch: fetcher });
  try {
    const { viewer } = await client.query(ApiKeysDocument);
    if (!viewer.apiKey) return false;
    return (await client.mutate(RevokeApiKeyDocument, { id: viewer.apiKey.id })).revokeApiKey;
  } catch (error) {
    if (error instanceof PorticoClientError) return false;
    throw error;
  }
}

function usage(path: string): string {
  return [
    'Usage: portico login <url> [--scope "<scope> <scope>"]',
    '       portico logout <url>',
    '',
    ...Object.entries(CLIENT_COMMANDS).map(([name, description]) => `  ${name.padEnd(6)}  ${description}`),
    '',
    `Keys are saved in ${path} (mode 0600), one per gateway origin.`,
    'Exit codes: 1 failed, 2 usage, 3 denied in the browser, 4 code expired.',
  ].join('\n');
}
