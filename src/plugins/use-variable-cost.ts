import { type CostLimitOptions, costLimitRule } from '@escape.tech/graphql-armor-cost-limit';
import {
  type DocumentNode,
  type ExecutionArgs,
  type ExecutionResult,
  getOperationAST,
  Kind,
  type ValueNode,
  validate,
  visit,
} from 'graphql';
import type { Plugin } from 'graphql-yoga';

/** The arguments graphql-armor's cost limit multiplies a selection by. */
const PAGE_SIZE_ARGUMENTS = new Set(['first', 'last']);

/**
 * graphql-armor's cost limit runs in validation, where variables are unknown, so it counts
 * `first: $n` as 1 whatever `n` is. This checks the same cost again just before execution, with
 * every `first`/`last` given by a variable replaced by its value: `first: $n` with n = 100 then
 * costs what `first: 100` costs. It runs per request, after Yoga's validation cache.
 */
export function useVariableCost(options: CostLimitOptions): Plugin {
  const check = (args: ExecutionArgs, refuse: (result: ExecutionResult) => void) => {
    const document = withPageSizes(args);
    if (!document) return;
    const rule = costLimitRule({
      ...options,
      propagateOnRejection: false,
      onReject: [(context, error) => context?.reportError(error)],
    });
    const errors = validate(args.schema, document, [rule]);
    if (errors.length > 0) refuse({ errors });
  };
  return {
    onExecute: ({ args, setResultAndStopExecution }) => check(args, setResultAndStopExecution),
    onSubscribe: ({ args, setResultAndStopExecution }) => check(args, setResultAndStopExecution),
  };
}

/**
 * The operation that runs and the fragments, with each page size given by a variable written in
 * as the variable's integer value (or its default); null when no page size comes from a variable.
 */
function withPageSizes({ document, operationName, variableValues }: ExecutionArgs): DocumentNode | null {
  if (!pagedByVariable(document)) return null;
  const operation = getOperationAST(document, operationName);
  if (!operation?.variableDefinitions?.length) return null;
  const values = new Map<string, ValueNode>();
  for (const { variable, defaultValue } of operation.variableDefinitions) {
    const name = variable.name.value;
    const given = variableValues && Object.hasOwn(variableValues, name) ? variableValues[name] : undefined;
    // Anything but an integer fails coercion later; exact digits, so 1e21 is not read as 1.
    if (typeof given === 'number' && Number.isInteger(given)) {
      values.set(name, { kind: Kind.INT, value: BigInt(given).toString() });
    } else if (given === undefined && defaultValue) {
      values.set(name, defaultValue);
    }
  }
  let substituted = false;
  const fragments = document.definitions.filter((definition) => definition.kind === Kind.FRAGMENT_DEFINITION);
  const rewritten = visit(
    { kind: Kind.DOCUMENT, definitions: [operation, ...fragments] },
    {
      Argument(argument) {
        if (!PAGE_SIZE_ARGUMENTS.has(argument.name.value) || argument.value.kind !== Kind.VARIABLE) return;
        const value = values.get(argument.value.name.value);
        if (!value) return;
        substituted = true;
        return { ...argument, value };
      },
    },
  );
  return substituted ? rewritten : null;
}

/** Per parsed document (Yoga keeps them cached): whether any page size in it is a variable. */
const pagedByVariableCache = new WeakMap<DocumentNode, boolean>();

function pagedByVariable(document: DocumentNode): boolean {
  let paged = pagedByVariableCache.get(document);
  if (paged === undefined) {
    paged = false;
    visit(document, {
      Argument(argument) {
        if (PAGE_SIZE_ARGUMENTS.has(argument.name.value) && argument.value.kind === Kind.VARIABLE)
          paged = true;
      },
    });
    pagedByVariableCache.set(document, paged);
  }
  return paged;
}
