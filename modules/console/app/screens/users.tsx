import { useEffect, useId, useState } from 'preact/hooks';
import {
  ConsoleUserDocument,
  RevokeSessionDocument,
  RevokeUserSessionsDocument,
  SetUserDisabledDocument,
  SetUserRolesDocument,
  UsersDocument,
} from '../../../../client/index.ts';
import { client } from '../api.ts';
import { Link, segment } from '../router.tsx';
import {
  ConfirmButton,
  DataTable,
  Heading,
  ProblemNote,
  RevokeButton,
  SearchForm,
  Time,
  useAction,
  useLoad,
  usePages,
} from '../ui.tsx';
import { sessionColumns } from './sessions.tsx';

/**
 * A role to check: its name is the checkbox's name, and the scopes it grants are said after it
 * as a hint (the checkbox's description), so a screen reader does not read them as part of the name.
 */
export function RoleCheck({
  role,
  checked,
  onChange,
}: {
  role: { name: string; scopes: string[] };
  checked: boolean;
  onChange: (checked: boolean) => void;
}) {
  const hint = useId();
  return (
    <div class="check">
      <label>
        <input
          type="checkbox"
          checked={checked}
          aria-describedby={hint}
          onChange={(event) => onChange(event.currentTarget.checked)}
        />
        {role.name}
      </label>
      <span class="hint" id={hint}>
        {role.scopes.length > 0 ? (
          <>
            grants <code>{role.scopes.join(' ')}</code>
          </>
        ) : (
          'grants no scopes'
        )}
      </span>
    </div>
  );
}

export function UsersScreen() {
  const [search, setSearch] = useState('');
  const users = usePages(
    'users',
    async (after) => (await client.query(UsersDocument, { search: search || null, after })).users,
    [search],
  );
  return (
    <>
      <Heading title="Users">Users</Heading>
      <SearchForm
        label="Search by email or name"
        submitLabel="Search"
        searchBox
        onSearch={(text) => setSearch(text.trim())}
      />
      <ProblemNote problem={users.problem} />
      <DataTable
        caption="Users"
        rows={users.items}
        loaded={users}
        empty={search ? `No user matches “${search}”.` : 'No users yet.'}
        rowKey={(user) => user.id}
        columns={[
          { label: 'Email', cell: (user) => <Link to={`/users/${segment(user.id)}`}>{user.email}</Link> },
          { label: 'Name', cell: (user) => user.name },
          { label: 'Roles', cell: (user) => user.roles.join(', ') },
          {
            label: 'Status',
            cell: (user) => (user.disabled ? <span class="tag warn">Disabled</span> : 'Active'),
          },
          { label: 'Last sign-in', cell: (user) => <Time value={user.lastLoginAt} /> },
          { label: 'Created', cell: (user) => <Time value={user.createdAt} /> },
        ]}
      />
      {users.pager}
    </>
  );
}

export function UserScreen({ id }: { id: string }) {
  const loaded = useLoad(() => client.query(ConsoleUserDocument, { id }), [id]);
  const action = useAction();
  const [roles, setRoles] = useState<string[]>([]);
  const [notice, setNotice] = useState('');
  const user = loaded.data?.node && 'email' in loaded.data.node ? loaded.data.node : null;
  useEffect(() => setRoles(user?.roles ?? []), [user]);

  if (!user) {
    return (
      <>
        <p>
          <Link to="/users">← All users</Link>
        </p>
        <Heading title="User">User</Heading>
        <ProblemNote problem={loaded.problem} />
        {loaded.loading ? <p class="note">Loading…</p> : loaded.problem ? null : <p>No such user.</p>}
      </>
    );
  }

  const act = async (what: () => Promise<string>) => {
    setNotice('');
    if (await action.run(async () => setNotice(await what()))) loaded.reload();
  };
  const toggle = (role: string, on: boolean) =>
    setRoles(on ? [...roles, role] : roles.filter((existing) => existing !== role));

  return (
    <>
      <p>
        <Link to="/users">← All users</Link>
      </p>
      <Heading title={user.email}>{user.email}</Heading>
      <dl class="facts">
        <dt>Name</dt>
        <dd>{user.name ?? <span class="note">none</span>}</dd>
        <dt>Status</dt>
        <dd>{user.disabled ? <span class="tag warn">Disabled</span> : 'Active'}</dd>
        <dt>Created</dt>
        <dd>
          <Time value={user.createdAt} />
        </dd>
        <dt>Last sign-in</dt>
        <dd>
          <Time value={user.lastLoginAt} />
        </dd>
      </dl>
      <p>
        <Link to={`/audit?user=${encodeURIComponent(user.id)}`}>Audit events of {user.email}</Link>
      </p>
      <ProblemNote problem={action.problem} />
      <p role="status">{notice}</p>

      <form
        class="card"
        onSubmit={(event) => {
          event.preventDefault();
          void act(async () => {
            await client.mutate(SetUserRolesDocument, { userId: user.id, roles });
            return 'Roles saved. The user’s sessions were ended, so the new roles apply from their next sign-in.';
          });
        }}
      >
        <fieldset>
          <legend>Roles</legend>
          {loaded.data?.roles.map((role) => (
            <RoleCheck
              key={role.name}
              role={role}
              checked={roles.includes(role.name)}
              onChange={(on) => toggle(role.name, on)}
            />
          ))}
        </fieldset>
        <button type="submit" disabled={action.busy}>
          Save roles
        </button>
      </form>

      <section class="card" aria-labelledby="account-heading">
        <h2 id="account-heading">Account</h2>
        {user.disabled ? (
          <button
            type="button"
            disabled={action.busy}
            onClick={() =>
              act(async () => {
                await client.mutate(SetUserDisabledDocument, { userId: user.id, disabled: false });
                return `${user.email} can sign in again.`;
              })
            }
          >
            Enable account
          </button>
        ) : (
          <ConfirmButton
            label="Disable account"
            confirmLabel="Disable"
            question={`Disable ${user.email}? Their sessions and API keys stop working at once.`}
            disabled={action.busy}
            onConfirm={() =>
              act(async () => {
                await client.mutate(SetUserDisabledDocument, { userId: user.id, disabled: true });
                return `${user.email} is disabled.`;
              })
            }
          />
        )}
      </section>

      <section aria-labelledby="sessions-heading">
        <h2 id="sessions-heading">Sessions</h2>
        {user.sessions.length === 0 ? (
          <p class="note">No active sessions.</p>
        ) : (
          <>
            <DataTable
              caption={`Active sessions of ${user.email}`}
              rows={user.sessions}
              rowKey={(session) => session.id}
              columns={[
                {
                  label: 'Method',
                  cell: (session) => (
                    <>
                      {session.method}
                      {session.current ? <span class="tag">this browser</span> : null}
                    </>
                  ),
                },
                ...sessionColumns,
                {
                  label: 'Actions',
                  cell: (session) => (
                    <RevokeButton
                      action={action}
                      label={`Revoke the ${session.method} session from ${session.ip ?? 'an unknown address'}`}
                      revoke={async () => {
                        setNotice('');
                        await client.mutate(RevokeSessionDocument, { id: session.id });
                        setNotice('Session revoked.');
                        loaded.reload();
                      }}
                    />
                  ),
                },
              ]}
            />
            <ConfirmButton
              label="Revoke all sessions"
              confirmLabel="Revoke all"
              question={`Sign ${user.email} out everywhere?`}
              disabled={action.busy}
              onConfirm={() =>
                act(async () => {
                  const { revokeUserSessions } = await client.mutate(RevokeUserSessionsDocument, {
                    userId: user.id,
                  });
                  return `${revokeUserSessions} session${revokeUserSessions === 1 ? '' : 's'} revoked.`;
                })
              }
            />
          </>
        )}
      </section>
    </>
  );
}
