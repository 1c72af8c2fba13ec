import type { EntityMetadata, MetadataStorage } from '@mikro-orm/core';

/**
 * Tables as archives carry them (`portico backup`): rows of JSON values keyed by the entity's
 * property names, whatever the database kind, so an archive of SQLite restores into PostgreSQL and
 * back. A column's kind says how its values are written: dates as ISO 8601 strings, bytes as
 * base64, JSON as JSON, 64-bit integers as numbers (the entities keep them below 2^53).
 */
export type ColumnKind = 'string' | 'number' | 'boolean' | 'date' | 'json' | 'bytes';

export interface TableShape {
  /** The entity's name, for the ORM. */
  readonly entity: string;
  readonly table: string;
  readonly columns: readonly { property: string; column: string; kind: ColumnKind }[];
  /** Property names of the primary key, the order rows are read in. */
  readonly primaryKey: readonly string[];
}

/** A row as an archive holds it. */
export type TableRow = Record<string, unknown>;

const KIND_OF_RUNTIME_TYPE: Record<string, ColumnKind> = {
  string: 'string',
  number: 'number',
  boolean: 'boolean',
  Date: 'date',
  Buffer: 'bytes',
  any: 'json',
  object: 'json',
};

/** The shape of every entity the ORM knows, in table-name order; throws for a column kind archives cannot carry. */
export function tableShapes(metadata: MetadataStorage): TableShape[] {
  const shapes = [...metadata.getAll().values()].map(shapeOf);
  return shapes.sort((a, b) => a.table.localeCompare(b.table));
}

function shapeOf(meta: EntityMetadata): TableShape {
  const columns = Object.values(meta.properties).map((property) => {
    const kind = KIND_OF_RUNTIME_TYPE[property.runtimeType];
    if (property.kind !== 'scalar' || !kind || property.fieldNames.length !== 1) {
      throw new Error(`${meta.className}.${property.name}: archives carry scalar columns only`);
    }
    return { property: property.name, column: property.fieldNames[0]!, kind };
  });
  return { entity: meta.className, table: meta.tableName, columns, primaryKey: meta.primaryKeys };
}

/** A value as a database driver gave it, in the archive's form. */
export function toArchived(kind: ColumnKind, value: unknown): unknown {
  if (value === null || value === undefined) return null;
  switch (kind) {
    case 'date':
      // SQLite keeps epoch milliseconds; PostgreSQL gives a Date.
      return new Date(value as number | Date).toISOString();
    case 'number':
      // PostgreSQL gives 64-bit integers as strings.
      return Number(value);
    case 'boolean':
      return value === true || value === 1;
    case 'json':
      // SQLite keeps the JSON text; PostgreSQL parses it.
      return typeof value === 'string' ? JSON.parse(value) : value;
    case 'bytes':
      return Buffer.from(value as Uint8Array).toString('base64');
    default:
      return value;
  }
}

/** An archived value as the ORM takes it. */
export function fromArchived(kind: ColumnKind, value: unknown): unknown {
  if (value === null || value === undefined) return null;
  switch (kind) {
    case 'date':
      return new Date(value as string);
    case 'bytes':
      return Buffer.from(value as string, 'base64');
    default:
      return value;
  }
}

/**
 * Checks an archived row against its table's shape: every column present with a value of its kind
 * (or null), nothing else. Returns what is wrong, or null.
 */
export function rowProblem(shape: TableShape, row: unknown): string | null {
  if (typeof row !== 'object' || row === null || Array.isArray(row)) return 'a row is not an object';
  const record = row as TableRow;
  for (const key of Object.keys(record)) {
    if (!shape.columns.some((column) => column.property === key)) return `unknown column "${key}"`;
  }
  for (const { property, kind } of shape.columns) {
    const value = record[property];
    if (value === undefined) return `column "${property}" is missing`;
    if (value === null || kind === 'json') continue;
    const fits =
      kind === 'number'
        ? typeof value === 'number' && Number.isFinite(value)
        : kind === 'boolean'
          ? typeof value === 'boolean'
          : kind === 'date'
            ? typeof value === 'string' && !Number.isNaN(Date.parse(value))
            : kind === 'bytes'
              ? typeof value === 'string' && /^[A-Za-z0-9+/]*={0,2}$/.test(value)
              : typeof value === 'string';
    if (!fits) return `column "${property}" holds no ${kind}`;
  }
  return null;
}
