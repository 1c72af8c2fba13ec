import { PorticoError } from './errors.ts';

export const DEFAULT_PAGE_SIZE = 20;
export const MAX_PAGE_SIZE = 100;

/** `first` as the contract caps it: default 20, at most 100; negative is an error. */
export function pageSize(first: number | null | undefined): number {
  if (first === null || first === undefined) return DEFAULT_PAGE_SIZE;
  if (first < 0) throw new PorticoError('BAD_USER_INPUT', '`first` cannot be negative.', { field: 'first' });
  return Math.min(first, MAX_PAGE_SIZE);
}

/** Cursors are opaque to clients: the sort key, base64url-encoded with a kind prefix. */
export const encodeCursor = (kind: string, key: string) =>
  Buffer.from(`${kind}:${key}`).toString('base64url');

export function decodeCursor(kind: string, cursor: string | null | undefined): string | undefined {
  if (cursor === null || cursor === undefined) return undefined;
  const decoded = Buffer.from(cursor, 'base64url').toString();
  if (!decoded.startsWith(`${kind}:`) || decoded.length === kind.length + 1) {
    throw new PorticoError('BAD_USER_INPUT', 'This cursor is not valid here.', { field: 'after' });
  }
  return decoded.slice(kind.length + 1);
}

export interface Connection<T> {
  edges: { cursor: string; node: T }[];
  pageInfo: {
    hasNextPage: boolean;
    hasPreviousPage: boolean;
    startCursor: string | null;
    endCursor: string | null;
  };
}

/**
 * A keyset-paginated Relay connection: decodes `after` (a cursor of this `kind`), asks `load` for
 * one row more than the page to learn `hasNextPage`, and makes each node's key its cursor.
 */
export async function paginate<T>(
  kind: string,
  args: { first?: number | null; after?: string | null },
  load: (page: { after: string | undefined; limit: number }) => Promise<readonly T[]>,
  keyOf: (node: T) => string,
): Promise<Connection<T>> {
  const first = pageSize(args.first);
  const after = decodeCursor(kind, args.after);
  const rows = await load({ after, limit: first + 1 });
  return toConnection(rows.slice(0, first), {
    hasNextPage: rows.length > first,
    hasPreviousPage: after !== undefined,
    cursor: (node) => encodeCursor(kind, keyOf(node)),
  });
}

/** A Relay connection over one page of nodes fetched with one extra row to learn `hasNextPage`. */
function toConnection<T>(
  nodes: readonly T[],
  {
    hasNextPage,
    hasPreviousPage,
    cursor,
  }: { hasNextPage: boolean; hasPreviousPage: boolean; cursor: (node: T) => string },
): Connection<T> {
  const edges = nodes.map((node) => ({ cursor: cursor(node), node }));
  return {
    edges,
    pageInfo: {
      hasNextPage,
      hasPreviousPage,
      startCursor: edges[0]?.cursor ?? null,
      endCursor: edges.at(-1)?.cursor ?? null,
    },
  };
}
