import { Readable } from 'node:stream';
import { PorticoError } from '../../errors.ts';
import {
  type BlobStorage,
  BlobTooLarge,
  limitedUpload,
  type StagedBlob,
  UploadInterrupted,
} from '../blob-storage.ts';
import { type RemoteConnection, servingCalls } from './connection.ts';

/** The header that tells the data server an upload's limit (it applies the lower of it and its own). */
export const MAX_BYTES_HEADER = 'x-portico-max-bytes';

/**
 * Blob bytes on the data server: uploads stream to its storage as they arrive and downloads
 * stream from it (Range passed through), so no side holds a whole blob. Placing and dropping
 * bytes at a content address happen there, under its lock (`/blobs/create`, `/blobs/delete`).
 */
export function remoteBytes(connection: RemoteConnection, notServing: () => string | null): BlobStorage {
  const { gate, call } = servingCalls(connection, notServing);
  return {
    async stage(source, maxBytes) {
      gate();
      const limited = limitedUpload(source, maxBytes);
      try {
        const response = await connection.request({
          method: 'PUT',
          path: '/blobs/staged',
          headers: { 'content-type': 'application/octet-stream', [MAX_BYTES_HEADER]: String(maxBytes) },
          body: limited.stream,
        });
        const chunks: Buffer[] = [];
        for await (const chunk of response) chunks.push(chunk as Buffer);
        return JSON.parse(Buffer.concat(chunks).toString('utf8')) as StagedBlob;
      } catch (error) {
        if (limited.tooLarge()) throw new BlobTooLarge(maxBytes);
        if (limited.failure() !== undefined) throw new UploadInterrupted(limited.failure());
        if (error instanceof PorticoError && error.code === 'PAYLOAD_TOO_LARGE')
          throw new BlobTooLarge(maxBytes);
        throw error;
      }
    },
    async commit(staged) {
      await call('/blobs/commit', { staged });
    },
    async discard(staged) {
      await call('/blobs/discard', { staged });
    },
    async exists(sha256) {
      return (await call<{ exists: boolean }>('/blobs/exists', { sha256 })).exists;
    },
    async read(sha256, range, signal) {
      gate();
      try {
        const response = await connection.request({
          method: 'GET',
          path: `/blobs/bytes/${encodeURIComponent(sha256)}`,
          headers: range ? { range: `bytes=${range.start}-${range.end}` } : {},
          signal,
          long: true,
        });
        return Readable.toWeb(response) as unknown as ReadableStream<Uint8Array>;
      } catch (error) {
        if (error instanceof PorticoError && error.code === 'NOT_FOUND') return null;
        throw error;
      }
    },
    // Bytes on a data server are dropped by it alone, under its lock, when its last blob referencing
    // them goes (`/blobs/delete`, `/blobs/collect`): a gateway never removes them directly.
    delete: async () => {},
    // The data server sweeps its own temporary objects and unreferenced bytes.
    sweep: async () => 0,
    async *contents() {},
  };
}
