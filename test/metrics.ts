import parsePrometheusTextFormat, { type Family } from 'parse-prometheus-text-format';

/** The `PORTICO_METRICS_TOKEN` of the tests' gateways. */
export const METRICS_TOKEN = 'test-metrics-token-0123456789abcdef';

/**
 * `GET /metrics` parsed by a real exposition-format parser. parse-prometheus-text-format (1.1.1)
 * folds the series of a histogram with labels into one, losing their labels, counts and sums; so
 * the text is parsed twice: as it is, for the families and their types, and with histograms
 * declared untyped, which the parser then reports line by line (`<name>_bucket`, `_sum`, `_count`)
 * with every label.
 */
export class Scrape {
  readonly families: Family[];
  readonly #lines: Family[];

  constructor(text: string) {
    this.families = parsePrometheusTextFormat(text);
    this.#lines = parsePrometheusTextFormat(text.replace(/^# TYPE (\S+) histogram$/gm, '# TYPE $1 untyped'));
  }

  type(name: string): Family['type'] | undefined {
    return this.families.find((family) => family.name === name)?.type;
  }

  /**
   * The sum over the series of `name` whose labels include `labels`: the value of counters and
   * gauges, the number of observations of histograms (or `name_sum`, `name_bucket` with `le`).
   * 0 when there is none.
   */
  value(name: string, labels: Record<string, string> = {}): number {
    const line = this.type(name) === 'HISTOGRAM' ? `${name}_count` : name;
    return this.#lines
      .filter((family) => family.name === line)
      .flatMap((family) => family.metrics)
      .filter((sample) => Object.entries(labels).every(([key, value]) => sample.labels?.[key] === value))
      .reduce((total, sample) => total + Number(sample.value), 0);
  }

  /** Every label value of every series. */
  labelValues(): string[] {
    return this.#lines.flatMap((family) =>
      family.metrics.flatMap((sample) => Object.values(sample.labels ?? {})),
    );
  }
}

/** Scrapes the gateway at `url` with the tests' token. */
export async function scrape(url: string): Promise<Scrape> {
  const response = await fetch(new URL('/metrics', url), {
    headers: { authorization: `Bearer ${METRICS_TOKEN}` },
  });
  if (response.status !== 200) throw new Error(`GET /metrics answered ${response.status}`);
  return new Scrape(await response.text());
}
