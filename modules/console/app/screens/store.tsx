import { useState } from 'preact/hooks';
import {
  LastBackupDocument,
  ReconnectStoreBackendDocument,
  ResetStoreBackendDocument,
  StoreBackendDocument,
  SwitchStoreBackendDocument,
} from '../../../../client/index.ts';
import { client } from '../api.ts';
import { ConfirmButton, formatBytes, Heading, ProblemNote, Time, useAction, useLoad } from '../ui.tsx';

const KIND_NAMES = { SQLITE: 'SQLite', POSTGRES: 'PostgreSQL', REMOTE: 'Another Portico' } as const;

/** Where the business data lives and whether it answers; switching it; identity never moves with it. */
export function StoreScreen() {
  const loaded = useLoad(async () => (await client.query(StoreBackendDocument)).storeBackend, []);
  const store = loaded.data;
  const lastBackup = useLoad(async () => (await client.query(LastBackupDocument)).lastBackup, []);
  const action = useAction();
  const [url, setUrl] = useState('');
  const [notice, setNotice] = useState('');
  const act = async (what: () => Promise<string>) => {
    setNotice('');
    if (await action.run(async () => setNotice(await what()))) loaded.reload();
  };
  return (
    <>
      <Heading title="Store">Store</Heading>
      <p class="note">
        The store holds collections, blob metadata and leases. Users, sessions, keys and the audit log live in
        the system database, which keeps working while the store is away.
      </p>
      <ProblemNote problem={loaded.problem} />
      <ProblemNote problem={action.problem} />
      <p role="status">{notice}</p>
      {/* Like a user’s Account card: what it is, then what can be done with it. */}
      <section class="card" aria-labelledby="store-heading">
        <h2 id="store-heading">Current store</h2>
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
            <dt>Backups</dt>
            <dd>
              <BackupLine backup={lastBackup.data} />
            </dd>
          </dl>
        ) : loaded.loading ? (
          <p class="note">Loading…</p>
        ) : null}
        <div class="actions">
          <button
            type="button"
            onClick={() => {
              loaded.reload();
              lastBackup.reload();
            }}
          >
            Refresh
          </button>
          <button
            type="button"
            disabled={action.busy}
            onClick={() =>
              void act(async () => {
                await client.mutate(ReconnectStoreBackendDocument);
                return 'Reconnected: every instance opened new connections to the store.';
              })
            }
          >
            Reconnect
          </button>
          {store?.source === 'SWITCH' ? (
            <ConfirmButton
              label="Back to DATABASE_URL"
              confirmLabel="Go back; data is not copied"
              question="Go back to DATABASE_URL’s store on every instance? Nothing is copied."
              disabled={action.busy}
              onConfirm={() =>
                void act(async () => {
                  const { resetStoreBackend } = await client.mutate(ResetStoreBackendDocument);
                  return `The store is DATABASE_URL’s again: ${resetStoreBackend.url}.`;
                })
              }
            />
          ) : null}
        </div>
      </section>

      <form class="card" aria-labelledby="switch-heading" onSubmit={(event) => event.preventDefault()}>
        <h2 id="switch-heading">Switch the store</h2>
        <p class="note">
          Every instance moves to the new store. Data is not copied: clients see the new store’s collections,
          blobs and leases from then on. A store that cannot be opened changes nothing. Another Portico serves
          as the store with <code>portico+https://host</code>; this gateway then needs a key of it with the
          scope <code>store:serve</code> (PORTICO_REMOTE_API_KEY or <code>portico login</code>).
        </p>
        <label>
          Store URL
          <input
            name="url"
            value={url}
            placeholder="postgres://user:password@host/database, sqlite:store.sqlite or portico+https://host"
            autocomplete="off"
            spellcheck={false}
            onInput={(event) => setUrl(event.currentTarget.value)}
          />
        </label>
        <ConfirmButton
          label="Switch"
          confirmLabel="Switch; data is not copied"
          question={`Switch every instance to ${url || 'this store'}? Its data is what clients will see; nothing is copied.`}
          disabled={action.busy || !url.trim()}
          onConfirm={() =>
            void act(async () => {
              const { switchStoreBackend } = await client.mutate(SwitchStoreBackendDocument, {
                url: url.trim(),
              });
              setUrl('');
              return `The store is now ${switchStoreBackend.url}.`;
            })
          }
        />
      </form>
    </>
  );
}

/** When the last `portico backup` ran and what it wrote; how to take one when none was. */
function BackupLine({
  backup,
}: {
  backup: { finishedAt: string; file: string; bytes: number; rows: number; blobs: number } | null | undefined;
}) {
  if (backup === undefined) return null;
  if (backup === null) {
    return (
      <>
        <span class="tag warn">None yet</span> Take one with <code>portico backup &lt;file&gt;</code> (it runs
        while the gateway serves).
      </>
    );
  }
  return (
    <>
      Last taken <Time value={backup.finishedAt} />: {formatBytes(backup.bytes)}, {backup.rows} rows and{' '}
      {backup.blobs} blob contents, in <code>{backup.file}</code>
    </>
  );
}
