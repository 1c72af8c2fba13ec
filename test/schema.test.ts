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
  it('is a copy of the shared contract', async () => {
    const shared = await readFile(new URL('../shared/contract/schema.graphql', root), 'utf8').catch(
      () => null,
    );
    if (shared === null) return; // a checkout without the shared folder beside it
    expect(await readFile(new URL('schema/contract.graphql', root), 'utf8')).toBe(shared);
  });

  it('has no breaking change against our schema', async () => {
    const contract = buildSdl(await readFile(new URL('schema/contract.graphql', root), 'utf8'));
    const changes = await diff(contract, schema);
    const breaking = changes.filter((change) => change.criticality.level === CriticalityLevel.Breaking);
    if (breaking.length > 0) {
      expect.fail(
        `${breaking.length} breaking change(s) against schema/contract.graphql:\n${describeChanges(breaking)}`,
      );
    }
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
