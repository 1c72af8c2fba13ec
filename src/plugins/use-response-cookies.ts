import type { Plugin } from 'graphql-yoga';
import type { ResponseControl } from '../context.ts';

export interface ResponseCookiesOptions {
  /** What the request's handlers set on its response (`context.response`), once its context is made. */
  responseOf(request: Request): ResponseControl | undefined;
}

/** Adds the headers (cookies, mostly) that resolvers and route handlers set to the response. */
export function useResponseCookies({ responseOf }: ResponseCookiesOptions): Plugin {
  return {
    onResponse({ request, response }) {
      const control = responseOf(request);
      if (!control) return;
      for (const [name, value] of control.headers) response.headers.append(name, value);
    },
  };
}
