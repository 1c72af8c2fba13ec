import { useState } from 'preact/hooks';
import { ConsoleLeasesDocument } from '../../../../client/index.ts';
import { client } from '../api.ts';
import { DataTable, Heading, ListState, ProblemNote, Time, usePages } from '../ui.tsx';

export function LeasesScreen() {
  const [draft, setDraft] = useState('');
  const [prefix, setPrefix] = useState('');
  const leases = usePages(
    'leases',
    async (after) => (await client.query(ConsoleLeasesDocument, { prefix: prefix || null, after })).leases,
    [prefix],
  );
  return (
    <>
      <Heading title="Leases">Leases</Heading>
      <p class="note">Live leases in key order. A released or expired lease is free and not listed.</p>
      <search>
        <form
          class="inline"
          onSubmit={(event) => {
            event.preventDefault();
            setPrefix(draft);
          }}
        >
          <label>
            Key starts with
            <input value={draft} onInput={(event) => setDraft(event.currentTarget.value)} />
          </label>
          <button type="submit">Filter</button>
          <button type="button" onClick={leases.reload}>
            Refresh
          </button>
        </form>
      </search>
      <ProblemNote problem={leases.problem} />
      <ListState loading={leases.loading && !leases.data} empty={leases.items.length === 0}>
        {prefix ? `No live lease starts with “${prefix}”.` : 'No live leases.'}
      </ListState>
      <DataTable
        caption="Live leases"
        rows={leases.items}
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
