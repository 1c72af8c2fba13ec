import type { IncomingMessage } from 'node:http';
import { BlockList, isIP } from 'node:net';

/**
 * `PORTICO_TRUSTED_PROXIES` (docs/configuration.md): comma-separated addresses or CIDRs, IPv4 or IPv6. Null
 * when unset; problems are added to `issues`.
 */
export function parseTrustedProxies(value: string | undefined, issues: string[]): BlockList | null {
  const entries = (value ?? '')
    .split(',')
    .map((entry) => entry.trim())
    .filter(Boolean);
  if (entries.length === 0) return null;
  const trusted = new BlockList();
  for (const entry of entries) {
    const [address = '', prefix, extra] = entry.split('/');
    const family = isIP(address);
    const bits = prefix === undefined ? null : /^\d{1,3}$/.test(prefix) ? Number(prefix) : Number.NaN;
    const maxBits = family === 6 ? 128 : 32;
    if (family === 0 || extra !== undefined || (bits !== null && !(bits <= maxBits))) {
      issues.push(`PORTICO_TRUSTED_PROXIES: "${entry}" is not an IP address or CIDR`);
      continue;
    }
    const type = family === 6 ? 'ipv6' : 'ipv4';
    if (bits === null) trusted.addAddress(address, type);
    else trusted.addSubnet(address, bits, type);
  }
  return trusted;
}

/** An IPv4-mapped IPv6 address (`::ffff:1.2.3.4`, a dual-stack socket's view) as plain IPv4. */
const unmapped = (address: string) => /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address)?.[1] ?? address;

/** One `X-Forwarded-For` hop without a port or brackets (`[::1]:80`, `1.2.3.4:80`); null if no address. */
function hopAddress(hop: string): string | null {
  const bracketed = /^\[([^\]]+)\](?::\d+)?$/.exec(hop);
  const withPort = /^(\d+\.\d+\.\d+\.\d+):\d+$/.exec(hop);
  const address = bracketed?.[1] ?? withPort?.[1] ?? hop;
  return isIP(address) ? unmapped(address) : null;
}

const isTrusted = (trusted: BlockList, address: string) =>
  trusted.check(address, isIP(address) === 6 ? 'ipv6' : 'ipv4');

/**
 * The client's address for rate limits and audit: the socket's peer, unless the peer is a
 * trusted proxy; then the right-most `X-Forwarded-For` hop that is not a trusted proxy (hops
 * further left are whatever the client wrote). Without trusted proxies the header is ignored.
 */
export function clientAddress(req: IncomingMessage | undefined, trusted: BlockList | null): string | null {
  const peer = req?.socket?.remoteAddress;
  if (!peer) return null;
  let client = unmapped(peer);
  if (!trusted || !isTrusted(trusted, client)) return client;
  const header = req.headers['x-forwarded-for'];
  const hops = (Array.isArray(header) ? header.join(',') : (header ?? ''))
    .split(',')
    .map((hop) => hop.trim());
  for (let i = hops.length - 1; i >= 0; i--) {
    const hop = hopAddress(hops[i]!);
    // A trusted proxy appends real addresses: anything else marks where the client's own text begins.
    if (!hop) break;
    client = hop;
    if (!isTrusted(trusted, hop)) break;
  }
  return client;
}
