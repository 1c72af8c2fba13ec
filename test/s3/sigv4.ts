// AWS Signature Version 4 as S3 checks it, on the request line and headers (the body's part is in
// payload.ts). References: the SigV4 pages of the S3 API reference, and S3's answers as recorded by
// S3-compatible servers' tests.
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import { S3Error } from './protocol.ts';

export const UNSIGNED_PAYLOAD = 'UNSIGNED-PAYLOAD';
export const STREAMING_UNSIGNED_TRAILER = 'STREAMING-UNSIGNED-PAYLOAD-TRAILER';
export const STREAMING_SIGNED = 'STREAMING-AWS4-HMAC-SHA256-PAYLOAD';
export const STREAMING_SIGNED_TRAILER = 'STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER';
const STREAMING_ECDSA = [
  'STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD',
  'STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD-TRAILER',
];
const ALGORITHM = 'AWS4-HMAC-SHA256';
const MAX_SKEW_MS = 15 * 60 * 1000;
const MAX_PRESIGNED_SECONDS = 7 * 24 * 60 * 60;

/** A request as it came: the undecoded path and query, and the headers in their order. */
export interface RawRequest {
  method: string;
  rawPath: string;
  rawQuery: string;
  rawHeaders: string[];
}

export interface VerifyOptions {
  /** Secret access keys by access key id. */
  secrets: ReadonlyMap<string, string>;
  region: string;
  now: number;
}

/** A request whose signature holds: what its body must then be checked against. */
export interface Authorization {
  accessKeyId: string;
  /** `x-amz-content-sha256`, or `UNSIGNED-PAYLOAD` for a presigned URL. */
  payloadHash: string;
  signingKey: Buffer;
  amzDate: string;
  scope: string;
  /** The seed of a signed aws-chunked body's chain of chunk signatures. */
  signature: string;
}

/** Checks the request's signature, from its Authorization header or its presigned query. */
export function verifyRequest(request: RawRequest, options: VerifyOptions): Authorization {
  const headers = headerValues(request.rawHeaders);
  const query = parseQuery(request.rawQuery);
  const authorization = headers.get('authorization');
  const presigned = query.some(([name]) => name === 'X-Amz-Algorithm');
  if (authorization !== undefined && presigned) {
    throw new S3Error(
      400,
      'InvalidArgument',
      'Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter, Signature query string parameter or the Authorization header should be specified',
      { ArgumentName: 'Authorization', ArgumentValue: authorization },
    );
  }
  if (presigned) return verifyPresigned(request, query, options);
  if (authorization === undefined) throw new S3Error(403, 'AccessDenied', 'Access Denied');
  return verifyHeader(request, headers, query, authorization, options);
}

function verifyHeader(
  request: RawRequest,
  headers: Map<string, string>,
  query: [string, string][],
  authorization: string,
  { secrets, region, now }: VerifyOptions,
): Authorization {
  const amzDate = headers.get('x-amz-date') ?? headers.get('date');
  const time = amzDate === undefined ? undefined : parseAmzDate(amzDate);
  if (time === undefined) {
    throw new S3Error(403, 'AccessDenied', 'AWS authentication requires a valid Date or x-amz-date header');
  }
  if (Math.abs(now - time) > MAX_SKEW_MS) {
    throw new S3Error(
      403,
      'RequestTimeTooSkewed',
      'The difference between the request time and the current time is too large.',
      {
        RequestTime: amzDate!,
        ServerTime: new Date(now).toISOString(),
        MaxAllowedSkewMilliseconds: MAX_SKEW_MS,
      },
    );
  }
  const parsed = parseAuthorizationHeader(authorization);
  const credential = parseCredential(parsed.credential, malformedHeader);
  if (credential.region !== region) {
    throw malformedHeader(`the region '${credential.region}' is wrong; expecting '${region}'`, {
      Region: region,
    });
  }
  const secret = secrets.get(credential.accessKeyId);
  if (secret === undefined) throw invalidAccessKey(credential.accessKeyId);
  if (credential.date !== amzDate!.slice(0, 8)) {
    throw malformedHeader('Invalid credential date. Date is not the same as X-Amz-Date.');
  }
  const payloadHash = headers.get('x-amz-content-sha256');
  if (payloadHash === undefined) {
    throw new S3Error(
      400,
      'InvalidRequest',
      'Missing required header for this request: x-amz-content-sha256',
    );
  }
  if (STREAMING_ECDSA.includes(payloadHash)) {
    throw new S3Error(501, 'NotImplemented', `The chunk encoding algorithm ${payloadHash} is not supported.`);
  }
  if (
    ![UNSIGNED_PAYLOAD, STREAMING_UNSIGNED_TRAILER, STREAMING_SIGNED, STREAMING_SIGNED_TRAILER].includes(
      payloadHash,
    ) &&
    !/^[0-9a-f]{64}$/.test(payloadHash)
  ) {
    throw new S3Error(
      400,
      'InvalidArgument',
      'x-amz-content-sha256 must be UNSIGNED-PAYLOAD, STREAMING-UNSIGNED-PAYLOAD-TRAILER, STREAMING-AWS4-HMAC-SHA256-PAYLOAD, STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER or a valid sha256 value.',
      { ArgumentName: 'x-amz-content-sha256', ArgumentValue: payloadHash },
    );
  }
  return checkSignature({
    request,
    query,
    signedHeaders: parsed.signedHeaders,
    payloadHash,
    amzDate: amzDate!,
    credential,
    secret,
    signature: parsed.signature,
  });
}

function verifyPresigned(
  request: RawRequest,
  query: [string, string][],
  { secrets, region, now }: VerifyOptions,
): Authorization {
  const parameter = (name: string) => query.find(([candidate]) => candidate === name)?.[1];
  const algorithm = parameter('X-Amz-Algorithm');
  const credentialText = parameter('X-Amz-Credential');
  const amzDate = parameter('X-Amz-Date');
  const expires = parameter('X-Amz-Expires');
  const signedHeaders = parameter('X-Amz-SignedHeaders');
  const signature = parameter('X-Amz-Signature');
  if (
    algorithm === undefined ||
    credentialText === undefined ||
    amzDate === undefined ||
    expires === undefined ||
    signedHeaders === undefined ||
    signature === undefined
  ) {
    throw queryError(
      'Query-string authentication version 4 requires the X-Amz-Algorithm, X-Amz-Credential, X-Amz-Signature, X-Amz-Date, X-Amz-SignedHeaders, and X-Amz-Expires parameters.',
    );
  }
  if (algorithm !== ALGORITHM) throw queryError('X-Amz-Algorithm only supports "AWS4-HMAC-SHA256"');
  const credential = parseCredential(credentialText, (message) =>
    queryError(`Error parsing the X-Amz-Credential parameter; ${message}`),
  );
  if (credential.region !== region) {
    throw queryError(
      `Error parsing the X-Amz-Credential parameter; the region '${credential.region}' is wrong; expecting '${region}'`,
      { Region: region },
    );
  }
  const time = parseAmzDate(amzDate);
  if (time === undefined)
    throw queryError(`X-Amz-Date must be in the ISO8601 Long Format "yyyyMMdd'T'HHmmss'Z'"`);
  if (credential.date !== amzDate.slice(0, 8)) {
    throw queryError(
      `Invalid credential date "${credential.date}". This date is not the same as X-Amz-Date: "${amzDate.slice(0, 8)}".`,
    );
  }
  if (!/^\d+$/.test(expires)) throw queryError('X-Amz-Expires should be a number');
  if (Number(expires) > MAX_PRESIGNED_SECONDS) {
    throw queryError(
      'X-Amz-Expires must be less than a week (in seconds); that is, the given X-Amz-Expires must be less than 604800 seconds',
    );
  }
  if (time - now > MAX_SKEW_MS) throw new S3Error(403, 'AccessDenied', 'Request is not valid yet');
  if (now > time + Number(expires) * 1000) {
    throw new S3Error(403, 'AccessDenied', 'Request has expired', {
      'X-Amz-Expires': expires,
      Expires: new Date(time + Number(expires) * 1000).toISOString(),
      ServerTime: new Date(now).toISOString(),
    });
  }
  const secret = secrets.get(credential.accessKeyId);
  if (secret === undefined) throw invalidAccessKey(credential.accessKeyId);
  return checkSignature({
    request,
    query: query.filter(([name]) => name !== 'X-Amz-Signature'),
    signedHeaders,
    // A presigned URL cannot know its body; a client may still have signed a hash as a parameter.
    payloadHash: parameter('X-Amz-Content-Sha256') ?? UNSIGNED_PAYLOAD,
    amzDate,
    credential,
    secret,
    signature,
  });
}

interface Credential {
  accessKeyId: string;
  date: string;
  region: string;
}

function checkSignature(input: {
  request: RawRequest;
  query: [string, string][];
  signedHeaders: string;
  payloadHash: string;
  amzDate: string;
  credential: Credential;
  secret: string;
  signature: string;
}): Authorization {
  const { request, credential, amzDate, secret, signature } = input;
  const signed = input.signedHeaders.split(';');
  const present = new Set(headerNames(request.rawHeaders));
  const notSigned = [...present].filter(
    (name) => (name === 'host' || name.startsWith('x-amz-')) && !signed.includes(name),
  );
  if (notSigned.length > 0) {
    throw new S3Error(
      403,
      'AccessDenied',
      'There were headers present in the request which were not signed',
      {
        HeadersNotSigned: notSigned.join(', '),
      },
    );
  }
  const canonicalRequest = [
    request.method,
    canonicalUri(request.rawPath),
    canonicalQuery(input.query),
    canonicalHeaders(request.rawHeaders, signed),
    input.signedHeaders,
    input.payloadHash,
  ].join('\n');
  const scope = `${credential.date}/${credential.region}/s3/aws4_request`;
  const stringToSign = [ALGORITHM, amzDate, scope, sha256Hex(canonicalRequest)].join('\n');
  const signingKey = deriveSigningKey(secret, credential.date, credential.region);
  const expected = hmac(signingKey, stringToSign).toString('hex');
  if (!sameHex(expected, signature)) {
    throw new S3Error(
      403,
      'SignatureDoesNotMatch',
      'The request signature we calculated does not match the signature you provided. Check your key and signing method.',
      {
        AWSAccessKeyId: credential.accessKeyId,
        StringToSign: stringToSign,
        SignatureProvided: signature,
        StringToSignBytes: hexBytes(stringToSign),
        CanonicalRequest: canonicalRequest,
        CanonicalRequestBytes: hexBytes(canonicalRequest),
      },
    );
  }
  return {
    accessKeyId: credential.accessKeyId,
    payloadHash: input.payloadHash,
    signingKey,
    amzDate,
    scope,
    signature: expected,
  };
}

/** The signature of one chunk of a signed aws-chunked body, chained to the one before. */
export function chunkSignature(auth: Authorization, previous: string, chunkSha256Hex: string): string {
  const stringToSign = [
    'AWS4-HMAC-SHA256-PAYLOAD',
    auth.amzDate,
    auth.scope,
    previous,
    sha256Hex(''),
    chunkSha256Hex,
  ].join('\n');
  return hmac(auth.signingKey, stringToSign).toString('hex');
}

/** The signature of a signed aws-chunked body's trailing headers, given in their canonical form. */
export function trailerSignature(auth: Authorization, previous: string, canonicalTrailers: string): string {
  const stringToSign = [
    'AWS4-HMAC-SHA256-TRAILER',
    auth.amzDate,
    auth.scope,
    previous,
    sha256Hex(canonicalTrailers),
  ].join('\n');
  return hmac(auth.signingKey, stringToSign).toString('hex');
}

export function sameHex(expected: string, provided: string): boolean {
  return (
    /^[0-9a-f]{64}$/.test(provided) &&
    timingSafeEqual(Buffer.from(expected, 'hex'), Buffer.from(provided, 'hex'))
  );
}

function parseAuthorizationHeader(header: string): {
  credential: string;
  signedHeaders: string;
  signature: string;
} {
  const space = header.indexOf(' ');
  const algorithm = space < 0 ? header : header.slice(0, space);
  if (algorithm === 'AWS') {
    throw new S3Error(
      400,
      'InvalidRequest',
      'The authorization mechanism you have provided is not supported. Please use AWS4-HMAC-SHA256.',
    );
  }
  if (algorithm !== ALGORITHM) {
    throw new S3Error(400, 'InvalidArgument', 'Unsupported Authorization Type', {
      ArgumentName: 'Authorization',
      ArgumentValue: header,
    });
  }
  const components = new Map<string, string>();
  for (const component of header.slice(space + 1).split(',')) {
    const [name, value, extra] = component.trim().split('=');
    if (name === undefined || value === undefined || extra !== undefined) {
      throw malformedHeader(`the authorization component "${component.trim()}" is malformed.`);
    }
    components.set(name, value);
  }
  const credential = components.get('Credential');
  const signedHeaders = components.get('SignedHeaders');
  const signature = components.get('Signature');
  if (
    credential === undefined ||
    signedHeaders === undefined ||
    signature === undefined ||
    components.size !== 3
  ) {
    throw malformedHeader(
      'the authorization header requires three components: Credential, SignedHeaders, and Signature.',
    );
  }
  return { credential, signedHeaders, signature };
}

function parseCredential(text: string, error: (message: string) => S3Error): Credential {
  const parts = text.split('/');
  if (parts.length !== 5) {
    throw error(
      'the Credential is mal-formed; expecting "<YOUR-AKID>/YYYYMMDD/REGION/SERVICE/aws4_request".',
    );
  }
  const [accessKeyId, date, region, service, terminal] = parts as [string, string, string, string, string];
  if (service !== 's3') throw error(`incorrect service "${service}". This endpoint belongs to "s3".`);
  if (terminal !== 'aws4_request')
    throw error(`incorrect terminal "${terminal}". This endpoint uses "aws4_request".`);
  if (!/^\d{8}$/.test(date)) {
    throw error(
      `incorrect date format "${date}". This date in the credential must be in the format "yyyyMMdd".`,
    );
  }
  return { accessKeyId, date, region };
}

function malformedHeader(message: string, fields: Record<string, string> = {}): S3Error {
  return new S3Error(
    400,
    'AuthorizationHeaderMalformed',
    `The authorization header is malformed; ${message}`,
    fields,
  );
}

function queryError(message: string, fields: Record<string, string> = {}): S3Error {
  return new S3Error(400, 'AuthorizationQueryParametersError', message, fields);
}

function invalidAccessKey(accessKeyId: string): S3Error {
  return new S3Error(
    403,
    'InvalidAccessKeyId',
    'The AWS Access Key Id you provided does not exist in our records.',
    {
      AWSAccessKeyId: accessKeyId,
    },
  );
}

/** `yyyyMMddTHHmmssZ` as epoch milliseconds. */
function parseAmzDate(text: string): number | undefined {
  const match = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(text);
  if (!match) return undefined;
  const [, year, month, day, hour, minute, second] = match.map(Number) as number[];
  return Date.UTC(year!, month! - 1, day!, hour!, minute!, second!);
}

export function deriveSigningKey(secret: string, date: string, region: string): Buffer {
  const dateKey = hmac(`AWS4${secret}`, date);
  return hmac(hmac(hmac(dateKey, region), 's3'), 'aws4_request');
}

function hmac(key: string | Buffer, data: string): Buffer {
  return createHmac('sha256', key).update(data, 'utf8').digest();
}

export function sha256Hex(data: string | Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

function hexBytes(text: string): string {
  return [...Buffer.from(text, 'utf8')].map((byte) => byte.toString(16).padStart(2, '0')).join(' ');
}

/** Lower-cased header names, each once, in order of appearance. */
function headerNames(rawHeaders: string[]): string[] {
  const names: string[] = [];
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i]!.toLowerCase();
    if (!names.includes(name)) names.push(name);
  }
  return names;
}

/** Header values by lower-cased name; a repeated header's values joined with commas. */
function headerValues(rawHeaders: string[]): Map<string, string> {
  const values = new Map<string, string>();
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i]!.toLowerCase();
    const value = rawHeaders[i + 1]!;
    const before = values.get(name);
    values.set(name, before === undefined ? value : `${before},${value}`);
  }
  return values;
}

function canonicalHeaders(rawHeaders: string[], signed: string[]): string {
  const values = new Map<string, string[]>();
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i]!.toLowerCase();
    if (!signed.includes(name)) continue;
    const value = rawHeaders[i + 1]!.trim().replace(/ +/g, ' ');
    values.set(name, [...(values.get(name) ?? []), value]);
  }
  // A signed header the request lacks signs as empty, so the signature fails where it should.
  return signed.map((name) => `${name}:${(values.get(name) ?? []).join(',')}\n`).join('');
}

/**
 * S3 signs the path as it stands for the key: decoded once and encoded again with every byte but
 * the unreserved ones and `/` escaped, never normalised (`//` and `..` stay).
 */
function canonicalUri(rawPath: string): string {
  return uriEncode(percentDecode(rawPath, false), false);
}

function canonicalQuery(query: [string, string][]): string {
  return query
    .map(
      ([name, value]) => [uriEncode(Buffer.from(name), true), uriEncode(Buffer.from(value), true)] as const,
    )
    .sort(([a, x], [b, y]) => (a < b ? -1 : a > b ? 1 : x < y ? -1 : x > y ? 1 : 0))
    .map(([name, value]) => `${name}=${value}`)
    .join('&');
}

/** The query's parameters, decoded, in order; one without `=` has an empty value. */
export function parseQuery(rawQuery: string): [string, string][] {
  return rawQuery
    .split('&')
    .filter((pair) => pair !== '')
    .map((pair) => {
      const equals = pair.indexOf('=');
      const name = equals < 0 ? pair : pair.slice(0, equals);
      const value = equals < 0 ? '' : pair.slice(equals + 1);
      return [percentDecode(name, true).toString('utf8'), percentDecode(value, true).toString('utf8')];
    });
}

/** Undoes %XX escapes (and `+` as a space in a query); a broken escape is S3's InvalidURI. */
export function percentDecode(text: string, query: boolean): Buffer {
  const pieces: Buffer[] = [];
  const plain = (from: number, to: number) => {
    const run = text.slice(from, to);
    pieces.push(Buffer.from(query ? run.replaceAll('+', ' ') : run, 'utf8'));
  };
  let done = 0;
  for (const percent of text.matchAll(/%([0-9a-fA-F]{2})?/g)) {
    if (percent[1] === undefined) throw new S3Error(400, 'InvalidURI', "Couldn't parse the specified URI.");
    plain(done, percent.index);
    pieces.push(Buffer.from([Number.parseInt(percent[1], 16)]));
    done = percent.index + 3;
  }
  plain(done, text.length);
  return Buffer.concat(pieces);
}

function uriEncode(bytes: Buffer, encodeSlash: boolean): string {
  let encoded = '';
  for (const byte of bytes) {
    const char = String.fromCharCode(byte);
    if (/[A-Za-z0-9\-._~]/.test(char) || (char === '/' && !encodeSlash)) encoded += char;
    else encoded += `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return encoded;
}
