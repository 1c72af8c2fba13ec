import {
  type Builder,
  fromGlobalId,
  PorticoError,
  type RequestContext,
  builder as schemaBuilder,
} from '../../src/index.ts';
import audit from '../audit/index.ts';
import roles from '../roles/index.ts';
import sessions from '../sessions/index.ts';
import { canRevokeKey, canSeeKey } from './access.ts';
import type { ApiKeys } from './instance.ts';
import {
  type ApiKeyRecord,
  countActiveKeys,
  createApiKey,
  findApiKey,
  KEY_NAME_MAX,
  listActiveKeys,
  loadApiKeys,
  MAX_ACTIVE_KEYS,
  prefixOf,
} from './service.ts';

export const ApiKeyRef = schemaBuilder.objectRef<ApiKeyRecord>('ApiKey');

async function create(
  context: RequestContext,
  name: string,
  scopes: readonly string[],
  expiresAt: Date | null,
) {
  const { viewer, db } = context;
  const trimmed = name.trim();
  if (!trimmed || [...trimmed].length > KEY_NAME_MAX) {
    throw new PorticoError('BAD_USER_INPUT', `A key name has 1 to ${KEY_NAME_MAX} characters.`, {
      field: 'name',
    });
  }
  const now = new Date(context.runtime.clock.now());
  if (expiresAt && expiresAt <= now) {
    throw new PorticoError('BAD_USER_INPUT', 'expiresAt must be in the future.', { field: 'expiresAt' });
  }
  const beyond = scopes.filter((scope) => !roles.api.mayGrant(context.runtime, viewer.scopes, scope));
  if (beyond.length > 0) {
    throw new PorticoError('FORBIDDEN', `A key cannot have scopes you do not have: ${beyond.join(', ')}.`, {
      field: 'scopes',
    });
  }
  if ((await countActiveKeys(db.system, viewer.userId!, now)) >= MAX_ACTIVE_KEYS) {
    throw new PorticoError('BAD_USER_INPUT', `At most ${MAX_ACTIVE_KEYS} active keys; revoke one first.`);
  }
  const { key, secret } = await createApiKey(db.system, {
    userId: viewer.userId!,
    name: trimmed,
    scopes,
    expiresAt,
  });
  await audit.api.record(context, {
    kind: 'API_KEY_CREATED',
    userId: key.userId,
    detail: { apiKey: key.id, name: key.name, scopes: key.scopes },
  });
  return { apiKey: key, secret };
}

async function revoke(apiKeys: ApiKeys, context: RequestContext, id: string) {
  const key = await findApiKey(context.db.system, id);
  if (!key || !canSeeKey(context.viewer, key)) throw new PorticoError('NOT_FOUND', 'No such API key.');
  if (!canRevokeKey(context.viewer, key)) {
    throw new PorticoError('FORBIDDEN', 'An API key revokes other keys only with scope admin.');
  }
  const reason = key.userId === context.viewer.userId ? 'REVOKED' : 'ADMIN';
  const revoked = (await apiKeys.revokeKeys(context.db.system, { id: key.id }, reason)).length > 0;
  if (revoked) {
    await audit.api.record(context, {
      kind: 'API_KEY_REVOKED',
      userId: key.userId,
      detail: { apiKey: key.id, reason },
    });
  }
  return revoked;
}

export function registerApiKeys(builder: Builder, self: (context: RequestContext) => ApiKeys) {
  builder.node(ApiKeyRef, {
    id: { resolve: (key) => key.id },
    loadMany: async (ids, { db, viewer }) =>
      (await loadApiKeys(db.system, ids)).map((key) => (key && canSeeKey(viewer, key) ? key : null)),
    authScopes: (key, { viewer }) => canSeeKey(viewer, key),
    fields: (t) => ({
      name: t.exposeString('name'),
      prefix: t.string({
        description: 'The first characters of the key, for recognising it; never the whole key.',
        resolve: prefixOf,
      }),
      scopes: t.stringList({ resolve: (key) => [...key.scopes] }),
      createdAt: t.expose('createdAt', { type: 'DateTime' }),
      lastUsedAt: t.field({ type: 'DateTime', nullable: true, resolve: (key) => key.lastUsedAt ?? null }),
      expiresAt: t.field({ type: 'DateTime', nullable: true, resolve: (key) => key.expiresAt ?? null }),
    }),
  });

  const ApiKeyTicketRef = builder
    .objectRef<{ apiKey: ApiKeyRecord; secret: string }>('ApiKeyTicket')
    .implement({
      fields: (t) => ({
        apiKey: t.field({ type: ApiKeyRef, resolve: (ticket) => ticket.apiKey }),
        secret: t.exposeString('secret', {
          description: 'The whole key. It is shown once and never stored in plain text.',
        }),
      }),
    });

  builder.objectFields(sessions.api.ViewerRef, (t) => ({
    apiKey: t.field({
      type: ApiKeyRef,
      nullable: true,
      description: 'The API key that authenticated this request, if any.',
      resolve: (viewer, _args, context) => self(context).currentKey(viewer)?.key ?? null,
    }),
    apiKeys: t.field({
      type: [ApiKeyRef],
      description: "The user's API keys that are not revoked.",
      resolve: (viewer, _args, { db }) => (viewer.userId ? listActiveKeys(db.system, viewer.userId) : []),
    }),
  }));

  builder.mutationFields((t) => ({
    createApiKey: t.field({
      type: ApiKeyTicketRef,
      description:
        "Scopes must be a subset of the viewer's scopes (those of their roles, and those every signed-in user has: see `scopes`). An API key needs scope admin.",
      authScopes: { manageCredentials: true },
      args: {
        name: t.arg.string({ required: true }),
        scopes: t.arg.stringList({ required: true }),
        expiresAt: t.arg({ type: 'DateTime' }),
      },
      resolve: (_root, args, context) => create(context, args.name, args.scopes, args.expiresAt ?? null),
    }),
    revokeApiKey: t.boolean({
      description: 'An API key may revoke itself; other keys only with scope admin.',
      authScopes: { authenticated: true },
      args: { id: t.arg.id({ required: true }) },
      resolve: (_root, { id }, context) => revoke(self(context), context, fromGlobalId(String(id), 'ApiKey')),
    }),
  }));
}
