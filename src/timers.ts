/** The time, as the gateway sees it: real by default, controllable in tests. */
export interface Clock {
  /** Milliseconds since the epoch. */
  now(): number;
}

export const systemClock: Clock = { now: () => Date.now() };

/**
 * Runs `task` every `intervalMs`, never twice at once: a slow run (a slow database) delays the
 * next instead of piling runs up. `run()` runs it now, or joins the run in progress. `stop()`
 * ends the timer and resolves once the run in progress is over (a shutdown closes the databases
 * next). The timer does not keep the process alive; `task` handles its own errors.
 */
export function every(intervalMs: number, task: () => Promise<void>) {
  let running: Promise<void> | null = null;
  const run = () => {
    running ??= task().finally(() => {
      running = null;
    });
    return running;
  };
  const timer = setInterval(run, intervalMs);
  timer.unref();
  return {
    run,
    async stop() {
      clearInterval(timer);
      await running;
    },
  };
}
