// The S3 REST API, path-style, over the store: the operations a blob storage driver uses, with S3's
// checks and answers. Requests for what it does not implement are NotImplemented, never half done.
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { createReadStream, createWriteStream } from 'node:fs';
import { unlink } from 'node:fs/promises';
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http';
import { Transform, Writable } from 'node:stream';
import { finished, pipeline } from 'node:stream/promises';
import {
  type BodyDecoder,
  bodyDecoder,
  type Checksum,
  checksumHeader,
  checksumValueHeaders,
  createChecksum,
  incompleteBody,
  parseChecksumAlgorithm,
  type ReceivedBody,
} from './payload.ts';
import {
  child,
  element,
  errorDocument,
  escapeXml,
  malformedXml,
  parseXml,
  S3Error,
  type XmlElement,
  xmlDocument,
} from './protocol.ts';
import { type Authorization, parseQuery, percentDecode, verifyRequest } from './sigv4.ts';
import {
  type ChecksumType,
  compareKeys,
  type ObjectAttributes,
  type ObjectRecord,
  type PartRecord,
  type Store,
  type UploadRecord,
  wholeSeconds,
} from './store.ts';

const MAX_OBJECT_BYTES = 5 * 1024 ** 3;
const MIN_PART_BYTES = 5 * 1024 ** 2;
const MAX_XML_BYTES = 2 * 1024 ** 2;
const MAX_KEY_BYTES = 1024;
const MAX_METADATA_BYTES = 2048;

export interface ServiceOptions {
  store: Store;
  /** Secret access keys by access key id. */
  secrets: ReadonlyMap<string, string>;
  region: string;
}

/** One request as the server answered it, for the tests to see which forms a client used. */
export interface RequestLog {
  method: string;
  path: string;
  query: string;
  payload: string | undefined;
  status: number;
  code: string | undefined;
}

interface Request {
  req: IncomingMessage;
  res: ServerResponse;
  auth: Authorization;
  bucket: string;
  key: string | undefined;
  query: Map<string, string>;
  options: ServiceOptions;
}

/** A handler for both `request` and `checkContinue`: an upload S3 refuses gets no `100 Continue`. */
export function s3Handler(
  options: ServiceOptions,
  log: (entry: RequestLog) => void,
): (req: IncomingMessage, res: ServerResponse) => void {
  const hostId = randomBytes(48).toString('base64');
  return (req, res) => {
    const requestId = randomBytes(8).toString('hex').toUpperCase();
    res.setHeader('x-amz-request-id', requestId);
    res.setHeader('x-amz-id-2', hostId);
    res.setHeader('server', 'AmazonS3');
    let code: string | undefined;
    const url = req.url ?? '/';
    const questionMark = url.indexOf('?');
    const rawPath = questionMark < 0 ? url : url.slice(0, questionMark);
    const rawQuery = questionMark < 0 ? '' : url.slice(questionMark + 1);
    res.once('close', () =>
      log({
        method: req.method ?? '',
        path: rawPath,
        query: rawQuery,
        payload: req.headers['x-amz-content-sha256'] as string | undefined,
        status: res.statusCode,
        code,
      }),
    );
    void (async () => {
      try {
        const auth = verifyRequest(
          { method: req.method ?? '', rawPath, rawQuery, rawHeaders: req.rawHeaders },
          { secrets: options.secrets, region: options.region, now: Date.now() },
        );
        const query = new Map(parseQuery(rawQuery).reverse());
        const [bucket, key] = splitPath(rawPath);
        await route({ req, res, auth, bucket, key, query, options });
      } catch (caught) {
        const error =
          caught instanceof S3Error
            ? caught
            : new S3Error(500, 'InternalError', 'We encountered an internal error. Please try again.');
        if (!(caught instanceof S3Error)) console.error(caught);
        code = error.code;
        if (res.headersSent) {
          res.destroy();
        } else {
          // A client waiting for 100 Continue sends no body now: the connection cannot carry more.
          if (req.headers.expect !== undefined && req.readableFlowing === null)
            res.setHeader('connection', 'close');
          const body = req.method === 'HEAD' ? '' : errorDocument(error, requestId, hostId);
          res.writeHead(error.status, {
            'content-type': 'application/xml',
            'content-length': Buffer.byteLength(body),
          });
          res.end(body);
        }
      } finally {
        // What was not read is read and dropped, so the connection can carry the next request.
        if (!req.readableEnded) req.resume();
      }
    })();
  };
}

/** `/bucket/key…`: the key is everything after the bucket's slash, decoded once. */
function splitPath(rawPath: string): [string, string | undefined] {
  const decode = (text: string) => {
    const bytes = percentDecode(text, false);
    const decoded = bytes.toString('utf8');
    if (!Buffer.from(decoded, 'utf8').equals(bytes)) {
      throw new S3Error(400, 'InvalidURI', "Couldn't parse the specified URI.");
    }
    return decoded;
  };
  const path = rawPath.slice(1);
  const slash = path.indexOf('/');
  if (slash < 0 || slash === path.length - 1)
    return [decode(slash < 0 ? path : path.slice(0, -1)), undefined];
  return [decode(path.slice(0, slash)), decode(path.slice(slash + 1))];
}

/** Subresources S3 has and this server lacks: asked for, they would otherwise read as another call. */
const UNSUPPORTED_SUBRESOURCES = [
  'accelerate',
  'acl',
  'analytics',
  'attributes',
  'cors',
  'encryption',
  'intelligent-tiering',
  'inventory',
  'legal-hold',
  'lifecycle',
  'logging',
  'metadataTable',
  'metrics',
  'notification',
  'object-lock',
  'ownershipControls',
  'policy',
  'policyStatus',
  'publicAccessBlock',
  'renameObject',
  'replication',
  'requestPayment',
  'restore',
  'retention',
  'select',
  'session',
  'tagging',
  'torrent',
  'versionId',
  'versioning',
  'versions',
  'website',
];

/** Request headers for features this server lacks; a value given means only that value is supported. */
const UNSUPPORTED_HEADERS: [RegExp, string | undefined][] = [
  [/^x-amz-tagging/, undefined],
  [/^x-amz-object-lock-/, undefined],
  [/^x-amz-grant-/, undefined],
  [/^x-amz-(copy-source-)?server-side-encryption-/, undefined],
  [/^x-amz-website-redirect-location$/, undefined],
  [/^x-amz-request-payer$/, undefined],
  [/^x-amz-(source-)?expected-bucket-owner$/, undefined],
  [/^x-amz-write-offset-bytes$/, undefined],
  [/^x-amz-bucket-object-lock-enabled$/, 'false'],
  [/^x-amz-acl$/, 'private'],
  [/^x-amz-server-side-encryption$/, 'AES256'],
  [/^x-amz-storage-class$/, 'STANDARD'],
  [/^x-amz-object-ownership$/, 'BucketOwnerEnforced'],
];

function notImplemented(what: string, fields: Record<string, string> = {}): S3Error {
  return new S3Error(501, 'NotImplemented', `This test server does not implement ${what}.`, fields);
}

function rejectUnsupported({ req, query }: Request): void {
  for (const name of query.keys()) {
    if (UNSUPPORTED_SUBRESOURCES.includes(name)) throw notImplemented(`?${name}`);
  }
  for (const [name, value] of Object.entries(req.headers)) {
    for (const [pattern, supported] of UNSUPPORTED_HEADERS) {
      if (pattern.test(name) && value !== supported)
        throw notImplemented(`${name}: ${value}`, { Header: name });
    }
  }
}

async function route(request: Request): Promise<void> {
  rejectUnsupported(request);
  const { req, bucket, key, query } = request;
  const method = req.method;
  if (bucket === '' && key === undefined) {
    if (method === 'GET') return listBuckets(request);
  } else if (key === undefined) {
    if (method === 'PUT') return createBucket(request);
    if (method === 'HEAD') return headBucket(request);
    if (method === 'DELETE') return deleteBucket(request);
    if (method === 'GET') {
      if (query.has('uploads')) return listUploads(request);
      if (query.get('list-type') === '2') return listObjectsV2(request);
      if (query.has('location')) return getBucketLocation(request);
      throw notImplemented('ListObjects version 1 (send list-type=2)');
    }
    if (method === 'POST' && query.has('delete')) return deleteObjects(request);
  } else {
    if (method === 'PUT') {
      if (query.has('uploadId') || query.has('partNumber')) return uploadPart(request);
      if (req.headers['x-amz-copy-source'] !== undefined) return copyObject(request);
      return putObject(request);
    }
    if (method === 'GET' || method === 'HEAD') {
      if (query.has('uploadId')) throw notImplemented('ListParts');
      if (query.has('partNumber')) throw notImplemented('?partNumber on GetObject');
      return getObject(request);
    }
    if (method === 'DELETE') return query.has('uploadId') ? abortUpload(request) : deleteObject(request);
    if (method === 'POST') {
      if (query.has('uploads')) return createUpload(request);
      if (query.has('uploadId')) return completeUpload(request);
    }
  }
  throw new S3Error(405, 'MethodNotAllowed', 'The specified method is not allowed against this resource.', {
    Method: method ?? '',
    ResourceType: bucket === '' ? 'SERVICE' : key === undefined ? 'BUCKET' : 'OBJECT',
  });
}

// Bodies

/**
 * Streams the body through its decoder into `sink`. A failure leaves the request to be drained,
 * never destroyed: the client still reads S3's error.
 */
async function receive({ req, res }: Request, decoder: BodyDecoder, sink: Writable): Promise<ReceivedBody> {
  if (req.headers.expect?.toLowerCase() === '100-continue') res.writeContinue();
  const done = pipeline(decoder, sink);
  const abort = () => {
    if (!req.complete) decoder.destroy(incompleteBody());
  };
  req.once('close', abort);
  req.pipe(decoder);
  try {
    await done;
    return decoder.result;
  } catch (error) {
    req.unpipe(decoder);
    throw error;
  } finally {
    req.off('close', abort);
  }
}

/** A small body (an XML document, or none at all), verified like any other. */
async function smallBody(request: Request, maxBytes: number): Promise<Buffer> {
  const decoder = bodyDecoder(request.auth, request.req.headers, {
    streaming: false,
    maxBytes,
    tooLarge: () =>
      maxBytes === 0
        ? new S3Error(
            400,
            'InvalidRequest',
            'The request included a body. Requests of this type must not include a non-empty body.',
          )
        : new S3Error(400, 'MaxMessageLengthExceeded', 'Your request was too big.'),
  });
  const chunks: Buffer[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      chunks.push(chunk);
      done();
    },
  });
  await receive(request, decoder, sink);
  return Buffer.concat(chunks);
}

async function xmlBody(request: Request, root: string): Promise<XmlElement> {
  const body = await smallBody(request, MAX_XML_BYTES);
  if (body.length === 0) throw new S3Error(400, 'MissingRequestBodyError', 'Request Body is empty');
  const document = parseXml(body.toString('utf8'));
  if (document.name !== root) {
    throw malformedXml();
  }
  return document;
}

/** Runs `task` with a fresh temporary path, removed afterwards unless the store has taken the file. */
async function withTempFile<T>(request: Request, task: (path: string) => Promise<T>): Promise<T> {
  const path = request.options.store.tempPath();
  try {
    return await task(path);
  } finally {
    await unlink(path).catch(() => undefined);
  }
}

function entityTooLarge(size: number): S3Error {
  return new S3Error(400, 'EntityTooLarge', 'Your proposed upload exceeds the maximum allowed object size.', {
    ProposedSize: size,
    MaxSizeAllowed: MAX_OBJECT_BYTES,
  });
}

// Answers

function sendXml(
  res: ServerResponse,
  root: string,
  body: string,
  headers: Record<string, string> = {},
): void {
  const document = xmlDocument(root, body);
  res.writeHead(200, {
    ...headers,
    'content-type': 'application/xml',
    'content-length': Buffer.byteLength(document),
  });
  res.end(document);
}

function isoTime(time: number): string {
  return new Date(time).toISOString();
}

function owner(request: Request): string {
  const id = createHash('sha256').update(request.auth.accessKeyId).digest('hex');
  return element('ID', id);
}

function checksumResponseHeaders(
  checksum: (Checksum & { type?: ChecksumType }) | undefined,
): Record<string, string> {
  if (!checksum) return {};
  return {
    [checksumHeader(checksum.algorithm)]: checksum.value,
    ...(checksum.type && { 'x-amz-checksum-type': checksum.type }),
  };
}

function checksumElements(checksum: (Checksum & { type?: ChecksumType }) | undefined): string {
  if (!checksum) return '';
  return element(`Checksum${checksum.algorithm}`, checksum.value) + element('ChecksumType', checksum.type);
}

// Checks

function requireBucket({ options }: Request, bucket: string): void {
  if (!options.store.hasBucket(bucket)) {
    throw new S3Error(404, 'NoSuchBucket', 'The specified bucket does not exist', { BucketName: bucket });
  }
}

function noSuchKey(key: string): S3Error {
  return new S3Error(404, 'NoSuchKey', 'The specified key does not exist.', { Key: key });
}

function noSuchUpload(id: string): S3Error {
  return new S3Error(
    404,
    'NoSuchUpload',
    'The specified multipart upload does not exist. The upload ID may be invalid, or the upload may have been aborted or completed.',
    { UploadId: id },
  );
}

function preconditionFailed(condition: string): S3Error {
  return new S3Error(
    412,
    'PreconditionFailed',
    'At least one of the pre-conditions you specified did not hold',
    {
      Condition: condition,
    },
  );
}

function checkKey(key: string): void {
  const size = Buffer.byteLength(key);
  if (size > MAX_KEY_BYTES) {
    throw new S3Error(400, 'KeyTooLongError', 'Your key is too long', {
      Size: size,
      MaxSizeAllowed: MAX_KEY_BYTES,
    });
  }
}

/** Whether an If-Match / If-None-Match list names the entity tag (`*` names any). */
function etagMatches(header: string, etag: string): boolean {
  const bare = (tag: string) => tag.trim().replace(/^W\//, '').replace(/^"|"$/g, '');
  return header.split(',').some((tag) => tag.trim() === '*' || bare(tag) === bare(etag));
}

/** The conditions of a GET or HEAD, in RFC 9110's order; true when the answer is 304. */
function notModified(headers: IncomingHttpHeaders, record: ObjectRecord, prefix = ''): boolean {
  const ifMatch = headers[`${prefix}if-match`] as string | undefined;
  const ifUnmodifiedSince = headers[`${prefix}if-unmodified-since`] as string | undefined;
  const ifNoneMatch = headers[`${prefix}if-none-match`] as string | undefined;
  const ifModifiedSince = headers[`${prefix}if-modified-since`] as string | undefined;
  if (ifMatch !== undefined) {
    if (!etagMatches(ifMatch, record.etag)) throw preconditionFailed(`${prefix}If-Match`);
  } else if (ifUnmodifiedSince !== undefined && record.lastModified > Date.parse(ifUnmodifiedSince)) {
    throw preconditionFailed(`${prefix}If-Unmodified-Since`);
  }
  if (ifNoneMatch !== undefined) return etagMatches(ifNoneMatch, record.etag);
  return ifModifiedSince !== undefined && record.lastModified <= Date.parse(ifModifiedSince);
}

/** S3's conditional writes: If-None-Match: * (create only) and If-Match: <etag> (replace only that). */
function writeConditions(
  headers: IncomingHttpHeaders,
  key: string,
): (existing: ObjectRecord | undefined) => void {
  const ifNoneMatch = headers['if-none-match'];
  const ifMatch = headers['if-match'];
  if (ifNoneMatch !== undefined && ifNoneMatch !== '*') {
    throw new S3Error(
      501,
      'NotImplemented',
      'A header you provided implies functionality that is not implemented',
      {
        Header: 'If-None-Match',
      },
    );
  }
  return (existing) => {
    if (ifNoneMatch !== undefined && existing) throw preconditionFailed('If-None-Match');
    if (ifMatch !== undefined) {
      if (!existing) throw noSuchKey(key);
      if (!etagMatches(ifMatch, existing.etag)) throw preconditionFailed('If-Match');
    }
  };
}

const STORED_HEADERS = [
  'cache-control',
  'content-disposition',
  'content-encoding',
  'content-language',
  'expires',
];

/** What a PUT or CreateMultipartUpload asks S3 to keep with the object. */
function objectAttributes(headers: IncomingHttpHeaders): ObjectAttributes {
  const stored: Record<string, string> = {};
  for (const name of STORED_HEADERS) {
    const value = headers[name] as string | undefined;
    if (value !== undefined) stored[name] = value;
  }
  // aws-chunked describes the request body, not the object.
  const encoding = stored['content-encoding']
    ?.split(',')
    .map((part) => part.trim())
    .filter((part) => part !== 'aws-chunked' && part !== '')
    .join(',');
  if (encoding) stored['content-encoding'] = encoding;
  else delete stored['content-encoding'];
  const metadata: Record<string, string> = {};
  let size = 0;
  for (const [name, value] of Object.entries(headers)) {
    if (!name.startsWith('x-amz-meta-') || typeof value !== 'string') continue;
    metadata[name] = value;
    size += Buffer.byteLength(name.slice('x-amz-meta-'.length)) + Buffer.byteLength(value);
  }
  if (size > MAX_METADATA_BYTES) {
    throw new S3Error(
      400,
      'MetadataTooLarge',
      'Your metadata headers exceed the maximum allowed metadata size',
      {
        Size: size,
        MaxSizeAllowed: MAX_METADATA_BYTES,
      },
    );
  }
  return { contentType: headers['content-type'] ?? 'binary/octet-stream', headers: stored, metadata };
}

// Buckets

async function listBuckets(request: Request): Promise<void> {
  await smallBody(request, 0);
  const buckets = request.options.store
    .buckets()
    .map(
      ({ name, created }) =>
        `<Bucket>${element('Name', name)}${element('CreationDate', isoTime(created))}</Bucket>`,
    )
    .join('');
  sendXml(
    request.res,
    'ListAllMyBucketsResult',
    `<Owner>${owner(request)}</Owner><Buckets>${buckets}</Buckets>`,
  );
}

function validBucketName(name: string): boolean {
  return (
    /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(name) &&
    !name.includes('..') &&
    !/^\d+\.\d+\.\d+\.\d+$/.test(name) &&
    !name.startsWith('xn--') &&
    !name.endsWith('-s3alias')
  );
}

async function createBucket(request: Request): Promise<void> {
  const { res, bucket, options } = request;
  const body = await smallBody(request, MAX_XML_BYTES);
  if (!validBucketName(bucket)) {
    throw new S3Error(400, 'InvalidBucketName', 'The specified bucket is not valid.', { BucketName: bucket });
  }
  const constraint =
    body.length > 0 ? child(parseXml(body.toString('utf8')), 'LocationConstraint')?.text : undefined;
  // S3's rules: us-east-1 takes no constraint (not even its own name); every other region its own.
  if (options.region === 'us-east-1' ? constraint !== undefined : constraint !== options.region) {
    if (options.region === 'us-east-1' && constraint === 'us-east-1') {
      throw new S3Error(400, 'InvalidLocationConstraint', 'The specified location-constraint is not valid', {
        LocationConstraint: constraint,
      });
    }
    throw new S3Error(
      400,
      'IllegalLocationConstraintException',
      `The ${constraint ?? 'unspecified'} location constraint is incompatible for the region specific endpoint this request was sent to.`,
    );
  }
  if (options.store.hasBucket(bucket)) {
    // In us-east-1 S3 answers 200 to its owner's repeated CreateBucket, elsewhere 409.
    if (options.region !== 'us-east-1') {
      throw new S3Error(
        409,
        'BucketAlreadyOwnedByYou',
        'Your previous request to create the named bucket succeeded and you already own it.',
        { BucketName: bucket },
      );
    }
  } else {
    await options.store.createBucket(bucket);
  }
  res.writeHead(200, { location: `/${bucket}`, 'content-length': 0 }).end();
}

async function headBucket(request: Request): Promise<void> {
  await smallBody(request, 0);
  requireBucket(request, request.bucket);
  request.res
    .writeHead(200, { 'x-amz-bucket-region': request.options.region, 'x-amz-access-point-alias': 'false' })
    .end();
}

async function getBucketLocation(request: Request): Promise<void> {
  await smallBody(request, 0);
  requireBucket(request, request.bucket);
  const { region } = request.options;
  sendXml(request.res, 'LocationConstraint', region === 'us-east-1' ? '' : escapeXml(region));
}

async function deleteBucket(request: Request): Promise<void> {
  await smallBody(request, 0);
  requireBucket(request, request.bucket);
  if (!(await request.options.store.deleteBucket(request.bucket))) {
    throw new S3Error(409, 'BucketNotEmpty', 'The bucket you tried to delete is not empty', {
      BucketName: request.bucket,
    });
  }
  request.res.writeHead(204).end();
}

function maxKeysParameter(request: Request, name: string): number {
  const text = request.query.get(name);
  if (text === undefined) return 1000;
  if (!/^\d+$/.test(text) || Number(text) > 2 ** 31 - 1) {
    throw new S3Error(400, 'InvalidArgument', `Provided ${name} not an integer or within integer range`, {
      ArgumentName: name,
      ArgumentValue: text,
    });
  }
  return Math.min(Number(text), 1000);
}

async function listObjectsV2(request: Request): Promise<void> {
  await smallBody(request, 0);
  const { bucket, query, options } = request;
  requireBucket(request, bucket);
  if (query.has('encoding-type')) throw notImplemented('encoding-type');
  const prefix = query.get('prefix') ?? '';
  const delimiter = query.get('delimiter') || undefined;
  const maxKeys = maxKeysParameter(request, 'max-keys');
  const token = query.get('continuation-token');
  const startAfter = query.get('start-after');
  let marker = startAfter;
  if (token !== undefined) {
    marker = Buffer.from(token, 'base64url').toString('utf8');
    if (token === '' || Buffer.from(marker, 'utf8').toString('base64url') !== token) {
      throw new S3Error(400, 'InvalidArgument', 'The continuation token provided is incorrect', {
        ArgumentName: 'continuation-token',
        ArgumentValue: token,
      });
    }
  }
  // Entries are keys, or with a delimiter the common prefixes that roll keys up; a page ends at
  // max-keys entries, and the token names the last entry so that the next page starts after it.
  const entries: ({ key: ObjectRecord } | { prefix: string })[] = [];
  let truncated = false;
  for (const record of options.store.objects(bucket)) {
    if (!record.key.startsWith(prefix)) continue;
    if (marker !== undefined && compareKeys(record.key, marker) <= 0) continue;
    const cut = delimiter === undefined ? -1 : record.key.indexOf(delimiter, prefix.length);
    const commonPrefix = cut < 0 ? undefined : record.key.slice(0, cut + delimiter!.length);
    if (commonPrefix !== undefined) {
      const last = entries.at(-1);
      if (commonPrefix === marker || (last && 'prefix' in last && last.prefix === commonPrefix)) continue;
    }
    if (entries.length === maxKeys) {
      // With max-keys=0 there is no last entry to continue after.
      truncated = maxKeys > 0;
      break;
    }
    entries.push(commonPrefix === undefined ? { key: record } : { prefix: commonPrefix });
  }
  const last = entries.at(-1);
  const nextToken =
    truncated && last
      ? Buffer.from('key' in last ? last.key.key : last.prefix, 'utf8').toString('base64url')
      : undefined;
  const fetchOwner = query.get('fetch-owner') === 'true';
  const contents = entries
    .map((entry) =>
      'key' in entry
        ? `<Contents>${element('Key', entry.key.key)}${element('LastModified', isoTime(entry.key.lastModified))}${element('ETag', entry.key.etag)}${element('ChecksumAlgorithm', entry.key.checksum?.algorithm)}${element('ChecksumType', entry.key.checksum?.type)}${element('Size', entry.key.size)}${fetchOwner ? `<Owner>${owner(request)}</Owner>` : ''}${element('StorageClass', 'STANDARD')}</Contents>`
        : `<CommonPrefixes>${element('Prefix', entry.prefix)}</CommonPrefixes>`,
    )
    .join('');
  sendXml(
    request.res,
    'ListBucketResult',
    element('Name', bucket) +
      element('Prefix', prefix) +
      element('Delimiter', delimiter) +
      element('MaxKeys', maxKeys) +
      element('KeyCount', entries.length) +
      element('IsTruncated', truncated) +
      element('ContinuationToken', token) +
      element('NextContinuationToken', nextToken) +
      element('StartAfter', startAfter) +
      contents,
  );
}

async function listUploads(request: Request): Promise<void> {
  await smallBody(request, 0);
  const { bucket, query, options } = request;
  requireBucket(request, bucket);
  if (query.has('delimiter')) throw notImplemented('delimiter on ListMultipartUploads');
  if (query.has('encoding-type')) throw notImplemented('encoding-type');
  const prefix = query.get('prefix') ?? '';
  const keyMarker = query.get('key-marker') || undefined;
  const uploadIdMarker = (keyMarker && query.get('upload-id-marker')) || undefined;
  const maxUploads = maxKeysParameter(request, 'max-uploads');
  const all = options.store.uploads(bucket).filter((upload) => upload.key.startsWith(prefix));
  const markerIndex = all.findIndex((upload) => upload.id === uploadIdMarker && upload.key === keyMarker);
  const after = all.filter((upload, index) => {
    if (keyMarker === undefined) return true;
    const order = compareKeys(upload.key, keyMarker);
    return order > 0 || (order === 0 && markerIndex >= 0 && index > markerIndex);
  });
  const page = after.slice(0, maxUploads);
  const truncated = after.length > page.length;
  const last = page.at(-1);
  const uploads = page
    .map(
      (upload) =>
        `<Upload>${element('Key', upload.key)}${element('UploadId', upload.id)}<Initiator>${owner(request)}</Initiator><Owner>${owner(request)}</Owner>${element('StorageClass', 'STANDARD')}${element('Initiated', isoTime(upload.initiated))}${element('ChecksumAlgorithm', upload.checksum?.algorithm)}${element('ChecksumType', upload.checksum?.type)}</Upload>`,
    )
    .join('');
  sendXml(
    request.res,
    'ListMultipartUploadsResult',
    element('Bucket', bucket) +
      element('KeyMarker', keyMarker ?? '') +
      element('UploadIdMarker', uploadIdMarker ?? '') +
      element('NextKeyMarker', truncated ? last?.key : undefined) +
      element('NextUploadIdMarker', truncated ? last?.id : undefined) +
      element('Prefix', prefix) +
      element('MaxUploads', maxUploads) +
      element('IsTruncated', truncated) +
      uploads,
  );
}

async function deleteObjects(request: Request): Promise<void> {
  const { req, bucket, options } = request;
  const hasChecksum =
    req.headers['content-md5'] !== undefined ||
    req.headers['x-amz-trailer'] !== undefined ||
    checksumValueHeaders(req.headers).length > 0;
  if (!hasChecksum) {
    throw new S3Error(
      400,
      'InvalidRequest',
      'Missing required header for this request: Content-MD5 OR x-amz-checksum-*',
    );
  }
  const document = await xmlBody(request, 'Delete');
  requireBucket(request, bucket);
  const objects = document.children.filter((element) => element.name === 'Object');
  if (objects.length === 0 || objects.length > 1000) {
    throw malformedXml();
  }
  const quiet = child(document, 'Quiet')?.text.trim() === 'true';
  const deleted: string[] = [];
  for (const object of objects) {
    const key = child(object, 'Key')?.text;
    if (key === undefined) {
      throw malformedXml();
    }
    if (child(object, 'VersionId')) throw notImplemented('VersionId in DeleteObjects');
    await options.store.deleteObject(bucket, key);
    deleted.push(key);
  }
  sendXml(
    request.res,
    'DeleteResult',
    quiet ? '' : deleted.map((key) => `<Deleted>${element('Key', key)}</Deleted>`).join(''),
  );
}

// Objects

async function putObject(request: Request): Promise<void> {
  const { req, res, auth, bucket, key, options } = request;
  requireBucket(request, bucket);
  checkKey(key!);
  const attributes = objectAttributes(req.headers);
  const check = writeConditions(req.headers, key!);
  const decoder = bodyDecoder(auth, req.headers, {
    streaming: true,
    maxBytes: MAX_OBJECT_BYTES,
    tooLarge: entityTooLarge,
  });
  const record = await withTempFile(request, async (path) => {
    const body = await receive(request, decoder, createWriteStream(path));
    return options.store.putObject(
      bucket,
      {
        ...attributes,
        key: key!,
        size: body.size,
        etag: `"${body.md5.toString('hex')}"`,
        lastModified: wholeSeconds(Date.now()),
        checksum: body.checksum && { ...body.checksum, type: 'FULL_OBJECT' },
      },
      path,
      check,
    );
  });
  res
    .writeHead(200, {
      etag: record.etag,
      'x-amz-server-side-encryption': 'AES256',
      'content-length': 0,
      ...checksumResponseHeaders(record.checksum),
    })
    .end();
}

function parseRange(header: string | undefined, size: number): { start: number; end: number } | undefined {
  // A Range S3 cannot parse (several ranges among them) is ignored: the whole object is sent.
  const match = header === undefined ? null : /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!match || (match[1] === '' && match[2] === '')) return undefined;
  const unsatisfiable = () =>
    new S3Error(416, 'InvalidRange', 'The requested range is not satisfiable', {
      RangeRequested: header!,
      ActualObjectSize: size,
    });
  if (match[1] === '') {
    const suffix = Number(match[2]);
    if (suffix === 0 || size === 0) throw unsatisfiable();
    return { start: Math.max(0, size - suffix), end: size - 1 };
  }
  const start = Number(match[1]);
  if (match[2] !== '' && Number(match[2]) < start) return undefined;
  if (start >= size) throw unsatisfiable();
  return { start, end: match[2] === '' ? size - 1 : Math.min(Number(match[2]), size - 1) };
}

const RESPONSE_OVERRIDES: Record<string, string> = {
  'response-cache-control': 'cache-control',
  'response-content-disposition': 'content-disposition',
  'response-content-encoding': 'content-encoding',
  'response-content-language': 'content-language',
  'response-content-type': 'content-type',
  'response-expires': 'expires',
};

async function getObject(request: Request): Promise<void> {
  const { req, res, bucket, key, query, options } = request;
  await smallBody(request, 0);
  requireBucket(request, bucket);
  const opened = await options.store.openObject(bucket, key!);
  if (!opened) throw noSuchKey(key!);
  const { record, handle } = opened;
  let handedOver = false;
  try {
    const validators = { etag: record.etag, 'last-modified': new Date(record.lastModified).toUTCString() };
    if (notModified(req.headers, record)) {
      res.writeHead(304, validators).end();
      return;
    }
    const range = parseRange(req.headers.range, record.size);
    const headers: Record<string, string | number> = {
      ...validators,
      'content-type': record.contentType,
      'accept-ranges': 'bytes',
      'x-amz-server-side-encryption': 'AES256',
      ...record.headers,
      ...record.metadata,
    };
    for (const [parameter, header] of Object.entries(RESPONSE_OVERRIDES)) {
      const value = query.get(parameter);
      if (value !== undefined) headers[header] = value;
    }
    const start = range?.start ?? 0;
    const end = range?.end ?? record.size - 1;
    headers['content-length'] = end - start + 1;
    if (range) headers['content-range'] = `bytes ${start}-${end}/${record.size}`;
    // S3 sends the stored checksum when asked, for the whole object only.
    else if (req.headers['x-amz-checksum-mode'] === 'ENABLED')
      Object.assign(headers, checksumResponseHeaders(record.checksum));
    res.writeHead(range ? 206 : 200, headers);
    if (req.method === 'HEAD' || record.size === 0) {
      res.end();
      return;
    }
    handedOver = true;
    // A failure on either side cuts the response short, which is all a client can be told then;
    // and a client that stops reading is no fault of the server's.
    await pipeline(handle.createReadStream({ start, end }), res).catch(() => undefined);
  } finally {
    if (!handedOver) await handle.close();
  }
}

async function deleteObject(request: Request): Promise<void> {
  await smallBody(request, 0);
  requireBucket(request, request.bucket);
  await request.options.store.deleteObject(request.bucket, request.key!);
  request.res.writeHead(204).end();
}

/** `x-amz-copy-source`: `bucket/key` or `/bucket/key`, URL-encoded, perhaps with `?versionId=`. */
function parseCopySource(header: string): [string, string] {
  const [source, version] = header.split('?versionId=');
  if (version !== undefined && version !== 'null') throw notImplemented('versionId in x-amz-copy-source');
  const decoded = percentDecode(source!.replace(/^\//, ''), false).toString('utf8');
  const slash = decoded.indexOf('/');
  if (slash <= 0 || slash === decoded.length - 1) {
    throw new S3Error(400, 'InvalidArgument', 'Invalid copy source object key', {
      ArgumentName: 'x-amz-copy-source',
      ArgumentValue: header,
    });
  }
  return [decoded.slice(0, slash), decoded.slice(slash + 1)];
}

async function copyObject(request: Request): Promise<void> {
  const { req, res, bucket, key, options } = request;
  await smallBody(request, 0);
  requireBucket(request, bucket);
  checkKey(key!);
  const [sourceBucket, sourceKey] = parseCopySource(req.headers['x-amz-copy-source'] as string);
  requireBucket(request, sourceBucket);
  const directive = (req.headers['x-amz-metadata-directive'] as string | undefined) ?? 'COPY';
  if (directive !== 'COPY' && directive !== 'REPLACE') {
    throw new S3Error(400, 'InvalidArgument', 'Unknown metadata directive.', {
      ArgumentName: 'x-amz-metadata-directive',
      ArgumentValue: directive,
    });
  }
  if (sourceBucket === bucket && sourceKey === key && directive === 'COPY') {
    throw new S3Error(
      400,
      'InvalidRequest',
      "This copy request is illegal because it is trying to copy an object to itself without changing the object's metadata, storage class, website redirect location or encryption attributes.",
    );
  }
  const attributes = directive === 'REPLACE' ? objectAttributes(req.headers) : undefined;
  const check = writeConditions(req.headers, key!);
  const opened = await options.store.openObject(sourceBucket, sourceKey);
  if (!opened) throw noSuchKey(sourceKey);
  const { record: source, handle } = opened;
  let handedOver = false;
  try {
    if (notModified(req.headers, source, 'x-amz-copy-source-')) {
      throw preconditionFailed('x-amz-copy-source-If-None-Match');
    }
    const md5 = createHash('md5');
    const hashing = new Transform({
      transform(chunk: Buffer, _encoding, done) {
        md5.update(chunk);
        done(null, chunk);
      },
    });
    handedOver = true;
    const record = await withTempFile(request, async (path) => {
      await pipeline(handle.createReadStream(), hashing, createWriteStream(path));
      return options.store.putObject(
        bucket,
        {
          ...(attributes ?? {
            contentType: source.contentType,
            headers: source.headers,
            metadata: source.metadata,
          }),
          key: key!,
          size: source.size,
          etag: `"${md5.digest('hex')}"`,
          lastModified: wholeSeconds(Date.now()),
          // A whole-object checksum still describes the bytes; a composite one described the parts.
          checksum: source.checksum?.type === 'FULL_OBJECT' ? source.checksum : undefined,
        },
        path,
        check,
      );
    });
    sendXml(
      res,
      'CopyObjectResult',
      element('LastModified', isoTime(record.lastModified)) +
        element('ETag', record.etag) +
        checksumElements(record.checksum),
      { 'x-amz-server-side-encryption': 'AES256' },
    );
  } finally {
    if (!handedOver) await handle.close();
  }
}

// Multipart uploads

async function createUpload(request: Request): Promise<void> {
  const { req, bucket, key, options } = request;
  await smallBody(request, 0);
  requireBucket(request, bucket);
  checkKey(key!);
  const attributes = objectAttributes(req.headers);
  const algorithmHeader = req.headers['x-amz-checksum-algorithm'] as string | undefined;
  const typeHeader = (req.headers['x-amz-checksum-type'] as string | undefined)?.toUpperCase();
  if (typeHeader !== undefined && algorithmHeader === undefined) {
    throw new S3Error(
      400,
      'InvalidRequest',
      'The x-amz-checksum-type header can only be used with the x-amz-checksum-algorithm header.',
    );
  }
  if (typeHeader !== undefined && typeHeader !== 'COMPOSITE' && typeHeader !== 'FULL_OBJECT') {
    throw new S3Error(400, 'InvalidRequest', 'Value for x-amz-checksum-type header is invalid.');
  }
  let checksum: UploadRecord['checksum'];
  if (algorithmHeader !== undefined) {
    const algorithm = parseChecksumAlgorithm(
      algorithmHeader,
      () =>
        new S3Error(
          400,
          'InvalidRequest',
          'Checksum algorithm provided is unsupported. Please try again with any of the valid types: [CRC32, CRC32C, CRC64NVME, SHA1, SHA256]',
        ),
    );
    const type = (typeHeader ?? 'COMPOSITE') as ChecksumType;
    if (type === 'FULL_OBJECT' && (algorithm === 'SHA1' || algorithm === 'SHA256')) {
      throw new S3Error(
        400,
        'InvalidRequest',
        `The FULL_OBJECT checksum type cannot be used with the ${algorithm.toLowerCase()} checksum algorithm.`,
      );
    }
    checksum = { algorithm, type };
  }
  const upload = await options.store.createUpload({ bucket, key: key!, ...attributes, checksum });
  sendXml(
    request.res,
    'InitiateMultipartUploadResult',
    element('Bucket', bucket) + element('Key', key!) + element('UploadId', upload.id),
    checksum ? { 'x-amz-checksum-algorithm': checksum.algorithm, 'x-amz-checksum-type': checksum.type } : {},
  );
}

function uploadOf(request: Request, id: string): UploadRecord {
  const upload = request.options.store.upload(id);
  if (!upload || upload.bucket !== request.bucket || upload.key !== request.key) throw noSuchUpload(id);
  return upload;
}

async function uploadPart(request: Request): Promise<void> {
  const { req, res, auth, bucket, query, options } = request;
  const partNumber = query.get('partNumber') ?? '';
  const id = query.get('uploadId') ?? '';
  if (!/^\d+$/.test(partNumber) || Number(partNumber) < 1 || Number(partNumber) > 10000) {
    throw new S3Error(
      400,
      'InvalidArgument',
      'Part number must be an integer between 1 and 10000, inclusive',
      {
        ArgumentName: 'partNumber',
        ArgumentValue: partNumber,
      },
    );
  }
  requireBucket(request, bucket);
  if (req.headers['x-amz-copy-source'] !== undefined) throw notImplemented('UploadPartCopy');
  const upload = uploadOf(request, id);
  const decoder = bodyDecoder(auth, req.headers, {
    streaming: true,
    maxBytes: MAX_OBJECT_BYTES,
    tooLarge: entityTooLarge,
    computeChecksum: upload.checksum?.type === 'FULL_OBJECT' ? upload.checksum.algorithm : undefined,
  });
  const sent = decoder.clientChecksum;
  if (upload.checksum && (sent ? sent !== upload.checksum.algorithm : upload.checksum.type === 'COMPOSITE')) {
    throw new S3Error(
      400,
      'InvalidRequest',
      `Checksum Type mismatch occurred, expected checksum Type: ${upload.checksum.algorithm.toLowerCase()}, actual checksum Type: ${sent?.toLowerCase() ?? 'null'}`,
    );
  }
  const part = await withTempFile(request, async (path) => {
    const body = await receive(request, decoder, createWriteStream(path));
    return options.store.putPart(
      id,
      {
        number: Number(partNumber),
        size: body.size,
        etag: `"${body.md5.toString('hex')}"`,
        md5: body.md5.toString('hex'),
        lastModified: wholeSeconds(Date.now()),
        checksum: body.checksum,
      },
      path,
    );
  });
  if (!part) throw noSuchUpload(id);
  res
    .writeHead(200, {
      etag: part.etag,
      'x-amz-server-side-encryption': 'AES256',
      'content-length': 0,
      ...checksumResponseHeaders(part.checksum),
    })
    .end();
}

function partChecksums(part: XmlElement): Checksum[] {
  return part.children
    .filter((element) => element.name.startsWith('Checksum'))
    .map((element) => ({
      algorithm: parseChecksumAlgorithm(element.name.slice('Checksum'.length), () => malformedXml()),
      value: element.text.trim(),
    }));
}

async function completeUpload(request: Request): Promise<void> {
  const { req, res, bucket, key, query, options } = request;
  const id = query.get('uploadId') ?? '';
  const document = await xmlBody(request, 'CompleteMultipartUpload');
  requireBucket(request, bucket);
  const check = writeConditions(req.headers, key!);
  await options.store.withUpload(id, async () => {
    const upload = uploadOf(request, id);
    const typeHeader = (req.headers['x-amz-checksum-type'] as string | undefined)?.toUpperCase();
    if (typeHeader !== undefined && typeHeader !== upload.checksum?.type) {
      throw new S3Error(
        400,
        'InvalidRequest',
        `The upload was created using the ${upload.checksum?.type ?? 'null'} checksum mode. The complete request must use the same checksum mode.`,
      );
    }
    const requested = document.children.filter((element) => element.name === 'Part');
    if (requested.length === 0) {
      throw malformedXml();
    }
    // The list as a whole first: well-formed and in ascending order, before any part is looked at.
    const listed = requested.map((part) => {
      const numberText = child(part, 'PartNumber')?.text.trim();
      const etag = child(part, 'ETag')?.text.trim();
      if (numberText === undefined || etag === undefined || !/^\d+$/.test(numberText)) {
        throw malformedXml();
      }
      return { number: Number(numberText), etag, checksums: partChecksums(part) };
    });
    for (const [index, { number }] of listed.entries()) {
      if (index > 0 && number <= listed[index - 1]!.number) {
        throw new S3Error(
          400,
          'InvalidPartOrder',
          'The list of parts was not in ascending order. Parts must be ordered by part number.',
          { UploadId: id },
        );
      }
    }
    const parts: PartRecord[] = [];
    for (const [index, { number, etag, checksums: given }] of listed.entries()) {
      const invalidPart = () =>
        new S3Error(
          400,
          'InvalidPart',
          "One or more of the specified parts could not be found.  The part may not have been uploaded, or the specified entity tag may not match the part's entity tag.",
          { UploadId: id, PartNumber: number, ETag: etag },
        );
      const stored = upload.parts.get(number);
      if (!stored) throw invalidPart();
      if (index < listed.length - 1 && stored.size < MIN_PART_BYTES) {
        throw new S3Error(
          400,
          'EntityTooSmall',
          'Your proposed upload is smaller than the minimum allowed size',
          {
            ProposedSize: stored.size,
            MinSizeAllowed: MIN_PART_BYTES,
          },
        );
      }
      if (!etagMatches(etag, stored.etag)) throw invalidPart();
      if (upload.checksum) {
        if (given.length === 0) {
          throw new S3Error(
            400,
            'InvalidRequest',
            `The upload was created using a ${upload.checksum.algorithm.toLowerCase()} checksum. The complete request must include the checksum for each part. It was missing for part ${number} in the request.`,
          );
        }
        for (const checksum of given) {
          if (checksum.algorithm !== upload.checksum.algorithm) {
            throw new S3Error(
              400,
              'BadDigest',
              `The ${checksum.algorithm.toLowerCase()} you specified for part ${number} did not match what we received.`,
            );
          }
          if (checksum.value !== stored.checksum?.value) throw invalidPart();
        }
      } else if (given.length > 0) {
        throw invalidPart();
      }
      parts.push(stored);
    }
    const size = parts.reduce((total, part) => total + part.size, 0);
    const declaredSize = req.headers['x-amz-mp-object-size'] as string | undefined;
    if (declaredSize !== undefined && Number(declaredSize) !== size) {
      throw new S3Error(
        400,
        'InvalidRequest',
        `The provided 'x-amz-mp-object-size' header value ${declaredSize} does not match what was computed: ${size}`,
      );
    }
    const etag = `"${createHash('md5')
      .update(Buffer.concat(parts.map((part) => Buffer.from(part.md5, 'hex'))))
      .digest('hex')}-${parts.length}"`;
    const record = await withTempFile(request, async (path) => {
      const whole =
        upload.checksum?.type === 'FULL_OBJECT' ? createChecksum(upload.checksum.algorithm) : undefined;
      const out = createWriteStream(path);
      for (const part of parts) {
        for await (const chunk of createReadStream(options.store.partPath(id, part))) {
          whole?.update(chunk as Buffer);
          if (!out.write(chunk)) await once(out, 'drain');
        }
      }
      out.end();
      await finished(out);
      let checksum: ObjectRecord['checksum'];
      if (upload.checksum && whole) {
        checksum = { ...upload.checksum, value: whole.digest().toString('base64') };
      } else if (upload.checksum) {
        const composite = createChecksum(upload.checksum.algorithm);
        for (const part of parts) composite.update(Buffer.from(part.checksum!.value, 'base64'));
        checksum = { ...upload.checksum, value: `${composite.digest().toString('base64')}-${parts.length}` };
      }
      const sent =
        upload.checksum && (req.headers[checksumHeader(upload.checksum.algorithm)] as string | undefined);
      if (checksum && sent !== undefined) {
        const expected =
          checksum.type === 'COMPOSITE' && !sent.includes('-') ? `${sent}-${parts.length}` : sent;
        if (expected !== checksum.value) {
          throw new S3Error(
            400,
            'BadDigest',
            `The ${checksum.algorithm} you specified did not match the calculated checksum.`,
          );
        }
      }
      return options.store.putObject(
        bucket,
        {
          contentType: upload.contentType,
          headers: upload.headers,
          metadata: upload.metadata,
          key: key!,
          size,
          etag,
          lastModified: wholeSeconds(Date.now()),
          checksum,
        },
        path,
        check,
      );
    });
    await options.store.removeUpload(id);
    const location = `http://${req.headers.host}/${bucket}/${key!
      .split('/')
      .map((segment) => encodeURIComponent(segment))
      .join('/')}`;
    sendXml(
      res,
      'CompleteMultipartUploadResult',
      element('Location', location) +
        element('Bucket', bucket) +
        element('Key', key!) +
        element('ETag', record.etag) +
        checksumElements(record.checksum),
      { 'x-amz-server-side-encryption': 'AES256' },
    );
  });
}

async function abortUpload(request: Request): Promise<void> {
  const { bucket, query, options } = request;
  const id = query.get('uploadId') ?? '';
  await smallBody(request, 0);
  requireBucket(request, bucket);
  await options.store.withUpload(id, async () => {
    uploadOf(request, id);
    await options.store.removeUpload(id);
  });
  request.res.writeHead(204).end();
}
