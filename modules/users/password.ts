import { hash, verify } from '@node-rs/argon2';
import { dictionary } from '@zxcvbn-ts/language-common';
import { PorticoError } from '../../src/index.ts';

export const PASSWORD_MIN = 8;
export const PASSWORD_MAX = 256;

// OWASP's Argon2id minimum: 19 MiB, 2 iterations, 1 lane.
// `algorithm: 2` is Argon2id (the package's Algorithm enum is a const enum, not importable here).
const ARGON2 = { algorithm: 2, memoryCost: 19_456, timeCost: 2, parallelism: 1 } as const;

let common: Set<string> | undefined;
const isCommon = (password: string) => {
  common ??= new Set(dictionary['passwords-common'] as string[]);
  return common.has(password.toLowerCase());
};

/** Throws BAD_USER_INPUT unless the password is 8..256 characters and not a well-known one. */
export function checkPasswordPolicy(password: string): void {
  const length = [...password].length;
  if (length < PASSWORD_MIN || length > PASSWORD_MAX) {
    throw new PorticoError(
      'BAD_USER_INPUT',
      `A password has ${PASSWORD_MIN} to ${PASSWORD_MAX} characters.`,
      {
        field: 'password',
      },
    );
  }
  if (isCommon(password)) {
    throw new PorticoError('BAD_USER_INPUT', 'This password is too common; choose another.', {
      field: 'password',
    });
  }
}

export const hashPassword = (password: string) => hash(password, ARGON2);

// A real hash of a random password: verifying against it costs what a real check costs.
let dummyHash: Promise<string> | undefined;

/**
 * Checks a password against a stored hash. With no hash (unknown account, or one
 * without a password) it still spends the time of a real check, so timing does not
 * tell whether an account exists.
 */
export async function verifyPassword(
  storedHash: string | null | undefined,
  password: string,
): Promise<boolean> {
  if (!storedHash) {
    dummyHash ??= hash(crypto.randomUUID(), ARGON2);
    await verify(await dummyHash, password).catch(() => false);
    return false;
  }
  return verify(storedHash, password).catch(() => false);
}
