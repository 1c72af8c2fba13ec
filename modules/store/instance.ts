import { randomUUID } from 'node:crypto';
import {
  every,
  type ModuleInstance,
  PorticoError,
  type RequestContext,
  type Runtime,
  type StoreAbout,
} from '../../src/index.ts';
import audit from '../audit/index.ts';
import { storeProtocolRoutes } from './routes.ts';
import { EventJournal, readChoice, saveChoice } from './service.ts';

declare module '../../src/pubsub.ts' {
  interface Topics {
    /** An admin changed the store: the other instances apply the choice kept in the system database. */
    'store.changed': { by: string; action: 'switch' | 'reconnect' };
  }
}

/** How often a chosen store that could not be opened at start is tried again. */
const RETRY_MS = 5000;

/** What `storeBackend` answers: the backend as it describes itself, and whether it answers now. */
export interface StoreState extends StoreAbout {
  problem: string | null;
}

/**
 * The store module in one gateway: applies the store an admin chose (at start, and when another
 * instance announces a change), and carries out the admins' switch, reset and reconnect.
 */
export class StoreAdmin implements ModuleInstance {
  readonly #runtime: Runtime;
  /** Tells this instance's own announcements apart from the others'. */
  readonly #id = randomUUID();
  #stops: (() => Promise<void> | void)[] = [];
  #retry: ReturnType<typeof every> | undefined;
  /** The store's recent events, for the gateways this one serves as a data server. */
  readonly #journal = new EventJournal();
  /** The store protocol (docs/store-protocol.md): this gateway as another's data server. */
  readonly routes = storeProtocolRoutes(this.#journal);

  constructor(runtime: Runtime) {
    this.#runtime = runtime;
  }

  async start() {
    const { pubsub, log } = this.#runtime;
    this.#stops.push(
      this.#journal.listen(this.#runtime.store.events),
      pubsub.on('store.changed', (event) => {
        if (event.by === this.#id) return;
        const applied =
          event.action === 'reconnect' ? this.#runtime.storeSwitch.reconnect() : this.#applyChoice();
        applied.catch((error: unknown) =>
          log.error({ err: error }, 'applying the store another instance chose failed'),
        );
      }),
      () => this.#retry?.stop(),
    );
    await this.#applyChoice();
  }

  async stop() {
    for (const stop of this.#stops.splice(0)) await stop();
  }

  /**
   * For commands, which run without starting modules: makes the store an admin chose current, as
   * the gateway would at start; throws when it cannot be opened (a command does not wait for it).
   * DATABASE_URL's remote store serves only once a start has checked the data server: a command
   * opens it anew, checked, as a reconnect does.
   */
  async useChosenStore() {
    const runtime = this.#runtime;
    const url = await readChoice(runtime.db.system.em.fork(), runtime.env);
    if (url !== runtime.storeSwitch.chosen) await runtime.storeSwitch.to(url);
    else if (url === null && runtime.store.about.kind === 'remote') await runtime.storeSwitch.reconnect();
  }

  /**
   * After a restore: the kept choice is the store the data went to (the one current here), not the
   * one the archive brought along (its source's switch), which would send the next start elsewhere.
   */
  async keepCurrentChoice() {
    const runtime = this.#runtime;
    await saveChoice(runtime.db.system.em.fork(), runtime.env, runtime.storeSwitch.chosen);
  }

  async state(): Promise<StoreState> {
    const { store } = this.#runtime;
    return { ...store.about, problem: await store.problem() };
  }

  /** Admin: the store at `url` on every instance. Nothing changes when it cannot be opened here. */
  switchTo(context: RequestContext, url: string): Promise<StoreState> {
    return this.#change(context, url, 'STORE_SWITCHED');
  }

  /** Admin: DATABASE_URL's store on every instance. */
  reset(context: RequestContext): Promise<StoreState> {
    return this.#change(context, null, 'STORE_RESET');
  }

  async #change(context: RequestContext, url: string | null, kind: 'STORE_SWITCHED' | 'STORE_RESET') {
    // A chosen store being retried must not come back over the admin's new choice.
    const retrying = this.#retry ? this.#runtime.storeSwitch.chosen : null;
    await this.#stopRetrying();
    let about: StoreAbout;
    try {
      about = await this.#runtime.storeSwitch.to(url);
    } catch (error) {
      if (retrying !== null) this.#retryUntilOpen(retrying);
      throw error;
    }
    await saveChoice(context.db.system, this.#runtime.env, url);
    await this.#announce(context, 'switch', kind, about);
    return this.state();
  }

  /** Admin: new connections to the current store on every instance. */
  async reconnect(context: RequestContext): Promise<StoreState> {
    if (this.#retry)
      throw new PorticoError(
        'SERVICE_UNAVAILABLE',
        'The chosen store cannot be opened yet; it is being retried.',
      );
    const about = await this.#runtime.storeSwitch.reconnect();
    await this.#announce(context, 'reconnect', 'STORE_RECONNECTED', about);
    return this.state();
  }

  async #announce(
    context: RequestContext,
    action: 'switch' | 'reconnect',
    kind: 'STORE_SWITCHED' | 'STORE_RESET' | 'STORE_RECONNECTED',
    about: StoreAbout,
  ) {
    this.#runtime.pubsub.publish('store.changed', { by: this.#id, action });
    await audit.api.record(context, { kind, detail: { kind: about.kind, url: about.url } });
  }

  /**
   * Makes the kept choice current here. One that cannot be opened makes the store unavailable (never
   * DATABASE_URL's store in its place), and is tried again until it opens.
   */
  async #applyChoice() {
    const runtime = this.#runtime;
    const url = await readChoice(runtime.db.system.em.fork(), runtime.env);
    // Already here (answering, or being retried): nothing to do.
    if (url === runtime.storeSwitch.chosen) return;
    await this.#stopRetrying();
    if (url === null) {
      await runtime.storeSwitch.to(null);
      return;
    }
    try {
      await runtime.storeSwitch.to(url);
    } catch (error) {
      const reason = error instanceof Error ? error.message : String(error);
      runtime.storeSwitch.unreachable(url, reason);
      runtime.log.error(
        { err: error },
        `the store an admin chose cannot be opened; retrying every ${RETRY_MS / 1000} s`,
      );
      this.#retryUntilOpen(url);
    }
  }

  /** Tries `url` every RETRY_MS until it opens; the store answers SERVICE_UNAVAILABLE meanwhile. */
  #retryUntilOpen(url: string) {
    const runtime = this.#runtime;
    const retry = every(RETRY_MS, async () => {
      try {
        await runtime.storeSwitch.to(url);
        runtime.log.info('the store an admin chose answers: store operations are served');
        this.#retry = undefined;
        void retry.stop();
      } catch {
        // Still away: the next round tries again.
      }
    });
    this.#retry = retry;
  }

  async #stopRetrying() {
    const retry = this.#retry;
    this.#retry = undefined;
    await retry?.stop();
  }
}
