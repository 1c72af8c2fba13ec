import { useState } from 'preact/hooks';
import {
  type AuditEventKind,
  AuditEventsDocument,
  type AuditEventsQuery,
  ConsoleAuditKindsDocument,
  ConsoleUserDocument,
  UsersDocument,
} from '../../../../client/index.ts';
import { client } from '../api.ts';
import { Link, navigate, segment } from '../router.tsx';
import {
  type Column,
  DataTable,
  Heading,
  Mistake,
  ProblemNote,
  Time,
  useAction,
  useLoad,
  usePages,
} from '../ui.tsx';

type AuditEvent = AuditEventsQuery['auditEvents']['edges'][number]['node'];

/** An event kind as words: INVITE_ACCEPTED reads "Invite accepted", API_KEY_CREATED "API key created". */
export function kindWords(kind: string) {
  const words = kind
    .toLowerCase()
    .replaceAll('_', ' ')
    .replace(/\bapi\b/g, 'API');
  return words.charAt(0).toUpperCase() + words.slice(1);
}

/** What every list of audit events shows (the log, the Overview's recent events). */
export const AUDIT_EVENT_COLUMNS: Column<AuditEvent>[] = [
  { label: 'When', cell: (event) => <Time value={event.at} seconds /> },
  {
    label: 'Kind',
    // The contract's name stays at hand (on hover) for searching logs and the API.
    cell: (event) => <span title={event.kind}>{kindWords(event.kind)}</span>,
  },
  {
    label: 'User',
    cell: (event) =>
      event.user ? <Link to={`/users/${segment(event.user.id)}`}>{event.user.email}</Link> : null,
  },
  { label: 'By', cell: (event) => event.actor?.email },
];

/** The audit log, newest first; `userId` (from `?user=`) narrows it to one user. */
export function AuditScreen({ userId }: { userId: string | null }) {
  const kinds = useLoad(
    async () =>
      (await client.query(ConsoleAuditKindsDocument, {})).__type?.enumValues?.map((value) => value.name) ??
      [],
    [],
  );
  const subject = useLoad(async () => {
    if (!userId) return null;
    const { node } = await client.query(ConsoleUserDocument, { id: userId });
    return node && 'email' in node ? node.email : null;
  }, [userId]);
  const [kind, setKind] = useState('');
  const [kindDraft, setKindDraft] = useState('');
  const [email, setEmail] = useState('');
  const lookup = useAction();
  const [mistake, setMistake] = useState('');
  const events = usePages(
    'audit events',
    async (after) =>
      (
        await client.query(AuditEventsDocument, {
          userId,
          kind: (kind || null) as AuditEventKind | null,
          after,
        })
      ).auditEvents,
    [userId, kind],
  );

  /** Applies the kind, and the user an address names (the search matches parts of addresses: the exact one wins). */
  const apply = () =>
    lookup.run(async () => {
      setMistake('');
      setKind(kindDraft);
      const wanted = email.trim().toLowerCase();
      if (!wanted) return;
      const { users } = await client.query(UsersDocument, { search: wanted, first: 20 });
      const match = users.edges.find((edge) => edge.node.email.toLowerCase() === wanted)?.node;
      if (match) navigate(`/audit?user=${encodeURIComponent(match.id)}`);
      else setMistake(`No user has the address “${email.trim()}”.`);
    });

  return (
    <>
      <Heading title="Audit log">Audit log</Heading>
      <form
        class="card"
        aria-label="Filter the audit log"
        onSubmit={(event) => {
          event.preventDefault();
          void apply();
        }}
      >
        <div class="row">
          <label>
            User’s email
            <input
              type="email"
              value={email}
              placeholder={subject.data ?? 'any user'}
              aria-describedby="audit-user-note"
              onInput={(event) => setEmail(event.currentTarget.value)}
            />
          </label>
          <label>
            Kind
            <select value={kindDraft} onChange={(event) => setKindDraft(event.currentTarget.value)}>
              <option value="">Any kind</option>
              {kinds.data?.map((name) => (
                <option key={name} value={name}>
                  {kindWords(name)}
                </option>
              ))}
            </select>
          </label>
        </div>
        <div class="actions">
          <button type="submit" disabled={lookup.busy}>
            Apply filter
          </button>
          {userId ? (
            <button type="button" onClick={() => navigate('/audit')}>
              All users
            </button>
          ) : null}
        </div>
        <p class="note" id="audit-user-note">
          Leave the address empty to keep the user filter as it is.
        </p>
        <Mistake text={mistake} />
        <ProblemNote problem={lookup.problem ?? kinds.problem ?? subject.problem} />
      </form>
      {userId && subject.data ? (
        <p role="status">
          Events about <Link to={`/users/${segment(userId)}`}>{subject.data}</Link>
          {kind ? ` of kind “${kindWords(kind)}”` : ''}.
        </p>
      ) : null}
      <ProblemNote problem={events.problem} />
      <DataTable
        caption="Audit events"
        rows={events.items}
        loaded={events}
        empty={
          userId || kind
            ? 'No events match.'
            : 'No events yet: sign-ins, invites and changes to users and keys show here.'
        }
        rowKey={(event) => event.id}
        columns={[
          ...AUDIT_EVENT_COLUMNS,
          { label: 'IP', cell: (event) => event.ip },
          {
            label: 'Detail',
            kind: 'wide',
            cell: (event) => (event.detail ? <code>{JSON.stringify(event.detail)}</code> : null),
          },
        ]}
      />
      {events.pager}
    </>
  );
}
