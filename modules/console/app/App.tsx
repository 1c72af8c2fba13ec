import { useEffect } from 'preact/hooks';
import { LogOutDocument, SessionRevokedDocument, ViewerDocument } from '../../../client/index.ts';
import { client, leave, signInAgain } from './api.ts';
import { useReach } from './connection.ts';
import { Link, navigate, useLocation } from './router.tsx';
import { AuditScreen } from './screens/audit.tsx';
import { BlobsScreen } from './screens/blobs.tsx';
import { CollectionScreen, DataScreen, DocumentScreen } from './screens/data.tsx';
import { InvitesScreen } from './screens/invites.tsx';
import { KeysScreen } from './screens/keys.tsx';
import { LeasesScreen } from './screens/leases.tsx';
import { OverviewScreen } from './screens/overview.tsx';
import { SessionsScreen } from './screens/sessions.tsx';
import { StoreScreen } from './screens/store.tsx';
import { UserScreen, UsersScreen } from './screens/users.tsx';
import { ProblemNote, useAction, useLoad, useSubscription } from './ui.tsx';

const SECTIONS = [
  { path: 'overview', label: 'Overview' },
  { path: 'users', label: 'Users' },
  { path: 'invites', label: 'Invites' },
  { path: 'sessions', label: 'Sessions' },
  { path: 'keys', label: 'API keys & devices' },
  { path: 'data', label: 'Data' },
  { path: 'blobs', label: 'Blobs' },
  { path: 'leases', label: 'Leases' },
  { path: 'store', label: 'Store' },
  { path: 'audit', label: 'Audit log' },
] as const;

/** The screen for a path below /admin. */
function Screen({ segments, query }: ReturnType<typeof useLocation>) {
  const [section, first, second] = segments;
  switch (section) {
    case 'overview':
      return <OverviewScreen />;
    case 'users':
      return first ? <UserScreen id={first} /> : <UsersScreen />;
    case 'invites':
      return <InvitesScreen />;
    case 'sessions':
      return <SessionsScreen />;
    case 'keys':
      return <KeysScreen />;
    case 'data':
      if (first && second) return <DocumentScreen collection={first} id={second === 'new' ? null : second} />;
      return first ? <CollectionScreen name={first} /> : <DataScreen />;
    case 'blobs':
      return <BlobsScreen />;
    case 'leases':
      return <LeasesScreen />;
    case 'store':
      return <StoreScreen />;
    case 'audit':
      return <AuditScreen userId={query.get('user')} />;
    default:
      return <NotFound />;
  }
}

function NotFound() {
  return (
    <>
      <h1>Not found</h1>
      <p>
        There is no such screen. <Link to="/overview">Go to the Overview</Link>.
      </p>
    </>
  );
}

/**
 * Says, on every screen, when the gateway stops answering and when it answers again (the
 * screen's data is then read again). The live region stays in place, empty while all is well,
 * so that screen readers announce what comes into it.
 */
function GatewayNotice() {
  const { reach } = useReach();
  return (
    <div class="gateway-notice" role="status" aria-live="polite">
      {reach === 'away' ? (
        <p class="away">The gateway is not answering; retrying…</p>
      ) : reach === 'back' ? (
        <p class="back">The gateway is back.</p>
      ) : null}
    </div>
  );
}

/**
 * Watches this browser's own session: when an admin revokes it (or it expires) the server
 * pushes `sessionRevoked`, and the console leaves for the login page at once, without waiting
 * for the next request to fail.
 */
function useRevocationWatch() {
  return useSubscription(
    () => client.subscribe(SessionRevokedDocument),
    ({ sessionRevoked }) => {
      // Signing out (here or in another tab) needs no explanation; anything else does.
      if (sessionRevoked.reason === 'LOGOUT') leave('/login');
      else signInAgain(sessionRevoked.reason === 'EXPIRED' ? 'expired' : 'revoked');
    },
    [],
  );
}

export function App() {
  const where = useLocation();
  const viewer = useLoad(() => client.query(ViewerDocument, {}), []);
  const logOut = useAction();
  const watch = useRevocationWatch();
  useEffect(() => {
    // The gateway's health comes first.
    if (where.segments.length === 0) navigate('/overview', { replace: true });
  }, [where]);
  const section = where.segments[0];
  const email = viewer.data?.viewer.user?.email;

  return (
    <div class="layout">
      <a class="skip" href="#main">
        Skip to content
      </a>
      <header class="top">
        <p class="brand">Portico admin</p>
        <div class="who">
          {email ? <span>Signed in as {email}</span> : null}
          <button
            type="button"
            disabled={logOut.busy}
            onClick={() =>
              logOut.run(async () => {
                await client.mutate(LogOutDocument, {});
                leave('/login');
              })
            }
          >
            Sign out
          </button>
        </div>
      </header>
      <nav class="sections" aria-label="Sections">
        <ul>
          {SECTIONS.map(({ path, label }) => (
            <li key={path}>
              <Link to={`/${path}`} aria-current={section === path ? 'page' : undefined}>
                {label}
              </Link>
            </li>
          ))}
          <li>
            <a href="/graphql">GraphiQL</a>
          </li>
        </ul>
      </nav>
      <main id="main">
        <GatewayNotice />
        <ProblemNote problem={viewer.problem ?? logOut.problem ?? watch} />
        {where.segments.length > 0 ? <Screen {...where} /> : null}
      </main>
    </div>
  );
}
