import {
  type Builder,
  type Fence,
  type LeaseRecord,
  PorticoError,
  paginate,
  type RequestContext,
  builder as schemaBuilder,
} from '../../src/index.ts';
import apiKeys from '../api-keys/index.ts';
import roles from '../roles/index.ts';
import sessions from '../sessions/index.ts';
import users from '../users/index.ts';
import {
  credentialOf,
  credentialsOf,
  type HolderKind,
  holderOf,
  LEASES_SCOPE,
  opaqueHolder,
} from './access.ts';
import type { Leases } from './instance.ts';
import { checkRequest, release, renew } from './service.ts';

/** `fence` of the writes that take one (documents, blobs); the store checks it within the write. */
export const FenceInput = schemaBuilder.inputRef<Fence>('FenceInput').implement({
  description:
    'Makes a write conditional on holding a lease: it is rejected (FENCE_REJECTED) when a newer token has been granted for that lease.',
  fields: (t) => ({
    lease: t.string({ required: true }),
    token: t.field({ type: 'SafeInt', required: true }),
  }),
});

/** The viewer's holder; a lease needs a credential to hold it. */
function requireHolder(context: RequestContext) {
  const holder = holderOf(context.viewer);
  if (!holder) throw new PorticoError('UNAUTHENTICATED', 'Sign in or use an API key to hold leases.');
  return holder;
}

/**
 * The users behind holders (sessions and API keys), null for server holders and credentials no
 * longer on record: one query per credential kind and one for the users, however many leases.
 */
async function loadHolderUsers({ db }: RequestContext, holders: readonly string[]) {
  const { sessionIds, apiKeyIds } = credentialsOf(holders);
  const [sessionRecords, keyRecords] = await Promise.all([
    sessions.api.loadSessions(db.system, sessionIds),
    apiKeys.api.loadApiKeys(db.system, apiKeyIds),
  ]);
  const userOf = new Map<string, string>();
  for (const session of sessionRecords) if (session) userOf.set(`SESSION:${session.id}`, session.userId);
  for (const key of keyRecords) if (key) userOf.set(`API_KEY:${key.id}`, key.userId);
  const userIds = holders.map((holder) => {
    const { kind, id } = credentialOf(holder);
    return userOf.get(`${kind}:${id}`) ?? null;
  });
  const found = await users.api.loadUsers(db.system, [
    ...new Set(userIds.filter((id): id is string => id !== null)),
  ]);
  const byId = new Map(found.flatMap((user) => (user ? [[user.id, user] as const] : [])));
  return userIds.map((id) => (id === null ? null : (byId.get(id) ?? null)));
}

export function registerLeases(builder: Builder, self: (context: RequestContext) => Leases) {
  const LeaseHolderKind = builder.enumType('LeaseHolderKind', {
    description: 'What kind of credential holds a lease.',
    values: {
      SESSION: { description: "A user's signed-in session." },
      API_KEY: { description: "A user's API key." },
      SERVER: { description: "The gateway's own code (withLease): no user." },
    } satisfies Record<HolderKind, { description: string }>,
  });
  // Who holds a lease is an admin's to see, as the leases listing is; others get null.
  const adminsSee = <T>(viewer: RequestContext['viewer'], value: T) =>
    roles.api.isAdmin(viewer) ? value : null;

  const LeaseRef = builder.objectRef<LeaseRecord>('Lease').implement({
    fields: (t) => ({
      key: t.exposeString('key'),
      holder: t.string({
        description: 'Who holds it: the session or API key that acquired it, as an opaque string.',
        resolve: (lease) => opaqueHolder(lease.holder),
      }),
      holderKind: t.field({
        type: LeaseHolderKind,
        nullable: true,
        description: 'Admin: the kind of credential that holds it; null for others.',
        resolve: (lease, _args, { viewer }) => adminsSee(viewer, credentialOf(lease.holder).kind),
      }),
      holderUser: t.loadable({
        type: users.api.UserRef,
        nullable: true,
        description:
          'Admin: the user whose session or API key holds it; null for server holders, for credentials no longer on record, and for others.',
        load: (holders: string[], context: RequestContext) => loadHolderUsers(context, holders),
        resolve: (lease, _args, { viewer }) =>
          credentialOf(lease.holder).kind === 'SERVER' ? null : adminsSee(viewer, lease.holder),
      }),
      holderApiKey: t.loadable({
        type: apiKeys.api.ApiKeyRef,
        nullable: true,
        description: 'Admin: the API key that holds it, when one does; null for others.',
        load: (ids: string[], { db }: RequestContext) => apiKeys.api.loadApiKeys(db.system, ids),
        resolve: (lease, _args, { viewer }) => {
          const { kind, id } = credentialOf(lease.holder);
          return kind === 'API_KEY' ? adminsSee(viewer, id) : null;
        },
      }),
      token: t.field({
        type: 'SafeInt',
        description: 'Fencing token: strictly greater than every token granted before for this key.',
        resolve: (lease) => lease.token,
      }),
      acquiredAt: t.field({ type: 'DateTime', resolve: (lease) => new Date(lease.acquiredAt) }),
      expiresAt: t.field({ type: 'DateTime', resolve: (lease) => new Date(lease.expiresAt) }),
      mine: t.boolean({
        description: "True when the viewer's credential holds it.",
        resolve: (lease, _args, { viewer }) => lease.holder === holderOf(viewer),
      }),
    }),
  });
  const LeaseConnection = builder.connectionObject(
    { type: LeaseRef, name: 'LeaseConnection' },
    { name: 'LeaseEdge' },
  );

  builder.queryFields((t) => ({
    lease: t.field({
      type: LeaseRef,
      nullable: true,
      description: 'The live lease on a key; null when the key is free.',
      authScopes: { authenticatedFor: LEASES_SCOPE },
      args: { key: t.arg.string({ required: true }) },
      resolve: async (_root, { key }, { runtime }) => {
        checkRequest(runtime.settings, { key });
        return (await runtime.store.leases.find(key))?.lease ?? null;
      },
    }),
    leases: t.field({
      type: LeaseConnection,
      description: 'Admin: the live leases, in key order, optionally those whose key starts with `prefix`.',
      authScopes: { admin: true },
      args: { prefix: t.arg.string(), first: t.arg.int(), after: t.arg.string() },
      resolve: (_root, args, { runtime }) =>
        paginate(
          'lease',
          args,
          (page) => runtime.store.leases.list({ ...page, prefix: args.prefix ?? null }),
          (lease) => lease.key,
        ),
    }),
  }));

  builder.mutationFields((t) => ({
    acquireLease: t.field({
      type: LeaseRef,
      nullable: true,
      description: 'Returns null when another holder keeps it past waitSeconds.',
      authScopes: { authenticatedFor: LEASES_SCOPE },
      args: {
        key: t.arg.string({ required: true }),
        ttlSeconds: t.arg.int({ required: true }),
        waitSeconds: t.arg.int(),
      },
      resolve: async (_root, args, context) => {
        const { ttlMs, waitMs } = checkRequest(context.runtime.settings, args);
        const holder = requireHolder(context);
        return self(context).acquire({
          key: args.key,
          holder,
          ttlMs,
          waitMs,
          signal: context.request.signal,
        });
      },
    }),
    renewLease: t.field({
      type: LeaseRef,
      description: "Fails with LEASE_LOST when the token is not the current holder's.",
      authScopes: { authenticatedFor: LEASES_SCOPE },
      args: {
        key: t.arg.string({ required: true }),
        token: t.arg({ type: 'SafeInt', required: true }),
        ttlSeconds: t.arg.int({ required: true }),
      },
      resolve: (_root, args, context) => {
        const { ttlMs } = checkRequest(context.runtime.settings, args);
        return renew(context.runtime, {
          key: args.key,
          holder: requireHolder(context),
          token: args.token,
          ttlMs,
        });
      },
    }),
    releaseLease: t.boolean({
      description: 'False when the token is no longer the current one.',
      authScopes: { authenticatedFor: LEASES_SCOPE },
      args: { key: t.arg.string({ required: true }), token: t.arg({ type: 'SafeInt', required: true }) },
      resolve: (_root, args, context) => {
        checkRequest(context.runtime.settings, args);
        return release(context.runtime, {
          key: args.key,
          holder: requireHolder(context),
          token: args.token,
        });
      },
    }),
  }));
}
