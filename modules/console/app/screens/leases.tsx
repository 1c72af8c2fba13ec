import { useState } from 'preact/hooks';
import { LeasesDocument } from '../../../../client/index.ts';
import { client } from '../api.ts';
import { DataTable, Heading, ProblemNote, SearchForm, Time, usePages } from '../ui.tsx';

export function LeasesScreen() {
  const [prefix, setPrefix] = useState('');
  const leases = usePages(
    'leases',
    async (after) => (await client.query(LeasesDocument, { prefix: prefix || null, after })).leases,
    [prefix],
  );
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
                <code>{lease.holder}</code>
                {lease.mine ? <span class="tag">you</span> : null}
              </>
            ),
          },
          { label: 'Token', kind: 'number', cell: (lease) => lease.token },
          { label: 'Acquired', cell: (lease) => <Time value={lease.acquiredAt} seconds /> },
          { label: 'Expires', cell: (lease) => <Time value={lease.expiresAt} seconds /> },
        ]}
      />
      {leases.pager}
    </>
  );
}
