import type { Builder, StoreAbout } from '../../src/index.ts';

/** What `storeBackend` answers: the backend as it describes itself, and whether it answers now. */
interface StoreState extends StoreAbout {
  problem: string | null;
}

export function registerStore(builder: Builder) {
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
      resolve: async (_root, _args, { runtime }) => ({
        ...runtime.store.about,
        problem: await runtime.store.problem(),
      }),
    }),
  );
}
