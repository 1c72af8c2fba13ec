/**
 * The gateway's tracing settings, read from the standard OpenTelemetry variables of its environment
 * (docs/observability.md, "Traces"). Kept apart from the SDK, which is loaded only when tracing is on.
 */

/** The OTLP encodings over HTTP; gRPC is not offered. */
export type OtlpProtocol = 'http/protobuf' | 'http/json';

export const SAMPLERS = [
  'parentbased_always_on',
  'parentbased_always_off',
  'parentbased_traceidratio',
  'always_on',
  'always_off',
  'traceidratio',
] as const;

export type SamplerName = (typeof SAMPLERS)[number];

export interface TracingSettings {
  /** Where spans are POSTed: `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` as is, or `OTEL_EXPORTER_OTLP_ENDPOINT` + `/v1/traces`. */
  url: string;
  protocol: OtlpProtocol;
  /** Sent with every export (a collector's API key, say). */
  headers: Record<string, string>;
  timeoutMs: number | undefined;
  compression: 'gzip' | 'none' | undefined;
  serviceName: string;
  /** `OTEL_RESOURCE_ATTRIBUTES`, `service.name` aside (`serviceName` holds it). */
  resourceAttributes: Record<string, string>;
  sampler: SamplerName;
  /** The ratio of the `traceidratio` samplers, 0 to 1. */
  samplerRatio: number;
  /** The batch span processor's `OTEL_BSP_*` settings; undefined keeps the SDK's default. */
  batch: {
    scheduledDelayMillis: number | undefined;
    exportTimeoutMillis: number | undefined;
    maxQueueSize: number | undefined;
    maxExportBatchSize: number | undefined;
  };
}

type Variables = Record<string, string | undefined>;

/**
 * The tracing settings of `env`, or null when tracing is off: no OTLP endpoint is set, or
 * `OTEL_TRACES_EXPORTER=none`, or `OTEL_SDK_DISABLED=true`. Each unusable value adds an issue.
 */
export function tracingSettings(env: Variables, issues: string[]): TracingSettings | null {
  const value = (name: string) => env[name]?.trim() || undefined;
  if (value('OTEL_SDK_DISABLED')?.toLowerCase() === 'true') return null;
  const exporters = (value('OTEL_TRACES_EXPORTER') ?? 'otlp').split(',').map((name) => name.trim());
  if (exporters.includes('none')) return null;
  const specific = value('OTEL_EXPORTER_OTLP_TRACES_ENDPOINT');
  const general = value('OTEL_EXPORTER_OTLP_ENDPOINT');
  if (specific === undefined && general === undefined) return null;
  if (exporters.some((name) => name !== 'otlp')) {
    issues.push('OTEL_TRACES_EXPORTER: Portico exports traces over OTLP only: otlp (the default) or none');
  }

  const url = exportUrl(specific, general, issues);
  const protocol = value('OTEL_EXPORTER_OTLP_TRACES_PROTOCOL') ?? value('OTEL_EXPORTER_OTLP_PROTOCOL');
  if (protocol !== undefined && protocol !== 'http/protobuf' && protocol !== 'http/json') {
    issues.push(
      `${value('OTEL_EXPORTER_OTLP_TRACES_PROTOCOL') ? 'OTEL_EXPORTER_OTLP_TRACES_PROTOCOL' : 'OTEL_EXPORTER_OTLP_PROTOCOL'}: "${protocol}" is not offered; use http/protobuf (the default) or http/json`,
    );
  }
  const compression =
    value('OTEL_EXPORTER_OTLP_TRACES_COMPRESSION') ?? value('OTEL_EXPORTER_OTLP_COMPRESSION');
  if (compression !== undefined && compression !== 'gzip' && compression !== 'none') {
    issues.push('OTEL_EXPORTER_OTLP_COMPRESSION: expected gzip or none');
  }
  const timeout = value('OTEL_EXPORTER_OTLP_TRACES_TIMEOUT') ?? value('OTEL_EXPORTER_OTLP_TIMEOUT');

  const resourceAttributes = keyValuePairs(
    'OTEL_RESOURCE_ATTRIBUTES',
    value('OTEL_RESOURCE_ATTRIBUTES'),
    issues,
  );
  const { 'service.name': namedInAttributes, ...otherAttributes } = resourceAttributes;

  const sampler = (value('OTEL_TRACES_SAMPLER') ?? 'parentbased_always_on') as SamplerName;
  if (!SAMPLERS.includes(sampler)) {
    issues.push(`OTEL_TRACES_SAMPLER: "${sampler}" is not offered; use one of ${SAMPLERS.join(', ')}`);
  }
  const samplerArgument = value('OTEL_TRACES_SAMPLER_ARG');
  const samplerRatio = samplerArgument === undefined ? 1 : Number(samplerArgument);
  if (sampler.endsWith('traceidratio') && !(samplerRatio >= 0 && samplerRatio <= 1)) {
    issues.push('OTEL_TRACES_SAMPLER_ARG: the ratio of a traceidratio sampler is a number from 0 to 1');
  }

  return {
    url,
    protocol: protocol === 'http/json' ? 'http/json' : 'http/protobuf',
    // The signal's own headers win over the shared ones.
    headers: {
      ...keyValuePairs('OTEL_EXPORTER_OTLP_HEADERS', value('OTEL_EXPORTER_OTLP_HEADERS'), issues),
      ...keyValuePairs(
        'OTEL_EXPORTER_OTLP_TRACES_HEADERS',
        value('OTEL_EXPORTER_OTLP_TRACES_HEADERS'),
        issues,
      ),
    },
    timeoutMs: positiveInteger('OTEL_EXPORTER_OTLP_TIMEOUT', timeout, issues),
    compression: compression === 'gzip' || compression === 'none' ? compression : undefined,
    serviceName: value('OTEL_SERVICE_NAME') ?? namedInAttributes ?? 'portico',
    resourceAttributes: otherAttributes,
    sampler,
    samplerRatio,
    batch: {
      scheduledDelayMillis: positiveInteger(
        'OTEL_BSP_SCHEDULE_DELAY',
        value('OTEL_BSP_SCHEDULE_DELAY'),
        issues,
      ),
      exportTimeoutMillis: positiveInteger(
        'OTEL_BSP_EXPORT_TIMEOUT',
        value('OTEL_BSP_EXPORT_TIMEOUT'),
        issues,
      ),
      maxQueueSize: positiveInteger('OTEL_BSP_MAX_QUEUE_SIZE', value('OTEL_BSP_MAX_QUEUE_SIZE'), issues),
      maxExportBatchSize: positiveInteger(
        'OTEL_BSP_MAX_EXPORT_BATCH_SIZE',
        value('OTEL_BSP_MAX_EXPORT_BATCH_SIZE'),
        issues,
      ),
    },
  };
}

/** The traces URL: the signal's endpoint as given, else the shared one with `v1/traces` below its path (as the specification says). */
function exportUrl(specific: string | undefined, general: string | undefined, issues: string[]): string {
  const variable =
    specific !== undefined ? 'OTEL_EXPORTER_OTLP_TRACES_ENDPOINT' : 'OTEL_EXPORTER_OTLP_ENDPOINT';
  const given = (specific ?? general)!;
  if (!URL.canParse(given) || !/^https?:$/.test(new URL(given).protocol)) {
    issues.push(`${variable}: expected an http:// or https:// URL (the collector's OTLP/HTTP address)`);
    return given;
  }
  if (specific !== undefined) return new URL(specific).href;
  const url = new URL(given);
  url.pathname = `${url.pathname.replace(/\/+$/, '')}/v1/traces`;
  return url.href;
}

/**
 * `key=value` pairs separated by commas, keys and values percent-decoded (the W3C Baggage form
 * the specification uses for headers and resource attributes). The value is not repeated in an
 * issue: headers may hold a secret.
 */
function keyValuePairs(variable: string, text: string | undefined, issues: string[]): Record<string, string> {
  const pairs: Record<string, string> = {};
  for (const entry of (text ?? '').split(',')) {
    if (entry.trim() === '') continue;
    const at = entry.indexOf('=');
    let key: string | undefined;
    let value: string | undefined;
    try {
      key = at > 0 ? decodeURIComponent(entry.slice(0, at).trim()) : undefined;
      value = at > 0 ? decodeURIComponent(entry.slice(at + 1).trim()) : undefined;
    } catch {
      key = undefined;
    }
    if (!key || value === undefined) {
      issues.push(`${variable}: expected key=value pairs separated by commas (percent-encode "," and "=")`);
      return {};
    }
    pairs[key] = value;
  }
  return pairs;
}

function positiveInteger(variable: string, text: string | undefined, issues: string[]): number | undefined {
  if (text === undefined) return undefined;
  const number = Number(text);
  if (Number.isSafeInteger(number) && number > 0) return number;
  issues.push(`${variable}: expected a whole number above 0`);
  return undefined;
}
