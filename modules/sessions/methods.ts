import {
  PorticoError,
  type PorticoModule,
  type RequestContext,
  type Runtime,
  type SafeHtml,
} from '../../src/index.ts';

/**
 * A login method. A module provides one as `api.loginMethod`; `methods` in the
 * configuration enables it. `logIn` serves `logInWith(method, credentials)`; methods
 * that work through links or pages (magic-link, device) may leave it out.
 */
export interface LoginMethod {
  id: string;
  /** Checks the credentials; returns the user to sign in, or throws (INVALID_CREDENTIALS, ...). */
  logIn?: (context: RequestContext, credentials: Record<string, unknown>) => Promise<{ userId: string }>;
  /** Its section of the /login page: a form carrying `csrf` (hidden fields: the CSRF token, and `next` when the page has one). */
  loginForm?: (csrf: SafeHtml) => SafeHtml;
}

/** The login methods the composed modules provide, by id. */
export function providedMethods(modules: readonly PorticoModule[]): Map<string, LoginMethod> {
  const methods = new Map<string, LoginMethod>();
  for (const module of modules) {
    const method = (module.api as { loginMethod?: LoginMethod } | undefined)?.loginMethod;
    if (method) methods.set(method.id, method);
  }
  return methods;
}

const enabledCache = new WeakMap<Runtime, LoginMethod[]>();

/** The configured methods that some module provides, in configuration order. */
export function enabledMethods(runtime: Runtime): LoginMethod[] {
  let enabled = enabledCache.get(runtime);
  if (!enabled) {
    const provided = providedMethods(runtime.modules);
    enabled = runtime.settings.methods.flatMap((id) => provided.get(id) ?? []);
    enabledCache.set(runtime, enabled);
  }
  return enabled;
}

export function requireMethod(context: RequestContext, id: string): LoginMethod {
  const method = enabledMethods(context.runtime).find((candidate) => candidate.id === id);
  if (!method) throw new PorticoError('FORBIDDEN', `The "${id}" login method is not enabled.`);
  return method;
}

export const isMethodEnabled = (runtime: Runtime, id: string) =>
  enabledMethods(runtime).some((method) => method.id === id);
