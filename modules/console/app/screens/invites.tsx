import { useState } from 'preact/hooks';
import {
  CreateInviteDocument,
  InvitesDocument,
  RevokeInviteDocument,
  RolesDocument,
} from '../../../../client/index.ts';
import { client } from '../api.ts';
import {
  DataTable,
  Heading,
  ProblemNote,
  Reveal,
  RevokeButton,
  Time,
  useAction,
  useLoad,
  usePages,
} from '../ui.tsx';
import { RoleCheck } from './users.tsx';

export function InvitesScreen() {
  const roles = useLoad(() => client.query(RolesDocument, {}), []);
  const invites = usePages(
    'invites',
    async (after) => (await client.query(InvitesDocument, { after })).invites,
    [],
  );
  const create = useAction();
  const revoke = useAction();
  const [email, setEmail] = useState('');
  const [chosen, setChosen] = useState<string[]>([]);
  const [ticket, setTicket] = useState<{ email: string; url: string } | null>(null);
  const now = Date.now();

  return (
    <>
      <Heading title="Invites">Invites</Heading>
      <form
        class="card"
        aria-labelledby="new-invite"
        onSubmit={async (event) => {
          event.preventDefault();
          setTicket(null);
          await create.run(async () => {
            const { createInvite } = await client.mutate(CreateInviteDocument, {
              email,
              roles: chosen.length > 0 ? chosen : null,
            });
            setTicket({ email: createInvite.invite.email, url: createInvite.url });
            setEmail('');
            setChosen([]);
            invites.reload();
          });
        }}
      >
        <h2 id="new-invite">New invite</h2>
        <label>
          Email
          <input
            type="email"
            required
            value={email}
            onInput={(event) => setEmail(event.currentTarget.value)}
          />
        </label>
        <fieldset>
          <legend>Roles</legend>
          <p class="note">None checked: the configured default roles.</p>
          <ProblemNote problem={roles.problem} />
          {roles.data?.roles.map((role) => (
            <RoleCheck
              key={role.name}
              role={role}
              checked={chosen.includes(role.name)}
              onChange={(on) =>
                setChosen(on ? [...chosen, role.name] : chosen.filter((name) => name !== role.name))
              }
            />
          ))}
        </fieldset>
        <button type="submit" disabled={create.busy}>
          Create invite
        </button>
        <ProblemNote problem={create.problem} />
        {ticket ? (
          <Reveal
            label="Invite link"
            copyLabel="Copy the invite link"
            value={ticket.url}
            note={`Send this link to ${ticket.email}. It is shown only now, works once and expires in 7 days.`}
          />
        ) : null}
      </form>

      <h2>Sent invites</h2>
      <ProblemNote problem={invites.problem ?? revoke.problem} />
      <DataTable
        caption="Sent invites"
        rows={invites.items}
        loaded={invites}
        empty="No invites yet. Create one above, then send its link to the person: it is shown only once."
        rowKey={(invite) => invite.id}
        columns={[
          { label: 'Email', cell: (invite) => invite.email },
          { label: 'Roles', cell: (invite) => invite.roles.join(', ') },
          { label: 'Invited by', cell: (invite) => invite.invitedBy?.email },
          { label: 'Sent', cell: (invite) => <Time value={invite.createdAt} /> },
          {
            label: 'State',
            cell: (invite) =>
              invite.acceptedAt ? (
                <>
                  Accepted <Time value={invite.acceptedAt} />
                </>
              ) : Date.parse(invite.expiresAt) <= now ? (
                'Expired'
              ) : (
                <>
                  Pending until <Time value={invite.expiresAt} />
                </>
              ),
          },
          {
            label: 'Actions',
            cell: (invite) =>
              invite.acceptedAt || Date.parse(invite.expiresAt) <= now ? null : (
                <RevokeButton
                  action={revoke}
                  label={`Revoke the invite for ${invite.email}`}
                  revoke={async () => {
                    await client.mutate(RevokeInviteDocument, { id: invite.id });
                    invites.reload();
                  }}
                />
              ),
          },
        ]}
      />
      {invites.pager}
    </>
  );
}
