import cliProgress from 'cli-progress';

/** Progress bars on a terminal (cli-progress); nothing at all when standard error is not one (CI, cron, a pipe). */
export interface Progress {
  /** A bar; returns what moves it to a value. */
  bar(label: string, total: number, unit: 'rows' | 'bytes'): (value: number) => void;
  stop(): void;
}

export function progressOn(stream: NodeJS.WriteStream = process.stderr): Progress {
  if (!stream.isTTY) return { bar: () => () => {}, stop() {} };
  const bars = new cliProgress.MultiBar(
    { stream, hideCursor: true, format: '{label} |{bar}| {percentage}% {amount}', autopadding: true },
    cliProgress.Presets.shades_classic,
  );
  return {
    bar(label, total, unit) {
      const amount = (value: number) =>
        unit === 'bytes' ? `${formatBytes(value)} of ${formatBytes(total)}` : `${value} of ${total} rows`;
      // Nothing to do is done: a full bar, not an empty one.
      const bar = bars.create(Math.max(total, 1), total === 0 ? 1 : 0, {
        label: label.padEnd(12),
        amount: amount(0),
      });
      return (value) => bar.update(Math.min(value, Math.max(total, 1)), { amount: amount(value) });
    },
    stop: () => bars.stop(),
  };
}

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];

/** 1536 → "1.5 KiB". */
export function formatBytes(bytes: number): string {
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < UNITS.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${unit === 0 ? value : value.toFixed(1)} ${UNITS[unit]}`;
}
