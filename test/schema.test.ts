import { readFile } from 'node:fs/promises';
import { type Change, CriticalityLevel, diff } from '@graphql-inspector/core';
import SchemaBuilder from '@pothos/core';
import RelayPlugin from '@pothos/plugin-relay';
import ScopeAuthPlugin from '@pothos/plugin-scope-auth';
import {
  buildSchema as buildSdl,
  type GraphQLField,
  type GraphQLSchema,
  isInterfaceType,
  isObjectType,
} from 'graphql';
import { describe, expect, it } from 'vitest';
import { builtinModules } from '../modules/index.ts';
import { anonymousViewer, type RequestContext } from '../src/index.ts';
import { buildSchema, printSortedSchema } from '../src/schema.ts';

const root = new URL('../', import.meta.url);
const schema = buildSchema(builtinModules);

/**
 * Contract coordinates that later issues add. The contract diff tolerates their
 * removal (and nothing else); each must still be missing, so the table shrinks
 * as the issues land: delete an entry in the change that adds it.
 */
const PENDING: Record<string, string> = {
  ...issue(6, 'realtime', ['SessionEvent', 'SessionEventKind', 'Subscription.sessionEvents']),
};

function issue(number: number, title: string, coordinates: string[]): Record<string, string> {
  return Object.fromEntries(coordinates.map((coordinate) => [coordinate, `issue ${number}: ${title}`]));
}

/** The only changes a pending coordinate excuses: the type or the field is not there yet. */
const PENDING_CHANGE_TYPES = new Set<string>(['TYPE_REMOVED', 'FIELD_REMOVED']);

const isPending = (change: Change) =>
  change.path !== undefined && PENDING_CHANGE_TYPES.has(change.type) && change.path in PENDING;

/** Whether `Type` or `Type.field` exists in a schema. */
function hasCoordinate(target: GraphQLSchema, coordinate: string): boolean {
  const [typeName = '', fieldName, ...rest] = coordinate.split('.');
  const type = target.getType(typeName);
  if (!type || rest.length > 0) return false;
  if (fieldName === undefined) return true;
  return 'getFields' in type && fieldName in type.getFields();
}

const describeChanges = (changes: Change[]) =>
  changes.map((change) => `  ${change.type} ${change.path ?? '(no path)'}: ${change.message}`).join('\n');

describe('schema/schema.graphql', () => {
  it('is what the built-in modules print (run `npm run print-schema` after changing the schema)', async () => {
    const committed = await readFile(new URL('schema/schema.graphql', root), 'utf8');
    expect(
      printSortedSchema(schema),
      'schema/schema.graphql is stale: run `npm run print-schema` and commit the result',
    ).toBe(committed);
  });
});

describe('the public contract (schema/contract.graphql)', () => {
  it('has no breaking change against our schema, except the pending table', async () => {
    const contract = buildSdl(await readFile(new URL('schema/contract.graphql', root), 'utf8'));
    const changes = await diff(contract, schema);
    const breaking = changes.filter((change) => change.criticality.level === CriticalityLevel.Breaking);
    const unexpected = breaking.filter((change) => !isPending(change));
    if (unexpected.length > 0) {
      expect.fail(
        `${unexpected.length} breaking change(s) against schema/contract.graphql:\n${describeChanges(unexpected)}`,
      );
    }
  });

  it('lists only coordinates that the contract has and our schema still lacks', async () => {
    const contract = buildSdl(await readFile(new URL('schema/contract.graphql', root), 'utf8'));
    const unknown = Object.keys(PENDING).filter((coordinate) => !hasCoordinate(contract, coordinate));
    expect(unknown, 'PENDING names coordinates the contract does not have').toEqual([]);
    const landed = Object.entries(PENDING)
      .filter(([coordinate]) => hasCoordinate(schema, coordinate))
      .map(([coordinate, by]) => `${coordinate} (${by})`);
    expect(landed, 'these have landed: remove them from PENDING in test/schema.test.ts').toEqual([]);
  });

  it('matches pending entries by exact coordinate', () => {
    const change = (type: string, path: string) =>
      ({ type, path, message: '', meta: {}, criticality: { level: CriticalityLevel.Breaking } }) as Change;
    expect(isPending(change('FIELD_REMOVED', 'Subscription.sessionEvents'))).toBe(true);
    expect(isPending(change('TYPE_REMOVED', 'SessionEvent'))).toBe(true);
    // A field that exists but differs from the contract is a real break, even when pending.
    expect(isPending(change('FIELD_ARGUMENT_REMOVED', 'Subscription.sessionEvents.userId'))).toBe(false);
    expect(isPending(change('FIELD_TYPE_CHANGED', 'Subscription.sessionEvents'))).toBe(false);
    // No substring or prefix matching.
    expect(isPending(change('FIELD_REMOVED', 'Subscription.sessionEventsCount'))).toBe(false);
    expect(isPending(change('TYPE_REMOVED', 'SessionEventX'))).toBe(false);
    expect(isPending(change('FIELD_REMOVED', 'User.apiKeys'))).toBe(false);
  });
});

// ---------------------------------------------------------------- scope rules

/** Pothos keeps a field's or a type's options (with `authScopes`) in `extensions.pothosOptions`. */
const authScopesOf = (extensions: unknown): unknown =>
  (extensions as { pothosOptions?: { authScopes?: unknown } } | null | undefined)?.pothosOptions?.authScopes;

/** A rule is a function, or a map with at least one scope that is not switched off. */
function isRule(rule: unknown): boolean {
  if (typeof rule === 'function') return true;
  if (rule === null || typeof rule !== 'object') return false;
  return Object.values(rule).some((value) => value !== false && value !== undefined && value !== null);
}

/** Every root field without a rule (`Type.field`), and every Node type without a type-level rule. */
function unguarded(target: GraphQLSchema): string[] {
  const problems: string[] = [];
  for (const type of [target.getQueryType(), target.getMutationType(), target.getSubscriptionType()]) {
    if (!type) continue;
    for (const field of Object.values(type.getFields())) {
      if (!isRule(authScopesOf(field.extensions))) problems.push(`${type.name}.${field.name}`);
    }
  }
  for (const type of Object.values(target.getTypeMap())) {
    if (!isObjectType(type) && !isInterfaceType(type)) continue;
    if (!type.getInterfaces().some((implemented) => implemented.name === 'Node')) continue;
    if (!isRule(authScopesOf(type.extensions))) problems.push(type.name);
  }
  return problems.sort();
}

/** The scope names that rules of the schema use in maps (functions cannot be inspected). */
function namedScopes(target: GraphQLSchema): Map<string, string> {
  const named = new Map<string, string>();
  const collect = (rule: unknown, where: string) => {
    if (rule === null || typeof rule !== 'object') return;
    for (const [name, value] of Object.entries(rule)) {
      if (name === '$any' || name === '$all') collect(value, where);
      else if (name !== '$granted' && !named.has(name)) named.set(name, where);
    }
  };
  for (const type of Object.values(target.getTypeMap())) {
    if (type.name.startsWith('__') || (!isObjectType(type) && !isInterfaceType(type))) continue;
    collect(authScopesOf(type.extensions), type.name);
    for (const field of Object.values(type.getFields()) as GraphQLField<unknown, unknown>[]) {
      collect(authScopesOf(field.extensions), `${type.name}.${field.name}`);
    }
  }
  return named;
}

describe('scope rules', () => {
  it('guard every root field and every Node type of the built schema', () => {
    expect(unguarded(schema)).toEqual([]);
  });

  it('see the relay `node` field and the Node types (the walk looks where Pothos keeps rules)', () => {
    expect(authScopesOf(schema.getQueryType()?.getFields().node?.extensions)).toEqual({ public: true });
    const nodeTypes = Object.values(schema.getTypeMap())
      .filter((type) => isObjectType(type) && type.getInterfaces().some((i) => i.name === 'Node'))
      .map((type) => type.name);
    expect(nodeTypes).toEqual(expect.arrayContaining(['Session', 'User']));
  });

  it('name only scopes that some module provides', () => {
    const context = { viewer: anonymousViewer } as unknown as RequestContext;
    const provided = new Set(['public']);
    for (const module of builtinModules) {
      for (const name of Object.keys(module.authScopes?.(context) ?? {})) provided.add(name);
    }
    const missing = [...namedScopes(schema)]
      .filter(([name]) => !provided.has(name))
      .map(([name, where]) => `${name} (used by ${where})`);
    expect(missing).toEqual([]);
  });

  it('catches an unguarded root field and an unguarded Node type (negative control)', () => {
    const tiny = new SchemaBuilder<{ AuthScopes: { public: boolean; admin: boolean } }>({
      plugins: [ScopeAuthPlugin, RelayPlugin],
      scopeAuth: { authScopes: () => ({ public: true, admin: false }) },
      relay: { nodesQueryOptions: false },
    });
    const Guarded = tiny.objectRef<{ id: string }>('Guarded');
    tiny.node(Guarded, {
      id: { resolve: (thing) => thing.id },
      authScopes: { admin: true },
      loadOne: (id) => ({ id }),
      fields: () => ({}),
    });
    const Open = tiny.objectRef<{ id: string }>('Open');
    tiny.node(Open, {
      id: { resolve: (thing) => thing.id },
      loadOne: (id) => ({ id }),
      fields: () => ({}),
    });
    tiny.queryType({
      fields: (t) => ({
        open: t.string({ resolve: () => 'anyone' }),
        marked: t.string({ authScopes: { public: true }, resolve: () => 'anyone' }),
        guarded: t.string({ authScopes: { admin: true }, resolve: () => 'admins' }),
        switchedOff: t.string({ authScopes: { admin: false }, resolve: () => 'anyone' }),
        byFunction: t.string({ authScopes: () => true, resolve: () => 'anyone' }),
      }),
    });
    tiny.mutationType({
      fields: (t) => ({ write: t.boolean({ resolve: () => true }) }),
    });
    expect(unguarded(tiny.toSchema())).toEqual([
      'Mutation.write',
      'Open',
      'Query.node',
      'Query.open',
      'Query.switchedOff',
    ]);
    expect([...namedScopes(tiny.toSchema()).keys()].sort()).toEqual(['admin', 'public']);
  });
});
