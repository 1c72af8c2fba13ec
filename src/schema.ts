import { type GraphQLSchema, lexicographicSortSchema, printSchema } from 'graphql';
import { builder } from './builder.ts';
import type { PorticoModule } from './module.ts';

let built: { names: string; schema: GraphQLSchema } | undefined;

/**
 * Registers every module's GraphQL contribution once and builds the schema.
 * Pothos types are global to the process, so one process serves one module set.
 */
export function buildSchema(modules: readonly PorticoModule[]): GraphQLSchema {
  const names = modules.map((module) => module.name).join(',');
  if (built) {
    if (built.names !== names) {
      throw new Error(`This process already built a schema for modules [${built.names}], not [${names}]`);
    }
    return built.schema;
  }
  for (const module of modules) {
    module.graphql?.(builder, (context) => context.runtime.instances.of(module));
  }
  const schema = lexicographicSortSchema(builder.toSchema());
  built = { names, schema };
  return schema;
}

/** The schema as committed in schema/schema.graphql: sorted SDL. */
export const printSortedSchema = (schema: GraphQLSchema) =>
  `${printSchema(lexicographicSortSchema(schema))}\n`;
