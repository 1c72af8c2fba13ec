import { useState } from 'preact/hooks';
import { ConsoleLeasesDocument, type ConsoleLeasesQuery } from '../../../../client/index.ts';
import { client } from '../api.ts';
import { DataTable, Heading, ProblemNote, SearchForm, Time, usePages } from '../ui.tsx';

type ListedLease = ConsoleLeasesQuery['leases']['edges'][number]['node'];

/** Who holds a lease, in words: "alice@example.com · session", "… · backup job (API key)", "server code". */
function holderText(lease: ListedLease) {
  if (lease.holderKind === 'SERVER') return 'server code';
  // Null only when the credential or its user is no longer on record.
  const who = lease.holderUser?.email ?? 'unknown user';
  if (lease.holderKind === 'API_KEY')
    return `${who} · ${lease.holderApiKey ? `${lease.holderApiKey.name} (API key)` : 'API key'}`;
  return `${who} · session`;
}

export function LeasesScreen() {
  const [prefix, setPrefix] = useState('');
  const leases = usePages(
    'leases',
    async (after) => (await client.query(ConsoleLeasesDocument, { prefix: prefix || null, after })).leases,
    [prefix],
  );
  // No lease at all, not merely none under a prefix: say what leases are for.
  const none = !!leases.data && leases.items.length === 0 && !prefix && leases.page === 1;
  return (
    <>
      <Heading title="Leases">Leases</Heading>
      <p class="note">Live leases in key order. A released or expired lease is free and not listed.</p>
      <SearchForm label="Key starts with" submitLabel="Filter" onSearch={setPrefix}>
        <button type="button" onClick={leases.reload}>
          Refresh
        </button>
      </SearchForm>
      <ProblemNote problem={leases.problem} />
      {none ? (
        <div class="card leases-intro">
          <p>
            <strong>No live leases.</strong> A lease is a lock with a time to live and a fencing token, so
            that one worker at a time does a job (a nightly report, a migration), and a worker that lost its
            lease cannot overwrite the next one’s work.
          </p>
          <p>
            Take one with the <code>acquireLease(key, ttlSeconds)</code> mutation and pass its token as the{' '}
            <code>fence</code> of your writes; see <a href="/docs/leases">Leases in the manual</a>.
          </p>
        </div>
      ) : (
        <DataTable
          caption="Live leases"
          rows={leases.items}
          loaded={leases}
          empty={prefix ? `No live lease starts with “${prefix}”.` : 'No live leases.'}
          rowKey={(lease) => lease.key}
          columns={[
            { label: 'Key', kind: 'wide', cell: (lease) => <code>{lease.key}</code> },
            {
              label: 'Holder',
              cell: (lease) => (
                <>
                  <span class="holder">{holderText(lease)}</span>
                  {lease.mine ? <span class="tag">you</span> : null}
                  <br />
                  <code class="holder-id" title="The holder's opaque id, as non-admins see it">
                    {lease.holder}
                  </code>
                </>
              ),
            },
            { label: 'Token', kind: 'number', cell: (lease) => lease.token },
            { label: 'Acquired', cell: (lease) => <Time value={lease.acquiredAt} seconds /> },
            { label: 'Expires', cell: (lease) => <Time value={lease.expiresAt} seconds /> },
          ]}
        />
      )}
      {leases.pager}
    </>
  );
}
