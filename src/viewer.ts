/** Who is making a request. Built by a module's credential resolver; anonymous otherwise. */
export interface Viewer {
  readonly userId: string | null;
  /** Effective scopes (roles' scopes, narrowed to an API key's). */
  readonly scopes: ReadonlySet<string>;
  /** The session behind a cookie credential. */
  readonly sessionId: string | null;
  /** The API key behind a bearer credential. */
  readonly apiKeyId: string | null;
  /**
   * What the request may act on when it acts through an API key: the key's scopes, narrowed to
   * what its user may still do (least privilege); null for every other credential.
   */
  readonly keyScopes: ReadonlySet<string> | null;
}

export const anonymousViewer: Viewer = Object.freeze({
  userId: null,
  scopes: new Set<string>(),
  sessionId: null,
  apiKeyId: null,
  keyScopes: null,
});
