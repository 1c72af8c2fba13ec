import { ConsoleRevokeSessionDocument, ConsoleSessionsDocument } from '../../../../client/index.ts';
import { client } from '../api.ts';
import { Link, segment } from '../router.tsx';
import { DataTable, Heading, ListState, ProblemNote, Time, useAction, usePages } from '../ui.tsx';

export function SessionsScreen() {
  const sessions = usePages(
    'sessions',
    async (after) => (await client.query(ConsoleSessionsDocument, { after })).sessions,
    [],
  );
  const revoke = useAction();

  return (
    <>
      <Heading title="Sessions">Sessions</Heading>
      <p class="note">Every signed-in browser, newest first.</p>
      <ProblemNote problem={sessions.problem ?? revoke.problem} />
      <ListState loading={sessions.loading && !sessions.data} empty={sessions.items.length === 0}>
        No active sessions.
      </ListState>
      <DataTable
        caption="Active sessions"
        rows={sessions.items}
        rowKey={(session) => session.id}
        columns={[
          {
            label: 'User',
            cell: (session) => (
              <>
                <Link to={`/users/${segment(session.user.id)}`}>{session.user.email}</Link>
                {session.current ? <span class="tag">this browser</span> : null}
              </>
            ),
          },
          { label: 'Method', cell: (session) => session.method },
          { label: 'IP', cell: (session) => session.ip },
          { label: 'User agent', kind: 'wide', cell: (session) => session.userAgent },
          { label: 'Last seen', cell: (session) => <Time value={session.lastSeenAt} /> },
          { label: 'Started', cell: (session) => <Time value={session.createdAt} /> },
          {
            label: 'Actions',
            cell: (session) => (
              <button
                type="button"
                disabled={revoke.busy}
                aria-label={`Revoke the session of ${session.user.email} from ${session.ip ?? 'an unknown address'}`}
                onClick={() =>
                  revoke.run(async () => {
                    await client.mutate(ConsoleRevokeSessionDocument, { id: session.id });
                    sessions.reload();
                  })
                }
              >
                Revoke
              </button>
            ),
          },
        ]}
      />
      {sessions.pager}
    </>
  );
}
