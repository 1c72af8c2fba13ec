import { useState } from 'preact/hooks';
import {
  RevokeSessionDocument,
  SessionEventsDocument,
  type SessionEventsSubscription,
  type SessionFieldsFragment,
  SessionsDocument,
} from '../../../../client/index.ts';
import { client } from '../api.ts';
import { Link, segment } from '../router.tsx';
import {
  type Column,
  DataTable,
  Heading,
  ProblemNote,
  RevokeButton,
  Time,
  useAction,
  usePages,
  useSubscription,
} from '../ui.tsx';

/** The columns of a session wherever one is listed: where it signed in from, and when. */
export const sessionColumns: Column<SessionFieldsFragment>[] = [
  { label: 'IP', cell: (session) => session.ip },
  { label: 'User agent', kind: 'wide', cell: (session) => session.userAgent },
  { label: 'Last seen', cell: (session) => <Time value={session.lastSeenAt} /> },
  { label: 'Started', cell: (session) => <Time value={session.createdAt} /> },
];

/**
 * Every signed-in browser, kept current by `sessionEvents`: sessions started since the page
 * loaded come in on top of the first page, revoked ones leave, wherever they were revoked.
 */
export function SessionsScreen() {
  const sessions = usePages(
    'sessions',
    async (after) => (await client.query(SessionsDocument, { after })).sessions,
    [],
  );
  const revoke = useAction();
  const [started, setStarted] = useState<SessionEventsSubscription['sessionEvents']['session'][]>([]);
  const [ended, setEnded] = useState<ReadonlySet<string>>(new Set());
  const live = useSubscription(
    () => client.subscribe(SessionEventsDocument),
    ({ sessionEvents: { kind, session } }) => {
      if (kind === 'CREATED') setStarted((previous) => [session, ...previous]);
      else setEnded((previous) => new Set(previous).add(session.id));
    },
    [],
  );
  const listed = new Set(sessions.items.map((session) => session.id));
  const shown = [
    ...(sessions.page === 1 ? started.filter((session) => !listed.has(session.id)) : []),
    ...sessions.items,
  ].filter((session) => !ended.has(session.id));

  return (
    <>
      <Heading title="Sessions">Sessions</Heading>
      <p class="note">Every signed-in browser, newest first, updated as sessions start and end.</p>
      <ProblemNote problem={sessions.problem ?? revoke.problem ?? live} />
      <DataTable
        caption="Active sessions"
        rows={shown}
        loaded={sessions}
        empty="No active sessions."
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
          ...sessionColumns,
          {
            label: 'Actions',
            cell: (session) => (
              <RevokeButton
                action={revoke}
                label={`Revoke the session of ${session.user.email} from ${session.ip ?? 'an unknown address'}`}
                revoke={async () => {
                  await client.mutate(RevokeSessionDocument, { id: session.id });
                  // The REVOKED event would drop it too; this does not wait for it.
                  setEnded((previous) => new Set(previous).add(session.id));
                }}
              />
            ),
          },
        ]}
      />
      {sessions.pager}
    </>
  );
}
