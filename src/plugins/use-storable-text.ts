import {
  BREAK,
  type ExecutionArgs,
  type GraphQLInputType,
  getArgumentValues,
  getNullableType,
  getOperationAST,
  getVariableValues,
  isInputObjectType,
  isListType,
  isScalarType,
  TypeInfo,
  visit,
  visitWithTypeInfo,
} from 'graphql';
import type { Plugin } from 'graphql-yoga';
import { type PorticoError, unstorableText } from '../errors.ts';
import { isStorableText } from '../text.ts';

/** The path of the first String or ID inside `value` (of `type`) that is not storable text. */
function unstorablePlace(type: GraphQLInputType, value: unknown, path: string): string | null {
  if (value === null || value === undefined) return null;
  const nullable = getNullableType(type);
  if (isListType(nullable)) {
    const items = Array.isArray(value) ? value : [value];
    for (const [index, item] of items.entries()) {
      const place = unstorablePlace(nullable.ofType, item, `${path}.${index}`);
      if (place) return place;
    }
    return null;
  }
  if (isInputObjectType(nullable)) {
    for (const field of Object.values(nullable.getFields())) {
      const item = (value as Record<string, unknown>)[field.name];
      const place = unstorablePlace(field.type, item, `${path}.${field.name}`);
      if (place) return place;
    }
    return null;
  }
  // JSON and JSONObject are document data, kept as given (docs/http.md, "Text input"); other scalars are no text.
  const text = isScalarType(nullable) && (nullable.name === 'String' || nullable.name === 'ID');
  return text && typeof value === 'string' && !isStorableText(value) ? path : null;
}

/** True when some string inside `value` is not storable text; iterative, as variables nest freely. */
function holdsUnstorableText(value: unknown): boolean {
  const pending = [value];
  while (pending.length > 0) {
    const next = pending.pop();
    if (typeof next === 'string') {
      if (!isStorableText(next)) return true;
    } else if (next !== null && typeof next === 'object') {
      for (const item of Object.values(next)) pending.push(item);
    }
  }
  return false;
}

/**
 * The common case costs one scan: no unstorable text among the variables, and a query text with
 * neither such text nor a `\u` escape that could spell it. Only otherwise is the document walked.
 */
function mayHoldUnstorableText({ document, variableValues }: ExecutionArgs): boolean {
  const body = document.loc?.source.body;
  if (body === undefined || body.includes('\\u') || !isStorableText(body)) return true;
  return holdsUnstorableText(variableValues);
}

/** The first argument of the operation, at any depth, whose String or ID text is not storable. */
function unstorableArgument({ schema, document, operationName, variableValues }: ExecutionArgs) {
  const operation = getOperationAST(document, operationName);
  if (!operation) return null;
  const variables = getVariableValues(schema, operation.variableDefinitions ?? [], variableValues ?? {});
  // Variables of the wrong type are the executor's to report.
  if (variables.errors) return null;
  const typeInfo = new TypeInfo(schema);
  let found: string | null = null;
  visit(
    document,
    visitWithTypeInfo(typeInfo, {
      OperationDefinition: (node) => (node === operation ? undefined : false),
      Field(node) {
        const field = typeInfo.getFieldDef();
        if (!field) return;
        let values: Record<string, unknown>;
        try {
          values = getArgumentValues(field, node, variables.coerced);
        } catch {
          // A fragment this operation does not use may name variables it lacks.
          return;
        }
        for (const argument of field.args) {
          found = unstorablePlace(argument.type, values[argument.name], argument.name);
          if (found) return BREAK;
        }
      },
    }),
  );
  return found;
}

/**
 * Refuses, before any resolver runs, String and ID arguments holding text no database stores
 * (docs/http.md: BAD_USER_INPUT outside document data, never INTERNAL_SERVER_ERROR). Every
 * transport runs it: HTTP, SSE and WebSocket operations all go through Yoga's execute.
 */
export function useStorableText(): Plugin {
  const refuse = (args: ExecutionArgs, stop: (result: { errors: PorticoError[] }) => void) => {
    const argument = mayHoldUnstorableText(args) ? unstorableArgument(args) : null;
    if (argument) stop({ errors: [unstorableText(argument)] });
  };
  return {
    onExecute: ({ args, setResultAndStopExecution }) => refuse(args, setResultAndStopExecution),
    onSubscribe: ({ args, setResultAndStopExecution }) => refuse(args, setResultAndStopExecution),
  };
}
