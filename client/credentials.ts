import { randomBytes } from 'node:crypto';
import { chmod, mkdir, open, readFile, rename, rm } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, isAbsolute, join } from 'node:path';

/** What `portico login` keeps per gateway. */
export interface SavedCredential {
  apiKey: string;
  /**
   * The scopes asked for (`--scope`), asked again when the key is refused and the login re-runs;
   * absent when the login asked for the default (every scope the gateway offers but `admin`).
   */
  requestedScope?: string;
  /** The scopes the approving user could grant. */
  grantedScope: string;
  savedAt: string;
}

interface CredentialsFile {
  /** Keyed by the gateway's origin, e.g. `https://portico.example.com`. */
  gateways: Record<string, SavedCredential>;
}

/** `$XDG_CONFIG_HOME/portico/credentials.json`, else `~/.config/portico/credentials.json`. */
export function credentialsPath(env: Record<string, string | undefined> = process.env): string {
  // The XDG spec says to ignore a relative XDG_CONFIG_HOME.
  const configHome = env.XDG_CONFIG_HOME && isAbsolute(env.XDG_CONFIG_HOME) ? env.XDG_CONFIG_HOME : null;
  return join(configHome ?? join(homedir(), '.config'), 'portico', 'credentials.json');
}

const originOf = (url: string) => new URL(url).origin;

async function readCredentials(path: string): Promise<CredentialsFile> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return { gateways: {} };
    throw error;
  }
  const parsed = JSON.parse(text) as Partial<CredentialsFile>;
  return { gateways: parsed.gateways ?? {} };
}

/**
 * Replaces the file in one rename, so a reader never sees half of it; the folder is 0700
 * and the file 0600 because the keys act as their user.
 */
async function writeCredentials(path: string, credentials: CredentialsFile): Promise<void> {
  const folder = dirname(path);
  await mkdir(folder, { recursive: true, mode: 0o700 });
  await chmod(folder, 0o700);
  const staging = `${path}.${randomBytes(6).toString('hex')}.tmp`;
  try {
    const file = await open(staging, 'wx', 0o600);
    try {
      await file.writeFile(`${JSON.stringify(credentials, null, 2)}\n`);
      await file.sync();
    } finally {
      await file.close();
    }
    await rename(staging, path);
  } catch (error) {
    await rm(staging, { force: true });
    throw error;
  }
}

export async function readSavedCredential(
  url: string,
  path = credentialsPath(),
): Promise<SavedCredential | undefined> {
  return (await readCredentials(path)).gateways[originOf(url)];
}

export async function saveCredential(
  url: string,
  credential: Omit<SavedCredential, 'savedAt'>,
  path = credentialsPath(),
): Promise<void> {
  const credentials = await readCredentials(path);
  credentials.gateways[originOf(url)] = { ...credential, savedAt: new Date().toISOString() };
  await writeCredentials(path, credentials);
}

/** Removes the gateway's key; false when none was saved. */
export async function forgetCredential(url: string, path = credentialsPath()): Promise<boolean> {
  const credentials = await readCredentials(path);
  const origin = originOf(url);
  if (!credentials.gateways[origin]) return false;
  delete credentials.gateways[origin];
  await writeCredentials(path, credentials);
  return true;
}
