import { trace } from '@opentelemetry/api';
import { pino } from 'pino';
import type { Mode } from './config.ts';
import { currentRequestId } from './telemetry/request-scope.ts';

export type Logger = pino.Logger;

export interface LoggerOptions {
  mode: Mode;
  level?: string;
  /** Where lines go; defaults to stdout (pretty-printed in development). */
  destination?: pino.DestinationStream;
}

const NO_CORRELATION = {};

/**
 * What ties a line to its request and trace: `requestId` inside a request (`inRequestScope`),
 * `traceId` and `spanId` while a recording OpenTelemetry span is active. Outside both, two
 * lookups and the shared empty object, which `withCorrelation` leaves out.
 */
function correlation(): object {
  const requestId = currentRequestId();
  const span = trace.getActiveSpan();
  if (!span?.isRecording()) return requestId === undefined ? NO_CORRELATION : { requestId };
  const { traceId, spanId } = span.spanContext();
  return requestId === undefined ? { traceId, spanId } : { requestId, traceId, spanId };
}

/** Pino's merge of the line's own fields (which win) into the mixin's, without touching the shared empty one. */
const withCorrelation = (fields: object, correlated: object) =>
  correlated === NO_CORRELATION ? fields : Object.assign(correlated, fields);

/**
 * One JSON line per event in production; readable lines in development. Each line carries the
 * request id and trace of the work that wrote it (`correlation`).
 */
export function createLogger({ mode, level, destination }: LoggerOptions): Logger {
  const options: pino.LoggerOptions = {
    level: level ?? process.env.LOG_LEVEL ?? 'info',
    base: undefined,
    mixin: correlation,
    mixinMergeStrategy: withCorrelation,
    redact: {
      paths: ['req.headers.cookie', 'req.headers.authorization', '*.password', '*.token'],
      remove: true,
    },
  };
  if (destination) return pino(options, destination);
  if (mode === 'development' && process.stdout.isTTY) {
    return pino({
      ...options,
      transport: { target: 'pino-pretty', options: { translateTime: 'SYS:HH:MM:ss' } },
    });
  }
  return pino(options);
}
