import { PorticoError, type RequestContext, type Runtime } from '../../src/index.ts';
import apiKeys from '../api-keys/index.ts';
import audit from '../audit/index.ts';
import rateLimits from '../rate-limits/index.ts';
import roles from '../roles/index.ts';
import users from '../users/index.ts';
import type { DeviceAuthorization } from './entities.ts';
import {
  decide,
  findByDeviceCode,
  findPending,
  markUsed,
  normalizeUserCode,
  recordPoll,
  SLOW_DOWN_SECONDS,
} from './service.ts';

const invalidCode = () => new PorticoError('INVALID_TOKEN', 'This code is invalid or expired.');

/**
 * The pending authorization a signed-in person's code names. Only a browser session
 * may answer (never an API key: a device cannot approve another), and wrong codes are
 * counted against the person (5, then a growing delay).
 */
export async function pendingFor(context: RequestContext, input: string): Promise<DeviceAuthorization> {
  const { viewer, db } = context;
  if (!viewer.userId || !viewer.sessionId) {
    throw new PorticoError('FORBIDDEN', 'Approve devices from a signed-in browser session.');
  }
  return rateLimits.api.userCode(context, viewer.userId, async () => {
    const code = normalizeUserCode(input);
    const pending = code ? await findPending(db.system, code, new Date(context.runtime.clock.now())) : null;
    if (!pending) throw invalidCode();
    return pending;
  });
}

/** Approves or denies for the viewer: the key the device then gets is the viewer's own. */
export async function answer(context: RequestContext, userCode: string, approve: boolean): Promise<boolean> {
  const pending = await pendingFor(context, userCode);
  const { viewer, db, runtime } = context;
  const state = approve ? 'approved' : 'denied';
  const decision = { state, userId: viewer.userId!, sessionId: viewer.sessionId! } as const;
  if (!(await decide(db.system, pending.id, decision, new Date(runtime.clock.now())))) {
    throw invalidCode();
  }
  await audit.api.record(context, {
    kind: approve ? 'DEVICE_APPROVED' : 'DEVICE_DENIED',
    userId: viewer.userId,
    detail: { clientId: pending.clientId, scope: pending.scope },
  });
  return true;
}

/**
 * The scopes the key of an approved device gets: those asked for that the user may give a key
 * (RFC 8628 tokens are API keys). Asking for none gets none: public data and its own viewer.
 */
export function grantedScopes(runtime: Runtime, asked: string, userScopes: ReadonlySet<string>): string[] {
  return [...new Set(asked.split(' ').filter(Boolean))].filter((scope) =>
    roles.api.mayGrant(runtime, userScopes, scope),
  );
}

export type TokenAnswer =
  | { ok: true; accessToken: string; scope: string }
  | {
      ok: false;
      error: 'authorization_pending' | 'slow_down' | 'access_denied' | 'expired_token' | 'invalid_grant';
    };

/**
 * One poll of `/oauth/token` (RFC 8628 §3.4–3.5). Only an unknown device code counts as a
 * failure against the IP: a real one (another client's, used, or lost to a concurrent poll)
 * is no guess.
 */
export async function poll(
  context: RequestContext,
  deviceCode: string,
  clientId: string,
): Promise<TokenAnswer> {
  const { db, runtime } = context;
  return rateLimits.api
    .redeem(context, async (): Promise<TokenAnswer> => {
      const row = await findByDeviceCode(db.system, deviceCode);
      if (!row) throw invalidCode();
      if (row.clientId !== clientId || row.state === 'used') throw rateLimits.api.notAGuess(invalidCode());
      const now = new Date(runtime.clock.now());
      if (row.expiresAt <= now) return { ok: false, error: 'expired_token' };
      if (row.state === 'denied') return { ok: false, error: 'access_denied' };
      if (row.state === 'pending') {
        const early =
          row.lastPolledAt && now.getTime() - row.lastPolledAt.getTime() < row.intervalSeconds * 1000;
        const interval = early ? row.intervalSeconds + SLOW_DOWN_SECONDS : row.intervalSeconds;
        await recordPoll(db.system, row.id, now, interval);
        return { ok: false, error: early ? 'slow_down' : 'authorization_pending' };
      }
      const user = row.userId ? await users.api.findUser(db.system, row.userId) : null;
      if (!user || user.disabled) return { ok: false, error: 'access_denied' };
      if (!(await markUsed(db.system, row.id))) throw rateLimits.api.notAGuess(invalidCode());
      const granted = grantedScopes(runtime, row.scope, roles.api.scopesOf(runtime.settings, user.roles));
      const { secret } = await apiKeys.api.createApiKey(db.system, {
        userId: user.id,
        name: row.clientId.slice(0, 100),
        scopes: granted,
        expiresAt: null,
      });
      return { ok: true, accessToken: secret, scope: granted.join(' ') };
    })
    .catch((error: unknown) => {
      if (error instanceof PorticoError && error.code === 'INVALID_TOKEN')
        return { ok: false, error: 'invalid_grant' };
      throw error;
    });
}
