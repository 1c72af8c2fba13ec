/**
 * A place where one module lets others plug in (the sessions module's login methods, token
 * purposes, "user disabled" hooks). The offering module creates the point and names it in its
 * `api`; a contributing module lists `point.with(value)` in its instance's `contributes`, so its
 * `index.ts` says what it adds; the offering module reads them with `runtime.contributions(point)`
 * once every module is set up.
 */
export class ExtensionPoint<T> {
  /** Names the point in errors (e.g. "sessions: token purpose"). */
  readonly description: string;

  constructor(description: string) {
    this.description = description;
  }

  /** This module's contribution to the point. */
  with(value: T): Contribution<T> {
    return { point: this, value };
  }
}

export interface Contribution<T = unknown> {
  readonly point: ExtensionPoint<T>;
  readonly value: T;
}
