import { pino } from 'pino';
import type { Mode } from './config.ts';

export type Logger = pino.Logger;

export interface LoggerOptions {
  mode: Mode;
  level?: string;
  /** Where lines go; defaults to stdout (pretty-printed in development). */
  destination?: pino.DestinationStream;
}

/** One JSON line per event in production; readable lines in development. */
export function createLogger({ mode, level, destination }: LoggerOptions): Logger {
  const options: pino.LoggerOptions = {
    level: level ?? process.env.LOG_LEVEL ?? 'info',
    base: undefined,
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
