import {
  csrfOk,
  html,
  PorticoError,
  type RequestContext,
  type Route,
  readForm,
  renderPage,
} from '../../src/index.ts';
import { type LoginLinks, requestLoginLink } from './flows.ts';

/** The /login page's magic-link form posts here; the answer never depends on the address. */
async function requestFromForm(links: LoginLinks, request: Request, context: RequestContext) {
  const form = await readForm(request);
  if (!form || !csrfOk(request, form, context.runtime.env.publicUrl)) {
    return renderPage({
      title: 'Refused',
      body: html`<p class="error">This form expired. <a href="/login">Start again</a>.</p>`,
      status: 403,
    });
  }
  try {
    await requestLoginLink(links, context, form.get('email') ?? '');
  } catch (error) {
    if (!(error instanceof PorticoError)) throw error;
    return renderPage({
      title: 'Sign in',
      body: html`<p class="error" role="alert">${error.message}</p><p><a href="/login">Back</a></p>`,
      status: 400,
    });
  }
  return renderPage({
    title: 'Check your mail',
    body: html`<p role="status">If an account uses this address, a sign-in link is on its way. It works once, for 15 minutes.</p>`,
  });
}

export const loginLinkRoutes = (links: LoginLinks): Route[] => [
  {
    method: 'POST',
    path: '/auth/login-link',
    handler: (request, context) => requestFromForm(links, request, context),
  },
];
