import type { Builder, RequestContext } from '../../src/index.ts';
import type { StoreAdmin, StoreState } from './instance.ts';

export function registerStore(builder: Builder, self: (context: RequestContext) => StoreAdmin) {
  const KindEnum = builder.enumType('StoreBackendKind', {
    values: {
      SQLITE: { value: 'sqlite' },
      POSTGRES: { value: 'postgres' },
      REMOTE: {
        value: 'remote',
        description: "Another Portico gateway serves this gateway's store (HTTP.md, Store backends).",
      },
    } as const,
  });
  const StatusEnum = builder.enumType('StoreBackendStatus', { values: ['READY', 'UNAVAILABLE'] as const });
  const SourceEnum = builder.enumType('StoreBackendSource', {
    values: {
      ENVIRONMENT: { value: 'environment', description: 'DATABASE_URL.' },
      SWITCH: {
        value: 'switch',
        description:
          "An admin's switchStoreBackend, kept in the system database and applied by every instance, also after a restart.",
      },
    } as const,
  });

  const StoreBackendRef = builder.objectRef<StoreState>('StoreBackend').implement({
    description:
      'Where the business data (collections, blob metadata, leases) lives now. The system database is never switched.',
    fields: (t) => ({
      kind: t.field({ type: KindEnum, resolve: (state) => state.kind }),
      url: t.exposeString('url', { description: "The backend's URL with any password or API key removed." }),
      status: t.field({
        type: StatusEnum,
        resolve: (state) => (state.problem === null ? 'READY' : 'UNAVAILABLE'),
      }),
      reason: t.string({
        nullable: true,
        description: 'Why it is unavailable, when it is; null when READY.',
        resolve: (state) => state.problem,
      }),
      source: t.field({ type: SourceEnum, resolve: (state) => state.source }),
      since: t.field({
        type: 'DateTime',
        description: 'When this backend became the current one on this instance.',
        resolve: (state) => state.since,
      }),
    }),
  });

  builder.queryField('storeBackend', (t) =>
    t.field({
      type: StoreBackendRef,
      description: 'Admin.',
      authScopes: { admin: true },
      resolve: (_root, _args, context) => self(context).state(),
    }),
  );

  builder.mutationFields((t) => ({
    switchStoreBackend: t.field({
      type: StoreBackendRef,
      description:
        'Admin. Opens the backend at `url` (`sqlite:<path>`, `postgres://...`, or\n`portico+http(s)://...` for a remote Portico), brings its schema up to date,\nchecks that it answers, and only then makes it current on every instance.\nRequests already running finish on the old backend. Data is not copied.\nA URL that cannot be opened fails with BAD_USER_INPUT or SERVICE_UNAVAILABLE\nand changes nothing.',
      authScopes: { admin: true },
      args: { url: t.arg.string({ required: true }) },
      resolve: (_root, { url }, context) => self(context).switchTo(context, url),
    }),
    resetStoreBackend: t.field({
      type: StoreBackendRef,
      description: 'Admin. Goes back to DATABASE_URL on every instance.',
      authScopes: { admin: true },
      resolve: (_root, _args, context) => self(context).reset(context),
    }),
    reconnectStoreBackend: t.field({
      type: StoreBackendRef,
      description: "Admin. Closes and reopens the current backend's connections on every instance.",
      authScopes: { admin: true },
      resolve: (_root, _args, context) => self(context).reconnect(context),
    }),
  }));
}
