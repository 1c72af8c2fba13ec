import { useEffect, useRef, useState } from 'preact/hooks';
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import {
  AuditEventsDocument,
  GatewayOverviewDocument,
  GatewayOverviewSampledDocument,
  type GatewaySampleFieldsFragment,
  type GatewayStatusFieldsFragment,
} from '../../../../client/index.ts';
import { client } from '../api.ts';
import { useReach } from '../connection.ts';
import { Link } from '../router.tsx';
import { DataTable, Heading, ProblemNote, Time, useLoad, useSubscription } from '../ui.tsx';
import { AUDIT_EVENT_COLUMNS } from './audit.tsx';

type Sample = GatewaySampleFieldsFragment;
type Status = GatewayStatusFieldsFragment;

/** The gateway keeps five minutes of samples; so does the screen. */
const WINDOW_MS = 5 * 60_000;
/** Without a sample for this many intervals, what the screen shows is stale. */
const STALE_INTERVALS = 4;
/** How often the recent audit events are read again. */
const AUDIT_REFRESH_MS = 15_000;
const RECENT_EVENTS = 10;
const CHART_HEIGHT = 170;

const BACKEND_NAMES = { SQLITE: 'SQLite', POSTGRES: 'PostgreSQL', REMOTE: 'Another Portico' } as const;

/** The samples of both, once each (by time), oldest first, within the window of the newest. */
function merge(kept: Sample[], added: Sample[]): Sample[] {
  const byTime = new Map<string, Sample>();
  for (const sample of [...kept, ...added]) byTime.set(sample.at, sample);
  const samples = [...byTime.values()].sort((a, b) => Date.parse(a.at) - Date.parse(b.at));
  const newest = Date.parse(samples.at(-1)?.at ?? '');
  return samples.filter((sample) => Date.parse(sample.at) > newest - WINDOW_MS);
}

const rate = (value: number) => `${value < 10 ? value.toFixed(1) : Math.round(value)}/s`;
const millis = (value: number) => `${value < 10 ? value.toFixed(1) : Math.round(value)} ms`;
const count = (value: number) => String(Math.round(value));
const toMillis = (seconds: number | null | undefined) => (seconds == null ? null : seconds * 1000);

interface Series {
  label: string;
  /** A custom property of styles.css, read when the chart is drawn (light and dark differ). */
  color: '--chart-a' | '--chart-b' | '--chart-c';
  value: (sample: Sample) => number | null;
}

interface ChartSpec {
  id: string;
  title: string;
  /** Said when no sample has a value yet. */
  empty: string;
  format: (value: number) => string;
  series: Series[];
}

const CHARTS: ChartSpec[] = [
  {
    id: 'traffic',
    title: 'Requests and errors per second',
    empty: 'No samples yet.',
    format: rate,
    series: [
      { label: 'Requests', color: '--chart-a', value: (sample) => sample.requestsPerSecond },
      { label: 'GraphQL errors', color: '--chart-c', value: (sample) => sample.graphqlErrorsPerSecond },
      { label: 'HTTP 5xx', color: '--chart-b', value: (sample) => sample.serverErrorsPerSecond },
    ],
  },
  {
    id: 'latency',
    title: 'Latency to response headers',
    empty: 'No requests answered in these minutes.',
    format: millis,
    series: [
      { label: 'p50', color: '--chart-a', value: (sample) => toMillis(sample.latencyP50Seconds) },
      { label: 'p99', color: '--chart-b', value: (sample) => toMillis(sample.latencyP99Seconds) },
    ],
  },
  {
    id: 'subscriptions',
    title: 'Open subscriptions',
    empty: 'No samples yet.',
    format: count,
    series: [
      { label: 'WebSocket', color: '--chart-a', value: (sample) => sample.webSocketSubscriptions },
      { label: 'SSE', color: '--chart-b', value: (sample) => sample.sseSubscriptions },
    ],
  },
  {
    id: 'pubsub',
    title: 'Pub/sub lag from other instances',
    empty: 'No events from other instances in these minutes (a single instance, or a quiet one).',
    format: millis,
    series: [{ label: 'p99', color: '--chart-a', value: (sample) => toMillis(sample.pubsubLagP99Seconds) }],
  },
];

/** True while the page is in dark mode: the charts' canvas colours follow. */
function useDarkMode() {
  const [dark, setDark] = useState(() => matchMedia('(prefers-color-scheme: dark)').matches);
  useEffect(() => {
    const query = matchMedia('(prefers-color-scheme: dark)');
    const change = () => setDark(query.matches);
    query.addEventListener('change', change);
    return () => query.removeEventListener('change', change);
  }, []);
  return dark;
}

/** uPlot's axis font, and a canvas of our own to measure labels in (measuring in the chart's would upset its font cache). */
const AXIS_FONT = '12px system-ui, -apple-system, "Segoe UI", Roboto, sans-serif';
const measuring = document.createElement('canvas').getContext('2d');

/** The y axis as wide as its widest label, plus its ticks and gap. */
function yAxisWidth(_plot: uPlot, labels: string[] | null) {
  if (!measuring) return 64;
  measuring.font = AXIS_FONT;
  const widest = Math.max(0, ...(labels ?? []).map((label) => measuring.measureText(label).width));
  return Math.ceil(widest) + 20;
}

const cssColor = (name: string) => getComputedStyle(document.documentElement).getPropertyValue(name).trim();

/** uPlot's options for a chart: no legend of its own (the figure's is readable text), a y axis from 0. */
function plotOptions(
  spec: ChartSpec,
  width: number,
  onCursor: (index: number | null) => void,
): uPlot.Options {
  const muted = cssColor('--muted');
  const line = cssColor('--line');
  const axis = {
    font: AXIS_FONT,
    stroke: muted,
    grid: { stroke: line, width: 1 },
    ticks: { stroke: line, width: 1 },
  };
  return {
    width,
    height: CHART_HEIGHT,
    legend: { show: false },
    cursor: { y: false, points: { size: 6 } },
    scales: { y: { range: (_plot, _min, max) => [0, max > 0 ? max * 1.15 : 1] } },
    axes: [axis, { ...axis, size: yAxisWidth, values: (_plot, splits) => splits.map(spec.format) }],
    series: [
      {},
      ...spec.series.map((series, index) => {
        const color = cssColor(series.color);
        return {
          label: series.label,
          stroke: color,
          width: 2,
          // The first series is the chart's main one: a light fill under it.
          fill: index === 0 && /^#[0-9a-f]{6}$/i.test(color) ? `${color}1f` : undefined,
          points: { show: false },
        };
      }),
    ],
    hooks: { setCursor: [(plot) => onCursor(plot.cursor.idx ?? null)] },
  };
}

/**
 * uPlot's columns: the times in seconds, then each series; and the sample behind each point (for
 * the legend under the pointer). A gap (the gateway away) breaks the lines: a point of nulls.
 */
function columns(spec: ChartSpec, samples: Sample[], intervalMs: number) {
  const points: (Sample | null)[] = [];
  const times: number[] = [];
  const values: (number | null)[][] = spec.series.map(() => []);
  let previous: number | undefined;
  for (const sample of samples) {
    const at = Date.parse(sample.at);
    if (previous !== undefined && at - previous > STALE_INTERVALS * intervalMs) {
      points.push(null);
      times.push((previous + intervalMs) / 1000);
      for (const column of values) column.push(null);
    }
    points.push(sample);
    times.push(at / 1000);
    spec.series.forEach((series, index) => {
      values[index]!.push(series.value(sample));
    });
    previous = at;
  }
  return { points, data: [times, ...values] as uPlot.AlignedData };
}

/**
 * One chart of the samples, drawn by uPlot, with a legend that says each series' latest value
 * (or the one under the pointer). `data-points` and each value's `data-latest` let a test see
 * the chart move.
 */
function Chart({ spec, samples, intervalMs }: { spec: ChartSpec; samples: Sample[]; intervalMs: number }) {
  const box = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);
  const [cursor, setCursor] = useState<number | null>(null);
  const dark = useDarkMode();
  const { points, data } = columns(spec, samples, intervalMs);
  const latest = useRef(data);
  latest.current = data;

  useEffect(() => {
    const element = box.current!;
    const chart = new uPlot(plotOptions(spec, element.clientWidth, setCursor), latest.current, element);
    plot.current = chart;
    const resize = new ResizeObserver(() =>
      chart.setSize({ width: element.clientWidth, height: CHART_HEIGHT }),
    );
    resize.observe(element);
    return () => {
      resize.disconnect();
      chart.destroy();
      plot.current = null;
    };
  }, [spec, dark]);
  useEffect(() => {
    plot.current?.setData(data);
  }, [samples]);

  const last = samples.at(-1);
  // The sample under the pointer, else the newest.
  const pointed = cursor === null ? null : points[cursor];
  const shown = pointed ?? last;
  const titleId = `chart-${spec.id}`;
  return (
    <figure class="chart card" aria-labelledby={titleId} data-chart={spec.id} data-points={samples.length}>
      <figcaption>
        <h2 id={titleId}>{spec.title}</h2>
        <ul class="legend">
          {spec.series.map((series) => {
            const value = shown ? series.value(shown) : null;
            return (
              <li
                key={series.label}
                data-series={series.label}
                data-latest={last ? (series.value(last) ?? '') : ''}
              >
                <span class={`swatch ${series.color.slice(2)}`} aria-hidden="true" />
                {series.label} <strong>{value == null ? '–' : spec.format(value)}</strong>
              </li>
            );
          })}
          {samples.every((sample) => spec.series.every((series) => series.value(sample) == null)) ? (
            <li class="note">{spec.empty}</li>
          ) : null}
          {pointed ? (
            <li class="note">
              at <Time value={pointed.at} seconds />
            </li>
          ) : null}
        </ul>
      </figcaption>
      <div class="plot" ref={box} aria-hidden="true" />
    </figure>
  );
}

function StatusTile({
  name,
  database,
  stale,
  link,
}: {
  name: string;
  database: Status['systemDatabase'] | undefined;
  stale: boolean;
  link?: string;
}) {
  const state = !database ? 'unknown' : database.up ? 'up' : 'down';
  return (
    <li class={`tile ${state}${stale ? ' stale' : ''}`} data-tile={name}>
      <span class="tile-name">{link ? <Link to={link}>{name}</Link> : name}</span>
      <strong class="tile-state">
        <span class="dot" aria-hidden="true" />
        {state === 'unknown' ? 'Unknown' : state === 'up' ? 'Answering' : 'Unavailable'}
      </strong>
      <span class="note">{database ? BACKEND_NAMES[database.backend] : '…'}</span>
      {database?.reason ? <span class="tile-reason">{database.reason}</span> : null}
    </li>
  );
}

/**
 * The first screen: this gateway's health at a glance. The last five minutes of samples come
 * from `gatewayOverview`, each new one from `gatewayOverviewSampled`. When the gateway goes away
 * the screen keeps what it last heard, says since when, and fills the gap once it is back.
 */
export function OverviewScreen() {
  const overview = useLoad(async () => (await client.query(GatewayOverviewDocument)).gatewayOverview, []);
  const [samples, setSamples] = useState<Sample[]>([]);
  const [status, setStatus] = useState<Status | undefined>(undefined);
  const [heardAt, setHeardAt] = useState<number | null>(null);
  const [now, setNow] = useState(Date.now);
  const intervalMs = (overview.data?.intervalSeconds ?? 1) * 1000;
  const cadence = intervalMs === 1000 ? 'second' : `${intervalMs / 1000} seconds`;

  useEffect(() => {
    if (!overview.data) return;
    setSamples((kept) => merge(kept, overview.data!.samples));
    setStatus(overview.data.status);
    setHeardAt(Date.now());
  }, [overview.data]);

  const live = useSubscription(
    () => client.subscribe(GatewayOverviewSampledDocument),
    ({ gatewayOverviewSampled: { sample, status } }) => {
      const last = samples.at(-1);
      // Back after a gap (a dropped connection, a restart): the gateway's history fills it.
      if (last && Date.parse(sample.at) - Date.parse(last.at) > STALE_INTERVALS * intervalMs)
        overview.reload();
      setSamples((kept) => merge(kept, [sample]));
      setStatus(status);
      setHeardAt(Date.now());
    },
    [],
  );

  useEffect(() => {
    const timer = setInterval(() => setNow(Date.now()), 1000);
    return () => clearInterval(timer);
  }, []);
  // Stale as soon as the console knows the gateway is away, or when samples stop coming anyway.
  const away = useReach().reach === 'away';
  const stale = heardAt !== null && (away || now - heardAt > STALE_INTERVALS * intervalMs);

  const [auditRound, setAuditRound] = useState(0);
  useEffect(() => {
    const timer = setInterval(() => setAuditRound((round) => round + 1), AUDIT_REFRESH_MS);
    return () => clearInterval(timer);
  }, []);
  const audit = useLoad(
    async () => (await client.query(AuditEventsDocument, { first: RECENT_EVENTS })).auditEvents,
    [auditRound],
  );

  return (
    <>
      <Heading title="Overview">Overview</Heading>
      <p class="note">
        This gateway’s own counters, sampled every {cadence}, over the last five minutes. Another instance
        behind the same address keeps its own.
      </p>
      <ProblemNote problem={overview.problem ?? live} />
      <p role="status" class={stale ? 'problem' : 'visually-hidden'}>
        {stale ? (
          <>
            No news from the gateway since <Time value={new Date(heardAt!).toISOString()} seconds />: showing
            what it last said while the console reconnects.
          </>
        ) : heardAt !== null ? (
          'Live.'
        ) : (
          ''
        )}
      </p>
      <ul class="tiles" aria-label="Status">
        <StatusTile name="System database" database={status?.systemDatabase} stale={stale} />
        <StatusTile name="Store" database={status?.store} stale={stale} link="/store" />
      </ul>
      <div class={`charts${stale ? ' stale' : ''}`}>
        {CHARTS.map((spec) => (
          <Chart key={spec.id} spec={spec} samples={samples} intervalMs={intervalMs} />
        ))}
      </div>
      <h2>Recent audit events</h2>
      <ProblemNote problem={audit.problem} />
      <DataTable
        caption="Recent audit events"
        rows={audit.data?.edges.map((edge) => edge.node) ?? []}
        loaded={audit}
        empty="No events yet."
        rowKey={(event) => event.id}
        columns={AUDIT_EVENT_COLUMNS}
      />
      <p>
        <Link to="/audit">The whole audit log</Link>
      </p>
    </>
  );
}
