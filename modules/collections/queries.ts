import { type DocumentSelection, type IndexRange, PorticoError } from '../../src/index.ts';
import type { CollectionDefinition, IndexDefinition } from './config.ts';
import { toJson, toJsonObject } from './json.ts';

/** A query's `where`, as given. */
export interface IndexQuery {
  eq?: Record<string, unknown> | null;
  gt?: unknown;
  gte?: unknown;
  lt?: unknown;
  lte?: unknown;
}

/** The declared index by name; INDEX_NOT_DECLARED (naming the declared ones) otherwise. */
export function indexOf(definition: CollectionDefinition, name: string | null | undefined) {
  if (!name) return null;
  const index = definition.indexes.get(name);
  if (!index) {
    const declared = [...definition.indexes.values()].map(
      (item) => `${item.name} (${item.fields.join(', ')})`,
    );
    throw new PorticoError(
      'INDEX_NOT_DECLARED',
      `Collection "${definition.name}" declares no index "${name}"; declared: ${declared.join(', ') || 'none'}. ` +
        `Declare it in the configuration: collections.${definition.name}.indexes.${name} = ["<field>", ...].`,
      { declared: [...definition.indexes.keys()] },
    );
  }
  return index;
}

/** A query's values as JSON (see `toJson`): refused when nested too deep, before anything uses them. */
function queryValues(query: IndexQuery): IndexQuery {
  const values: IndexQuery = {};
  if (query.eq !== undefined && query.eq !== null) values.eq = toJsonObject(query.eq, 'where.eq');
  for (const bound of ['gt', 'gte', 'lt', 'lte'] as const) {
    if (query[bound] !== undefined) values[bound] = toJson(query[bound], `where.${bound}`);
  }
  return values;
}

/**
 * Turns `where` into the part of the index it reads: equality on a prefix of its fields (in any
 * order), then at most one range (a lower and/or an upper bound) on the next field.
 */
export function rangeOf(index: IndexDefinition, query: IndexQuery | null | undefined): IndexRange {
  const where = query && queryValues(query);
  const eq = where?.eq ?? {};
  const eqFields = Object.keys(eq);
  const prefixFields = index.fields.slice(0, eqFields.length);
  if (eqFields.some((field) => !prefixFields.includes(field))) {
    throw new PorticoError(
      'BAD_USER_INPUT',
      `Equality must cover a prefix of the fields of index "${index.name}" (${index.fields.join(', ')}), in any order; got ${eqFields.join(', ')}.`,
    );
  }
  const equal = prefixFields.map((field) => eq[field]);
  if (
    (where?.gt !== undefined && where?.gte !== undefined) ||
    (where?.lt !== undefined && where?.lte !== undefined)
  ) {
    throw new PorticoError(
      'BAD_USER_INPUT',
      'Give at most one lower bound (gt or gte) and one upper bound (lt or lte).',
    );
  }
  const lower =
    where?.gt !== undefined
      ? { value: where.gt, inclusive: false }
      : where?.gte !== undefined
        ? { value: where.gte, inclusive: true }
        : null;
  const upper =
    where?.lt !== undefined
      ? { value: where.lt, inclusive: false }
      : where?.lte !== undefined
        ? { value: where.lte, inclusive: true }
        : null;
  if ((lower || upper) && !index.fields[prefixFields.length]) {
    throw new PorticoError(
      'BAD_USER_INPUT',
      `The equality covers every field of index "${index.name}"; there is no field left for a range.`,
    );
  }
  return { equal, lower, upper };
}

/** The documents a query or count reads: the declared index and its range, or (without) every document. */
export function selectionOf(
  definition: CollectionDefinition,
  options: { index?: string | null; where?: IndexQuery | null; ownerId?: string | null },
): DocumentSelection {
  const index = indexOf(definition, options.index);
  if (!index && options.where && Object.keys(options.where).length > 0) {
    throw new PorticoError('BAD_USER_INPUT', '`where` needs an `index`.');
  }
  return {
    collection: definition.name,
    index,
    range: index ? rangeOf(index, options.where) : null,
    ownerId: options.ownerId,
  };
}
