import { once } from 'node:events';
import { connect as createConnectionTo, createServer, type Server, type Socket } from 'node:net';

/**
 * A TCP proxy in front of PostgreSQL that the test can cut and restore. Set `port` before the
 * first `up()` to have a database URL that refuses connections until then.
 */
export class Outage {
  readonly #sockets = new Set<Socket>();
  #server: Server | undefined;
  port = 0;
  readonly target: { host: string; port: number };
  constructor(target: { host: string; port: number }) {
    this.target = target;
  }

  /** A proxy, not yet up, for the PostgreSQL server of `databaseUrl`. */
  static for(databaseUrl: string): Outage {
    const direct = new URL(databaseUrl);
    return new Outage({ host: direct.hostname, port: Number(direct.port || 5432) });
  }

  /** A proxy, up, in front of the PostgreSQL of `databaseUrl`, and that database's URL through it. */
  static async before(databaseUrl: string): Promise<{ outage: Outage; url: string }> {
    const outage = Outage.for(databaseUrl);
    await outage.up();
    return { outage, url: outage.urlOf(databaseUrl) };
  }

  /** `databaseUrl` through this proxy (its port set or known). */
  urlOf(databaseUrl: string): string {
    const proxied = new URL(databaseUrl);
    proxied.port = String(this.port);
    return proxied.toString();
  }

  async up() {
    this.#server = createServer((client) => {
      const upstream = createConnectionTo(this.target);
      for (const socket of [client, upstream]) {
        this.#sockets.add(socket);
        socket.on('close', () => this.#sockets.delete(socket));
        socket.on('error', () => socket.destroy());
      }
      client.pipe(upstream).pipe(client);
    });
    this.#server.listen(this.port, '127.0.0.1');
    await once(this.#server, 'listening');
    this.port = (this.#server.address() as { port: number }).port;
  }

  async down() {
    for (const socket of this.#sockets) socket.destroy();
    const server = this.#server;
    this.#server = undefined;
    if (server) await new Promise((resolve) => server.close(resolve));
  }
}
