import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import type { ReadableStream as NodeReadableStream } from 'node:stream/web';
import {
  AbortMultipartUploadCommand,
  CopyObjectCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  S3Client,
  S3ServiceException,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import {
  type BlobStorage,
  BlobTooLarge,
  type Logger,
  limitedUpload,
  type S3Location,
  serviceUnavailable,
  UploadInterrupted,
} from '../../src/index.ts';

/** Parts of a multipart upload, this many in flight: what one upload holds in memory, at most. */
const PART_BYTES = 8 * 1024 * 1024;
const PARTS_IN_FLIGHT = 2;
/** S3 copies one object in one call up to this size; beyond, a multipart copy would be needed. */
export const MAX_S3_BLOB_BYTES = 5 * 1024 * 1024 * 1024;
const SHA256_HEX = /^[0-9a-f]{64}$/;
const TEMP_NAME = /^\d+-[0-9a-f]{24}$/;

/** The standard AWS variables of the gateway's environment; absent, the SDK's own chain is used. */
export interface S3Credentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
}

/**
 * Blobs in an S3-compatible bucket: `sha256/<first two hex digits>/<sha256>` under the prefix,
 * uploads in progress under `tmp/`. An upload streams to a temporary object (multipart, two 8 MiB
 * parts in flight, whatever its size) while it is hashed; its commit copies it to its content
 * address inside the bucket and drops the temporary object. Checksums are sent and checked only
 * where S3 requires them, so that any compatible store accepts the requests; the SDK retries
 * failed calls with backoff, and storage that cannot be reached is SERVICE_UNAVAILABLE.
 */
export function createS3Storage(
  location: S3Location,
  { credentials, log }: { credentials?: S3Credentials; log: Logger },
): BlobStorage {
  const client = new S3Client({
    region: location.region,
    endpoint: location.endpoint,
    forcePathStyle: location.forcePathStyle,
    credentials,
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    maxAttempts: 3,
    requestHandler: { connectionTimeout: 5000, requestTimeout: 30_000 },
  });
  const Bucket = location.bucket;
  const objectKey = (sha256: string) => {
    if (!SHA256_HEX.test(sha256)) throw new Error('Not a SHA-256 content address');
    return `${location.prefix}sha256/${sha256.slice(0, 2)}/${sha256}`;
  };
  const tempKey = (name: string) => {
    if (!TEMP_NAME.test(name)) throw new Error('Not a temporary blob name');
    return `${location.prefix}tmp/${name}`;
  };
  /** Runs an S3 call; an answer that says the storage cannot serve becomes SERVICE_UNAVAILABLE. */
  const send = async <T>(run: () => Promise<T>): Promise<T> => {
    try {
      return await run();
    } catch (error) {
      throw unavailable(error, log) ?? error;
    }
  };

  return {
    async stage(source, maxBytes) {
      const name = `${process.pid}-${randomBytes(12).toString('hex')}`;
      const hash = createHash('sha256');
      const counted = limitedUpload(source, maxBytes, (chunk) => hash.update(chunk));
      const upload = new Upload({
        client,
        params: { Bucket, Key: tempKey(name), Body: Readable.fromWeb(counted.stream as NodeReadableStream) },
        partSize: PART_BYTES,
        queueSize: PARTS_IN_FLIGHT,
        leavePartsOnError: false,
      });
      try {
        await upload.done();
      } catch (error) {
        // The upload aborted itself; a temporary object that got through goes too.
        await client.send(new DeleteObjectCommand({ Bucket, Key: tempKey(name) })).catch(() => {});
        if (counted.tooLarge()) throw new BlobTooLarge(maxBytes);
        if (counted.failure() !== undefined) throw new UploadInterrupted(counted.failure());
        throw unavailable(error, log) ?? error;
      }
      return { key: name, sha256: hash.digest('hex'), size: counted.size() };
    },
    async commit(staged) {
      await send(() =>
        client.send(
          new CopyObjectCommand({
            Bucket,
            Key: objectKey(staged.sha256),
            CopySource: `${Bucket}/${encodeURIComponent(tempKey(staged.key)).replaceAll('%2F', '/')}`,
          }),
        ),
      );
      await send(() => client.send(new DeleteObjectCommand({ Bucket, Key: tempKey(staged.key) })));
    },
    async discard(staged) {
      await send(() => client.send(new DeleteObjectCommand({ Bucket, Key: tempKey(staged.key) })));
    },
    async exists(sha256) {
      try {
        await send(() => client.send(new HeadObjectCommand({ Bucket, Key: objectKey(sha256) })));
        return true;
      } catch (error) {
        if (isMissing(error)) return false;
        throw error;
      }
    },
    async read(sha256, range, signal) {
      try {
        const answer = await send(() =>
          client.send(
            new GetObjectCommand({
              Bucket,
              Key: objectKey(sha256),
              Range: range ? `bytes=${range.start}-${range.end}` : undefined,
            }),
            { abortSignal: signal },
          ),
        );
        return answer.Body ? (answer.Body.transformToWebStream() as ReadableStream<Uint8Array>) : null;
      } catch (error) {
        if (isMissing(error)) return null;
        throw error;
      }
    },
    async delete(sha256) {
      await send(() => client.send(new DeleteObjectCommand({ Bucket, Key: objectKey(sha256) })));
    },
    async sweep(olderThan) {
      const prefix = `${location.prefix}tmp/`;
      const before = olderThan.getTime();
      let swept = 0;
      let token: string | undefined;
      do {
        const listed = await send(() =>
          client.send(new ListObjectsV2Command({ Bucket, Prefix: prefix, ContinuationToken: token })),
        );
        for (const object of listed.Contents ?? []) {
          if (!object.Key || (object.LastModified?.getTime() ?? 0) > before) continue;
          await send(() => client.send(new DeleteObjectCommand({ Bucket, Key: object.Key })));
          swept++;
        }
        token = listed.IsTruncated ? listed.NextContinuationToken : undefined;
      } while (token);
      // Multipart uploads a crash left open hold parts the bucket keeps (and bills) until aborted.
      const uploads = await send(() =>
        client.send(new ListMultipartUploadsCommand({ Bucket, Prefix: prefix })),
      );
      for (const upload of uploads.Uploads ?? []) {
        if (!upload.Key || !upload.UploadId || (upload.Initiated?.getTime() ?? 0) > before) continue;
        await send(() =>
          client.send(
            new AbortMultipartUploadCommand({ Bucket, Key: upload.Key, UploadId: upload.UploadId }),
          ),
        );
        swept++;
      }
      return swept;
    },
    // A page of the listing (up to 1000 keys) at a time.
    async *contents(olderThan) {
      const prefix = `${location.prefix}sha256/`;
      let token: string | undefined;
      do {
        const listed = await send(() =>
          client.send(new ListObjectsV2Command({ Bucket, Prefix: prefix, ContinuationToken: token })),
        );
        for (const object of listed.Contents ?? []) {
          const sha256 = object.Key?.slice(prefix.length + 3) ?? '';
          if (!SHA256_HEX.test(sha256) || object.Key !== objectKey(sha256)) continue;
          if ((object.LastModified?.getTime() ?? Number.POSITIVE_INFINITY) >= olderThan.getTime()) continue;
          yield { sha256, size: object.Size ?? 0 };
        }
        token = listed.IsTruncated ? listed.NextContinuationToken : undefined;
      } while (token);
    },
  };
}

/** Whether S3 answered that there is no such object. */
const isMissing = (error: unknown) =>
  error instanceof S3ServiceException &&
  (error.name === 'NoSuchKey' || error.name === 'NotFound' || error.$metadata.httpStatusCode === 404);

const UNREACHABLE = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENOTFOUND',
  'EPIPE',
]);

/** SERVICE_UNAVAILABLE for an error that says the storage cannot serve now (unreachable, refusing the key, 5xx, throttled); else null. */
function unavailable(error: unknown, log: Logger) {
  const status = error instanceof S3ServiceException ? error.$metadata.httpStatusCode : undefined;
  const code = (error as { code?: string } | null)?.code;
  const name = (error as { name?: string } | null)?.name;
  // A refused key (401, 403) is a misconfiguration, but the storage still cannot serve: an outage
  // to clients, an error in the log.
  const refused = status === 401 || status === 403;
  const outage =
    refused ||
    (status !== undefined && (status >= 500 || status === 429)) ||
    (code !== undefined && UNREACHABLE.has(code)) ||
    name === 'TimeoutError' ||
    name === 'RequestTimeout';
  if (!outage) return null;
  if (refused) log.error({ err: error }, 'blob storage (S3) refuses the credentials');
  else log.warn({ err: error }, 'blob storage (S3) does not answer');
  return serviceUnavailable('The blob storage does not answer; retry shortly.');
}
