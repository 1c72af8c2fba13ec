import {
  csrfFor,
  csrfOk,
  html,
  PorticoError,
  type RequestContext,
  type Route,
  readForm,
  redirect,
  renderPage,
  type SafeHtml,
  type Viewer,
} from '../../src/index.ts';
import roles from '../roles/index.ts';
import * as flows from './flows.ts';
import type { Sessions } from './instance.ts';
import { findUsableToken } from './service.ts';

const errorLine = (error: string | undefined) =>
  error ? html`<p class="error" role="alert">${error}</p>` : '';

/**
 * Where to go after signing in (`next`): a path of this site only. Anything the URL parser
 * would take to another origin (`//host`, `/\host`, `https://…`) is dropped, so the login page
 * never lends itself to an open redirect.
 */
export function localPath(value: string | null | undefined): string | null {
  if (!value?.startsWith('/')) return null;
  const base = 'http://portico.invalid';
  const url = URL.parse(value, base);
  return url?.origin === base ? `${url.pathname}${url.search}${url.hash}` : null;
}

/**
 * Where a signed-in person goes when no `next` says otherwise: the admin console for an
 * admin, the start page for everyone else. Both are the console module's routes, which depends
 * on this one: they are named here by path only.
 */
const homeOf = (viewer: Viewer) =>
  roles.api.isAdmin(viewer)
    ? { path: '/admin', label: 'Open the admin console' }
    : { path: '/', label: 'Go to the start page' };

/** Why a page sent the person here (`/login?reason=…`), e.g. the console when its session ends. */
const REASONS: Record<string, string> = {
  revoked: 'Your session was revoked. Sign in again to continue.',
  expired: 'Your session expired. Sign in again to continue.',
  ended: 'Your session ended. Sign in again to continue.',
};

/** The login page: a form per enabled method that has one, or who is signed in. */
function loginPage(
  sessions: Sessions,
  request: Request,
  context: RequestContext,
  notice?: { error?: string; info?: string; status?: number; next?: string | null },
) {
  const query = new URL(request.url).searchParams;
  const next = notice ? (notice.next ?? null) : localPath(query.get('next'));
  const info = notice?.info ?? REASONS[query.get('reason') ?? ''];
  const csrf = csrfFor(request);
  // Every form of the page carries `next` beside the CSRF token; the password form honours it.
  const hidden = html`${csrf.field}${next ? html`<input type="hidden" name="next" value="${next}">` : ''}`;
  const user = sessions.currentSnapshot(context.viewer)?.user;
  const home = homeOf(context.viewer);
  // A visible "or" between the methods' forms: each is a way in, none is a step of another.
  const forms = sessions.signIn.enabled.flatMap((method) => method.loginForm?.(hidden) ?? []);
  const body = user
    ? html`<p>Signed in as <strong>${user.email}</strong>.</p>
<p>${next ? html`<a href="${next}">Continue to ${next}</a>` : html`<a href="${home.path}">${home.label}</a>`}</p>
<form method="post" action="/auth/logout">${csrf.field}<button type="submit">Sign out</button></form>`
    : html`${errorLine(notice?.error)}${info ? html`<p role="status">${info}</p>` : ''}
${forms.map((form, i) => html`${i > 0 ? html`<p class="or">or</p>` : ''}${form}`)}`;
  return renderPage({
    title: user ? 'Portico' : 'Sign in',
    body,
    status: notice?.status ?? 200,
    headers: csrf.setCookie ? { 'set-cookie': csrf.setCookie } : undefined,
  });
}

const forbidden = () =>
  renderPage({
    title: 'Refused',
    body: html`<p class="error">This form expired or came from another site. <a href="/login">Start again</a>.</p>`,
    status: 403,
  });

/** Reads a posted form and checks its CSRF token; null (answer 403) when either fails. */
async function postedForm(request: Request, context: RequestContext) {
  const form = await readForm(request);
  return form && csrfOk(request, form, context.runtime.env.publicUrl) ? form : null;
}

const messageOf = (error: unknown) => {
  if (error instanceof PorticoError) return error.message;
  throw error;
};

async function passwordLogin(sessions: Sessions, request: Request, context: RequestContext) {
  const form = await postedForm(request, context);
  if (!form) return forbidden();
  const next = localPath(form.get('next'));
  try {
    await flows.logIn(sessions, context, form.get('email') ?? '', form.get('password') ?? '');
    return redirect(next ?? homeOf(context.viewer).path);
  } catch (error) {
    return loginPage(sessions, request, context, { error: messageOf(error), status: 400, next });
  }
}

async function logout(sessions: Sessions, request: Request, context: RequestContext) {
  if (!(await postedForm(request, context))) return forbidden();
  await flows.logOut(sessions, context);
  return redirect('/login');
}

const invalidLink = () =>
  renderPage({
    title: 'Link not valid',
    body: html`<p>This link is invalid, expired or already used. <a href="/login">Sign in</a> or ask for a new one.</p>`,
    status: 400,
  });

/**
 * The landing page of login, invite and bootstrap links. A GET or HEAD never
 * consumes the token (mail scanners follow links): the form POSTs it.
 */
async function redeemPage(
  request: Request,
  context: RequestContext,
  refused?: { error: string; name: string | null; email: string | null },
) {
  const token = new URL(request.url).searchParams.get('token') ?? '';
  const row = await findUsableToken(context.db.system, token, new Date(context.runtime.clock.now()));
  if (!row) return invalidLink();
  const csrf = csrfFor(request);
  const password = html`<label>Password (8 characters or more)
<input name="password" type="password" autocomplete="new-password" minlength="8" maxlength="256" required></label>`;
  // After a refusal the form comes back with what was typed, the password aside.
  const name = html`<label>Name <input name="name" autocomplete="name" maxlength="200" value="${refused?.name ?? ''}"></label>`;
  let title: string;
  let fields: SafeHtml | string;
  if (row.purpose === 'bootstrap') {
    title = 'Create the first admin';
    fields = html`<label>Email <input name="email" type="email" autocomplete="email" required value="${refused?.email ?? ''}"></label>${name}${password}`;
  } else if (row.purpose === 'invite') {
    title = 'Accept your invite';
    fields = html`<p>You were invited as <strong>${row.email ?? ''}</strong>.</p>${name}${password}`;
  } else {
    title = 'Sign in';
    fields = '';
  }
  return renderPage({
    title,
    body: html`${errorLine(refused?.error)}<form method="post" action="/auth/redeem">
${csrf.field}<input type="hidden" name="token" value="${token}">${fields}
<button type="submit">${row.purpose === 'invite' ? 'Create my account' : 'Continue'}</button></form>`,
    status: refused ? 400 : 200,
    headers: csrf.setCookie ? { 'set-cookie': csrf.setCookie } : undefined,
  });
}

async function redeemForm(sessions: Sessions, request: Request, context: RequestContext) {
  const form = await postedForm(request, context);
  if (!form) return forbidden();
  const token = form.get('token') ?? '';
  const profile = { email: form.get('email'), name: form.get('name'), password: form.get('password') };
  try {
    await flows.redeemToken(sessions, context, token, profile);
    return redirect(homeOf(context.viewer).path);
  } catch (error) {
    if (error instanceof PorticoError && error.code === 'INVALID_TOKEN') return invalidLink();
    const url = new URL(request.url);
    url.searchParams.set('token', token);
    return redeemPage(new Request(url, { headers: request.headers }), context, {
      error: messageOf(error),
      name: profile.name,
      email: profile.email,
    });
  }
}

/** /login, /auth/logout and /auth/redeem, served by the gateway's sessions. */
export const sessionRoutes = (sessions: Sessions): Route[] => [
  { method: 'GET', path: '/login', handler: (request, context) => loginPage(sessions, request, context) },
  {
    method: 'POST',
    path: '/login',
    handler: (request, context) => passwordLogin(sessions, request, context),
  },
  { method: 'POST', path: '/auth/logout', handler: (request, context) => logout(sessions, request, context) },
  {
    method: ['GET', 'HEAD'],
    path: '/auth/redeem',
    handler: (request, context) => redeemPage(request, context),
  },
  {
    method: 'POST',
    path: '/auth/redeem',
    handler: (request, context) => redeemForm(sessions, request, context),
  },
];
