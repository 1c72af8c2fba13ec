import { StoreBackendDocument } from '../../../../client/index.ts';
import { client } from '../api.ts';
import { Heading, ProblemNote, Time, useLoad } from '../ui.tsx';

const KIND_NAMES = { SQLITE: 'SQLite', POSTGRES: 'PostgreSQL', REMOTE: 'Another Portico' } as const;

/** Where the business data lives and whether it answers; identity never moves with it. */
export function StoreScreen() {
  const loaded = useLoad(async () => (await client.query(StoreBackendDocument)).storeBackend, []);
  const store = loaded.data;
  return (
    <>
      <Heading title="Store">Store</Heading>
      <p class="note">
        The store holds collections, blob metadata and leases. Users, sessions, keys and the audit log live in
        the system database, which keeps working while the store is away.
      </p>
      <p>
        <button type="button" onClick={loaded.reload}>
          Refresh
        </button>
      </p>
      <ProblemNote problem={loaded.problem} />
      {store ? (
        <dl class="facts">
          <dt>Backend</dt>
          <dd>{KIND_NAMES[store.kind]}</dd>
          <dt>Where</dt>
          <dd>
            <code>{store.url}</code>
          </dd>
          <dt>Status</dt>
          <dd>
            {store.status === 'READY' ? (
              'Answering'
            ) : (
              <>
                <span class="tag warn">Unavailable</span> {store.reason}
              </>
            )}
          </dd>
          <dt>Chosen by</dt>
          <dd>{store.source === 'ENVIRONMENT' ? 'DATABASE_URL' : 'an admin’s switch'}</dd>
          <dt>In use since</dt>
          <dd>
            <Time value={store.since} seconds />
          </dd>
        </dl>
      ) : null}
    </>
  );
}
