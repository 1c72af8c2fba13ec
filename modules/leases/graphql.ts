import {
  type Builder,
  type Fence,
  type LeaseRecord,
  PorticoError,
  paginate,
  type RequestContext,
  builder as schemaBuilder,
} from '../../src/index.ts';
import { holderOf, LEASES_SCOPE, opaqueHolder } from './access.ts';
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

export function registerLeases(builder: Builder, self: (context: RequestContext) => Leases) {
  const LeaseRef = builder.objectRef<LeaseRecord>('Lease').implement({
    fields: (t) => ({
      key: t.exposeString('key'),
      holder: t.string({
        description: 'Who holds it: the session or API key that acquired it, as an opaque string.',
        resolve: (lease) => opaqueHolder(lease.holder),
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
