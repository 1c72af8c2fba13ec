import { NoSchemaIntrospectionCustomRule } from 'graphql';
import type { Plugin } from 'graphql-yoga';

export interface IntrospectionGateOptions {
  /**
   * Whether the request may introspect the schema (admins, or anyone in development mode).
   * Validation runs before Yoga builds the GraphQL context: this reads what is known by then.
   */
  opensTo(request: Request): boolean;
}

/** Introspection (`__schema`, `__type`) only for the requests `opensTo` lets in: a validation error for others. */
export function useIntrospectionGate({ opensTo }: IntrospectionGateOptions): Plugin<{ request: Request }> {
  return {
    onValidate({ addValidationRule, context }) {
      if (!opensTo(context.request)) addValidationRule(NoSchemaIntrospectionCustomRule);
    },
  };
}
