import {
  csrfFor,
  databasesHealth,
  html,
  type RequestContext,
  type Route,
  redirect,
  renderPage,
} from '../../src/index.ts';
import roles from '../roles/index.ts';
import type { Sessions } from '../sessions/index.ts';

/**
 * What GET /ready answers now, in words. It runs the same probe of both databases (one trivial
 * query each), and says no more than /ready, which is public too.
 */
async function readiness(context: RequestContext) {
  const { system, store } = await databasesHealth(context.runtime.db, context.runtime.store);
  const down = [system.problem && 'the system database', store.problem && 'the store'].filter(Boolean);
  return down.length === 0
    ? html`<span class="ok">Ready now</span>: both databases answer.`
    : html`<span class="error">Not ready now</span>: ${down.join(' and ')} ${down.length > 1 ? 'do' : 'does'} not answer.`;
}

/**
 * The start page at /: what this is and where to go. Admins go straight on to the console; a
 * signed-in user sees who they are and can sign out; anyone else gets the way to sign in.
 */
async function landing(sessions: Sessions, request: Request, context: RequestContext) {
  const { viewer } = context;
  if (roles.api.isAdmin(viewer)) {
    const response = redirect('/admin');
    response.headers.set('cache-control', 'no-store');
    return response;
  }
  const user = sessions.currentSnapshot(viewer)?.user;
  const csrf = csrfFor(request);
  const account = user
    ? html`<div class="account">Signed in as <strong>${user.email}</strong>.<form class="inline" method="post" action="/auth/logout" aria-label="Sign out">${csrf.field}<button type="submit">Sign out</button></form></div>`
    : html`<p><a class="button" href="/login">Sign in</a></p>`;
  return renderPage({
    title: 'Portico',
    className: 'wide',
    body: html`<p>A self-hosted GraphQL gateway: identity (users, sessions, API keys), collections of
JSON documents, blobs and leases, behind one GraphQL API.</p>
${account}
<nav aria-label="Where to go"><ul class="ways">
<li><a href="/admin">Admin console</a><span class="what">Users, data, blobs, leases and the gateway's health. For admins.</span></li>
<li><a href="/graphql">GraphiQL</a><span class="what">Try the GraphQL API in the browser. For admins.</span></li>
<li><a href="/docs">Manual</a><span class="what">How to use, run and extend Portico.</span></li>
<li><a href="/ready">/ready</a><span class="what">Whether it can serve requests, its databases answering (readiness). ${await readiness(context)}</span></li>
<li><a href="/health">/health</a><span class="what">Whether the gateway's process answers (liveness).</span></li>
</ul></nav>`,
    headers: csrf.setCookie ? { 'set-cookie': csrf.setCookie } : undefined,
  });
}

/**
 * / is the console module's: the page is the front door to what this module serves (/admin,
 * /docs), and it may know who is signed in and who is an admin, depending on sessions and roles.
 * The kernel imports no module; sessions could serve it, but would then link to pages it does not serve.
 */
export const landingRoutes = (sessions: Sessions): Route[] => [
  { method: ['GET', 'HEAD'], path: '/', handler: (request, context) => landing(sessions, request, context) },
];
