import { EnvelopArmorPlugin } from '@escape.tech/graphql-armor';
import type { Plugin } from 'graphql-yoga';
import { useVariableCost } from './use-variable-cost.ts';

/**
 * docs/http.md, "Limits". The cost is graphql-armor's (`first` multiplies a selection at
 * face value): the typed client's richest list operation costs about 15 000 at the contract's
 * largest page (100), which must pass; `first: 1000` on it costs ten times that.
 */
export const GRAPHQL_LIMITS = { depth: 10, aliases: 15, tokens: 2000, directives: 50, cost: 20_000 } as const;

export interface OperationLimitsOptions {
  /** Whether refusals name the limit (development mode). Default: false. */
  exposeLimits?: boolean;
}

/**
 * The limits of {@link GRAPHQL_LIMITS} on every operation, before any resolver runs: graphql-armor's
 * in parsing and validation, and its cost again with page sizes given by variables (useVariableCost).
 */
export function useOperationLimits({ exposeLimits = false }: OperationLimitsOptions = {}): Plugin {
  const costLimit = { maxCost: GRAPHQL_LIMITS.cost, exposeLimits };
  return {
    onPluginInit({ addPlugin }) {
      addPlugin(
        EnvelopArmorPlugin({
          maxDepth: { n: GRAPHQL_LIMITS.depth, exposeLimits },
          // `__typename` is allowed by default: its aliases would be free.
          maxAliases: { n: GRAPHQL_LIMITS.aliases, exposeLimits, allowList: [] },
          maxTokens: { n: GRAPHQL_LIMITS.tokens, exposeLimits },
          maxDirectives: { n: GRAPHQL_LIMITS.directives, exposeLimits },
          costLimit,
          // useSuggestionMask covers what this masks and more, and spares admins.
          blockFieldSuggestion: { enabled: false },
        }),
      );
      addPlugin(useVariableCost(costLimit));
    },
  };
}
