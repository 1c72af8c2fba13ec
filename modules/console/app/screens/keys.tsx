import { useState } from 'preact/hooks';
import {
  ApiKeysDocument,
  ApproveDeviceDocument,
  CreateApiKeyDocument,
  DenyDeviceDocument,
  RevokeApiKeyDocument,
  ScopesDocument,
} from '../../../../client/index.ts';
import { client } from '../api.ts';
import { DataTable, Heading, ProblemNote, Reveal, RevokeButton, Time, useAction, useLoad } from '../ui.tsx';

/** The admin's own API keys (a device approved with the device flow holds one, named after its client). */
export function KeysScreen() {
  const keys = useLoad(() => client.query(ApiKeysDocument, {}), []);
  const scopeList = useLoad(() => client.query(ScopesDocument, {}), []);
  const create = useAction();
  const revoke = useAction();
  const [name, setName] = useState('');
  const [scopes, setScopes] = useState('');
  const [expires, setExpires] = useState('');
  const [secret, setSecret] = useState<{ name: string; value: string } | null>(null);
  const list = keys.data?.viewer.apiKeys ?? [];

  return (
    <>
      <Heading title="API keys & devices">API keys &amp; devices</Heading>
      <p class="note">
        Your own keys. A program sends one as <code>Authorization: Bearer …</code>; a device you approve gets
        a key named after its client, listed here too.
      </p>
      <form
        class="card"
        aria-labelledby="new-key"
        onSubmit={async (event) => {
          event.preventDefault();
          setSecret(null);
          await create.run(async () => {
            const { createApiKey } = await client.mutate(CreateApiKeyDocument, {
              name,
              scopes: scopes.split(/[\s,]+/).filter(Boolean),
              // datetime-local is the browser's local time; the server wants an instant.
              expiresAt: expires ? new Date(expires).toISOString() : null,
            });
            setSecret({ name: createApiKey.apiKey.name, value: createApiKey.secret });
            setName('');
            setScopes('');
            setExpires('');
            keys.reload();
          });
        }}
      >
        <h2 id="new-key">New API key</h2>
        <label>
          Name
          <input
            required
            maxLength={100}
            value={name}
            onInput={(event) => setName(event.currentTarget.value)}
          />
        </label>
        <label>
          Scopes, separated by spaces
          <input
            value={scopes}
            aria-describedby="known-scopes"
            onInput={(event) => setScopes(event.currentTarget.value)}
          />
        </label>
        <p class="note" id="known-scopes">
          A key acts only within its scopes (see below what each grants): without any it reaches public data
          and its own account only. A key never has scopes its user lacks.
        </p>
        <label>
          Expires (optional)
          <input
            type="datetime-local"
            value={expires}
            onInput={(event) => setExpires(event.currentTarget.value)}
          />
        </label>
        <button type="submit" disabled={create.busy}>
          Create key
        </button>
        <ProblemNote problem={create.problem} />
        {secret ? (
          <Reveal
            label="API key"
            copyLabel="Copy the API key"
            value={secret.value}
            note={`The whole key of “${secret.name}”, shown only now: copy it to where the program reads it.`}
          />
        ) : null}
      </form>

      <h2>What each scope grants a key</h2>
      <p class="note">
        Only <code>admin</code> lets a key manage users and credentials (create or revoke keys, revoke
        sessions, change a password).
      </p>
      <ProblemNote problem={scopeList.problem} />
      <DataTable
        caption="What each scope grants a key"
        rows={scopeList.data?.scopes ?? []}
        loaded={scopeList}
        empty="No scopes."
        rowKey={(scope) => scope.name}
        columns={[
          { label: 'Scope', cell: (scope) => <code>{scope.name}</code> },
          { label: 'Grants', cell: (scope) => scope.grants },
        ]}
      />

      <h2>Your keys</h2>
      <ProblemNote problem={keys.problem ?? revoke.problem} />
      <DataTable
        caption="Your API keys"
        rows={list}
        loaded={keys}
        empty="No API keys yet. Create one above for each program that calls the gateway; the whole key is shown only once."
        rowKey={(key) => key.id}
        columns={[
          { label: 'Name', cell: (key) => key.name },
          { label: 'Key starts with', cell: (key) => <code>{key.prefix}</code> },
          { label: 'Scopes', cell: (key) => key.scopes.join(' ') },
          { label: 'Created', cell: (key) => <Time value={key.createdAt} /> },
          { label: 'Last used', cell: (key) => <Time value={key.lastUsedAt} /> },
          { label: 'Expires', cell: (key) => (key.expiresAt ? <Time value={key.expiresAt} /> : 'never') },
          {
            label: 'Actions',
            cell: (key) => (
              <RevokeButton
                action={revoke}
                label={`Revoke the key ${key.name}`}
                revoke={async () => {
                  await client.mutate(RevokeApiKeyDocument, { id: key.id });
                  keys.reload();
                }}
              />
            ),
          },
        ]}
      />
      <DeviceApproval onApproved={keys.reload} />
    </>
  );
}

/** Approves or denies a device (RFC 8628) from the code it shows, as the /device page does. */
function DeviceApproval({ onApproved }: { onApproved: () => void }) {
  const [code, setCode] = useState('');
  const [notice, setNotice] = useState('');
  const answer = useAction();
  const send = async (approve: boolean) => {
    setNotice('');
    const userCode = code.trim();
    const done = await answer.run(() =>
      approve
        ? client.mutate(ApproveDeviceDocument, { userCode })
        : client.mutate(DenyDeviceDocument, { userCode }),
    );
    if (!done) return;
    setCode('');
    setNotice(approve ? `Approved ${userCode}: the device receives its key.` : `Denied ${userCode}.`);
    if (approve) onApproved();
  };
  return (
    <form
      class="card"
      aria-labelledby="device-heading"
      onSubmit={(event) => {
        event.preventDefault();
        void send(true);
      }}
    >
      <h2 id="device-heading">Connect a device</h2>
      <label>
        Code shown on the device
        <input
          required
          autoComplete="off"
          autoCapitalize="characters"
          placeholder="XXXX-XXXX"
          value={code}
          onInput={(event) => setCode(event.currentTarget.value)}
        />
      </label>
      <div class="actions">
        <button type="submit" disabled={answer.busy}>
          Approve device
        </button>
        <button type="button" disabled={answer.busy || !code.trim()} onClick={() => send(false)}>
          Deny device
        </button>
      </div>
      <ProblemNote problem={answer.problem} />
      <p role="status">{notice}</p>
    </form>
  );
}
