// A request body as S3 checks it while it streams: the x-amz-content-sha256 it was signed with,
// the aws-chunked framing of streamed uploads (unsigned with a trailer, or signed chunk by chunk),
// Content-MD5 and the flexible checksums (x-amz-checksum-*), in a header or a trailer.
import { createHash, type Hash } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import { Transform, type TransformCallback } from 'node:stream';
import { crc32 } from 'node:zlib';
import { S3Error } from './protocol.ts';
import {
  type Authorization,
  chunkSignature,
  STREAMING_SIGNED,
  STREAMING_SIGNED_TRAILER,
  STREAMING_UNSIGNED_TRAILER,
  sameHex,
  trailerSignature,
  UNSIGNED_PAYLOAD,
} from './sigv4.ts';

export const CHECKSUM_ALGORITHMS = ['CRC32', 'CRC32C', 'SHA1', 'SHA256'] as const;
export type ChecksumAlgorithm = (typeof CHECKSUM_ALGORITHMS)[number];
/** Algorithms S3 takes that this server cannot compute: refused loudly rather than stored unchecked. */
const UNSUPPORTED_ALGORITHMS = ['CRC64NVME', 'SHA512', 'MD5', 'XXHASH64', 'XXHASH3', 'XXHASH128'];
const DIGEST_BYTES: Record<ChecksumAlgorithm, number> = { CRC32: 4, CRC32C: 4, SHA1: 20, SHA256: 32 };
/** `x-amz-checksum-` headers that name no checksum value. */
const CHECKSUM_PARAMETERS = ['x-amz-checksum-mode', 'x-amz-checksum-algorithm', 'x-amz-checksum-type'];
const MIN_CHUNK_BYTES = 8192;
const MAX_LINE_BYTES = 4096;

export interface Checksum {
  algorithm: ChecksumAlgorithm;
  /** Base64, as in the x-amz-checksum-* headers. */
  value: string;
}

export interface Hasher {
  update(data: Buffer): void;
  digest(): Buffer;
}

export function checksumHeader(algorithm: ChecksumAlgorithm): string {
  return `x-amz-checksum-${algorithm.toLowerCase()}`;
}

/** Unsupported algorithms are NotImplemented; names S3 does not know are the caller's `invalid`. */
export function parseChecksumAlgorithm(name: string, invalid: () => S3Error): ChecksumAlgorithm {
  const upper = name.toUpperCase();
  if (UNSUPPORTED_ALGORITHMS.includes(upper)) {
    throw new S3Error(501, 'NotImplemented', `This test server does not compute ${upper} checksums.`, {
      Header: `x-amz-checksum-${name.toLowerCase()}`,
    });
  }
  const algorithm = CHECKSUM_ALGORITHMS.find((candidate) => candidate === upper);
  if (!algorithm) throw invalid();
  return algorithm;
}

/** The request's x-amz-checksum-* headers that carry a checksum value. */
export function checksumValueHeaders(headers: IncomingHttpHeaders): string[] {
  return Object.keys(headers).filter(
    (name) => name.startsWith('x-amz-checksum-') && !CHECKSUM_PARAMETERS.includes(name),
  );
}

export function isChecksumValue(algorithm: ChecksumAlgorithm, value: string): boolean {
  return (
    /^[A-Za-z0-9+/]*={0,2}$/.test(value) && Buffer.from(value, 'base64').length === DIGEST_BYTES[algorithm]
  );
}

export function createChecksum(algorithm: ChecksumAlgorithm): Hasher {
  if (algorithm === 'SHA1' || algorithm === 'SHA256') {
    const hash = createHash(algorithm === 'SHA1' ? 'sha1' : 'sha256');
    return { update: (data) => hash.update(data), digest: () => hash.digest() };
  }
  let value = 0;
  const step = algorithm === 'CRC32' ? crc32 : crc32c;
  return {
    update: (data) => {
      value = step(data, value);
    },
    digest: () => {
      const digest = Buffer.alloc(4);
      digest.writeUInt32BE(value);
      return digest;
    },
  };
}

const CRC32C_TABLE = Uint32Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
  return c;
});

/** CRC-32C (Castagnoli), continuing from `previous` as zlib.crc32 does; node:zlib has none. */
export function crc32c(data: Buffer, previous = 0): number {
  let crc = ~previous >>> 0;
  for (const byte of data) crc = CRC32C_TABLE[(crc ^ byte) & 0xff]! ^ (crc >>> 8);
  return ~crc >>> 0;
}

export interface BodyOptions {
  /** PutObject and UploadPart: aws-chunked bodies are theirs only, and they need a length. */
  streaming: boolean;
  /** Largest body the operation takes. */
  maxBytes: number;
  /** Over `maxBytes`: S3's answer differs between uploads and XML documents. */
  tooLarge: (size: number) => S3Error;
  /** Computes this checksum when the client sent none (a part of a FULL_OBJECT upload). */
  computeChecksum?: ChecksumAlgorithm | undefined;
}

export interface ReceivedBody {
  size: number;
  md5: Buffer;
  checksum: Checksum | undefined;
}

export const incompleteBody = () =>
  new S3Error(400, 'IncompleteBody', 'The request body terminated unexpectedly');
const lengthMismatch = () =>
  new S3Error(
    400,
    'IncompleteBody',
    'You did not provide the number of bytes specified by the Content-Length HTTP header',
  );
const malformedTrailer = () =>
  new S3Error(
    400,
    'MalformedTrailerError',
    'The request contained trailing data that was not well-formed or did not conform to our published schema.',
  );

/**
 * Checks a request's body headers before any byte is read (so a refused upload is refused before
 * `100 Continue`) and returns the stream that decodes and verifies the body: it passes on the
 * object's bytes and fails with S3's error at the first fault, at the latest when the body ends.
 */
export function bodyDecoder(
  auth: Authorization,
  headers: IncomingHttpHeaders,
  options: BodyOptions,
): BodyDecoder {
  const form = auth.payloadHash;
  const chunked = [STREAMING_UNSIGNED_TRAILER, STREAMING_SIGNED, STREAMING_SIGNED_TRAILER].includes(form);
  if (chunked && !options.streaming) {
    throw new S3Error(400, 'InvalidRequest', 'The value of x-amz-content-sha256 header is invalid.');
  }
  let declaredSize: number;
  if (chunked) {
    const decoded = headers['x-amz-decoded-content-length'];
    if (decoded === undefined || !/^\d+$/.test(decoded as string)) {
      throw new S3Error(411, 'MissingContentLength', 'You must provide the Content-Length HTTP header.');
    }
    declaredSize = Number(decoded);
  } else if (headers['content-length'] !== undefined) {
    declaredSize = Number(headers['content-length']);
  } else if (headers['transfer-encoding'] !== undefined || options.streaming) {
    throw new S3Error(411, 'MissingContentLength', 'You must provide the Content-Length HTTP header.');
  } else {
    declaredSize = 0;
  }
  if (declaredSize > options.maxBytes) throw options.tooLarge(declaredSize);

  const checksumHeaders = checksumValueHeaders(headers);
  const trailerName = (headers['x-amz-trailer'] as string | undefined)?.trim().toLowerCase();
  if (checksumHeaders.length + (trailerName === undefined ? 0 : 1) > 1) {
    throw new S3Error(
      400,
      'InvalidRequest',
      'Expecting a single x-amz-checksum- header. Multiple checksum Types are not allowed.',
    );
  }
  let expected: { algorithm: ChecksumAlgorithm; value: string | undefined } | undefined;
  if (checksumHeaders.length === 1) {
    const name = checksumHeaders[0]!;
    const algorithm = parseChecksumAlgorithm(
      name.slice('x-amz-checksum-'.length),
      () =>
        new S3Error(
          400,
          'InvalidRequest',
          'The algorithm type you specified in x-amz-checksum- header is invalid.',
        ),
    );
    const value = headers[name] as string;
    if (!isChecksumValue(algorithm, value)) {
      throw new S3Error(400, 'InvalidRequest', `Value for ${name} header is invalid.`);
    }
    expected = { algorithm, value };
  }
  if (trailerName !== undefined) {
    if (![STREAMING_UNSIGNED_TRAILER, STREAMING_SIGNED_TRAILER].includes(form)) {
      throw new S3Error(
        400,
        'InvalidRequest',
        'x-amz-trailer is only taken with a STREAMING-*-TRAILER payload.',
      );
    }
    const unsupported = () =>
      new S3Error(400, 'InvalidRequest', 'The value specified in the x-amz-trailer header is not supported');
    if (!trailerName.startsWith('x-amz-checksum-')) throw unsupported();
    expected = {
      algorithm: parseChecksumAlgorithm(trailerName.slice('x-amz-checksum-'.length), unsupported),
      value: undefined,
    };
  } else if (form === STREAMING_SIGNED_TRAILER) {
    throw new S3Error(
      400,
      'InvalidRequest',
      'A STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER body needs x-amz-trailer.',
    );
  }
  if (headers['x-amz-sdk-checksum-algorithm'] !== undefined && expected === undefined) {
    throw new S3Error(
      400,
      'InvalidRequest',
      'x-amz-sdk-checksum-algorithm specified, but no corresponding x-amz-checksum-* or x-amz-trailer headers were found.',
    );
  }

  let contentMd5: Buffer | undefined;
  const md5Header = headers['content-md5'] as string | undefined;
  if (md5Header !== undefined) {
    contentMd5 = Buffer.from(md5Header, 'base64');
    if (contentMd5.length !== 16 || !/^[A-Za-z0-9+/]*={0,2}$/.test(md5Header)) {
      throw new S3Error(400, 'InvalidDigest', 'The Content-MD5 you specified is not valid.');
    }
  }
  return new BodyDecoder({
    auth,
    chunked,
    signed: form === STREAMING_SIGNED || form === STREAMING_SIGNED_TRAILER,
    declaredSize,
    options,
    contentMd5,
    expected,
  });
}

interface DecoderSetup {
  auth: Authorization;
  chunked: boolean;
  signed: boolean;
  declaredSize: number;
  options: BodyOptions;
  contentMd5: Buffer | undefined;
  expected: { algorithm: ChecksumAlgorithm; value: string | undefined } | undefined;
}

type State = 'size' | 'data' | 'data-end' | 'trailer' | 'end' | 'done';

export class BodyDecoder extends Transform {
  readonly #setup: DecoderSetup;
  readonly #md5 = createHash('md5');
  readonly #sha256: Hash | undefined;
  readonly #checksum: Hasher | undefined;
  readonly #checksumAlgorithm: ChecksumAlgorithm | undefined;
  #size = 0;
  #result: ReceivedBody | undefined;
  // aws-chunked state
  #state: State = 'size';
  #line = Buffer.alloc(0);
  #chunkLeft = 0;
  #chunkNumber = 0;
  #lastChunkSize: number | undefined;
  #chunkHash: Hash | undefined;
  #chunkSignature = '';
  #previousSignature: string;
  readonly #trailers: [string, string][] = [];

  constructor(setup: DecoderSetup) {
    super();
    this.#setup = setup;
    const { payloadHash } = setup.auth;
    this.#sha256 = setup.chunked || payloadHash === UNSIGNED_PAYLOAD ? undefined : createHash('sha256');
    this.#checksumAlgorithm = setup.expected?.algorithm ?? setup.options.computeChecksum;
    this.#checksum = this.#checksumAlgorithm && createChecksum(this.#checksumAlgorithm);
    this.#previousSignature = setup.auth.signature;
  }

  /** The checksum algorithm the client sent a value for, in a header or a trailer. */
  get clientChecksum(): ChecksumAlgorithm | undefined {
    return this.#setup.expected?.algorithm;
  }

  /** The verified body's size, MD5 and checksum, once the stream has finished. */
  get result(): ReceivedBody {
    if (!this.#result) throw new Error('The body has not been read to its end');
    return this.#result;
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    try {
      if (this.#setup.chunked) this.#decode(chunk);
      else this.#data(chunk);
      callback();
    } catch (error) {
      callback(error as Error);
    }
  }

  override _flush(callback: TransformCallback): void {
    try {
      if (this.#setup.chunked && this.#state !== 'done') throw incompleteBody();
      this.#finish();
      callback();
    } catch (error) {
      callback(error as Error);
    }
  }

  #data(data: Buffer): void {
    this.#size += data.length;
    if (this.#size > this.#setup.options.maxBytes) throw this.#setup.options.tooLarge(this.#size);
    this.#md5.update(data);
    this.#sha256?.update(data);
    this.#checksum?.update(data);
    this.push(data);
  }

  #decode(input: Buffer): void {
    let offset = 0;
    while (offset < input.length) {
      if (this.#state === 'data') {
        const data = input.subarray(offset, offset + this.#chunkLeft);
        this.#chunkHash?.update(data);
        this.#data(data);
        offset += data.length;
        this.#chunkLeft -= data.length;
        if (this.#chunkLeft === 0) this.#state = 'data-end';
        continue;
      }
      if (this.#state === 'done') throw incompleteBody();
      const newline = input.indexOf(0x0a, offset);
      const end = newline < 0 ? input.length : newline + 1;
      this.#line = Buffer.concat([this.#line, input.subarray(offset, end)]);
      offset = end;
      if (this.#line.length > MAX_LINE_BYTES) throw incompleteBody();
      if (newline < 0) continue;
      if (this.#line.at(-2) !== 0x0d) throw incompleteBody();
      const line = this.#line.subarray(0, -2).toString('latin1');
      this.#line = Buffer.alloc(0);
      this.#onLine(line);
    }
  }

  #onLine(line: string): void {
    if (this.#state === 'size') {
      this.#chunkHeader(line);
    } else if (this.#state === 'trailer') {
      if (line === '') this.#endTrailers();
      else this.#trailer(line);
    } else if (line !== '') {
      throw incompleteBody();
    } else if (this.#state === 'data-end') {
      this.#verifyChunk();
      this.#state = 'size';
    } else {
      this.#state = 'done';
    }
  }

  #trailer(line: string): void {
    const colon = line.indexOf(':');
    if (colon < 0 || this.#trailers.length === 2) throw malformedTrailer();
    this.#trailers.push([line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim()]);
  }

  #chunkHeader(line: string): void {
    const match = this.#setup.signed
      ? /^([0-9a-fA-F]{1,16});chunk-signature=([0-9a-f]{64})$/.exec(line)
      : /^([0-9a-fA-F]{1,16})$/.exec(line);
    if (!match) throw incompleteBody();
    const size = Number.parseInt(match[1]!, 16);
    this.#chunkNumber++;
    // Only the last chunk with data may be small, so a small one followed by more data is refused.
    if (size > 0 && this.#lastChunkSize !== undefined && this.#lastChunkSize < MIN_CHUNK_BYTES) {
      throw new S3Error(
        400,
        'InvalidChunkSizeError',
        'Only the last chunk is allowed to have a size less than 8192 bytes',
        {
          Chunk: this.#chunkNumber,
          BadChunkSize: this.#lastChunkSize,
        },
      );
    }
    if (this.#size + size > this.#setup.declaredSize) throw lengthMismatch();
    this.#lastChunkSize = size;
    this.#chunkSignature = match[2] ?? '';
    this.#chunkHash = this.#setup.signed ? createHash('sha256') : undefined;
    if (size > 0) {
      this.#chunkLeft = size;
      this.#state = 'data';
      return;
    }
    if (this.#size !== this.#setup.declaredSize) throw lengthMismatch();
    this.#verifyChunk();
    this.#state = this.#setup.expected && this.#setup.expected.value === undefined ? 'trailer' : 'end';
  }

  #verifyChunk(): void {
    if (!this.#chunkHash) return;
    const expected = chunkSignature(this.#setup.auth, this.#previousSignature, this.#chunkHash.digest('hex'));
    if (!sameHex(expected, this.#chunkSignature)) throw this.#signatureMismatch(this.#chunkSignature);
    this.#previousSignature = expected;
  }

  #endTrailers(): void {
    const { signed, expected } = this.#setup;
    const name = checksumHeader(expected!.algorithm);
    const [checksum, signature, extra] = this.#trailers;
    if (
      !checksum ||
      checksum[0] !== name ||
      extra ||
      (signed ? signature?.[0] !== 'x-amz-trailer-signature' : signature)
    ) {
      throw malformedTrailer();
    }
    if (!isChecksumValue(expected!.algorithm, checksum[1])) {
      throw new S3Error(400, 'InvalidRequest', `Value for ${name} trailing header is invalid.`);
    }
    if (signed) {
      const computed = trailerSignature(
        this.#setup.auth,
        this.#previousSignature,
        `${name}:${checksum[1]}\n`,
      );
      if (!sameHex(computed, signature![1])) throw this.#signatureMismatch(signature![1]);
    }
    expected!.value = checksum[1];
    this.#state = 'done';
  }

  #signatureMismatch(provided: string): S3Error {
    return new S3Error(
      403,
      'SignatureDoesNotMatch',
      'The request signature we calculated does not match the signature you provided. Check your key and signing method.',
      { AWSAccessKeyId: this.#setup.auth.accessKeyId, SignatureProvided: provided },
    );
  }

  #finish(): void {
    const { auth, contentMd5, expected, declaredSize } = this.#setup;
    if (!this.#setup.chunked && this.#size !== declaredSize) throw lengthMismatch();
    if (this.#sha256) {
      const computed = this.#sha256.digest('hex');
      if (computed !== auth.payloadHash) {
        throw new S3Error(
          400,
          'XAmzContentSHA256Mismatch',
          "The provided 'x-amz-content-sha256' header does not match what was computed.",
          { ClientComputedContentSHA256: auth.payloadHash, S3ComputedContentSHA256: computed },
        );
      }
    }
    const md5 = this.#md5.digest();
    if (contentMd5 && !contentMd5.equals(md5)) {
      throw new S3Error(400, 'BadDigest', 'The Content-MD5 you specified did not match what we received.');
    }
    let checksum: Checksum | undefined;
    if (this.#checksum && this.#checksumAlgorithm) {
      const value = this.#checksum.digest().toString('base64');
      if (expected?.value !== undefined && expected.value !== value) {
        throw new S3Error(
          400,
          'BadDigest',
          `The ${this.#checksumAlgorithm} you specified did not match the calculated checksum.`,
        );
      }
      checksum = { algorithm: this.#checksumAlgorithm, value };
    }
    this.#result = { size: this.#size, md5, checksum };
  }
}
