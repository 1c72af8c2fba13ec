/** Moving big files through a gateway's blob routes, for the blob benchmarks (`bench:blobs`, `bench:blob-storage`). */
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { open } from 'node:fs/promises';
import { request } from 'node:http';
import { pipeline } from 'node:stream/promises';

export const MIB = 1024 * 1024;

/** Seconds since `start` (a `process.hrtime.bigint()`). */
export const seconds = (start: bigint) => Number(process.hrtime.bigint() - start) / 1e9;

/** `POST /blobs` of a file of `size` bytes, streamed with its length; the time to the 201 and the blob. */
export async function uploadFile(url: string, key: string, source: string, size: number) {
  const start = process.hrtime.bigint();
  const answer = await new Promise<{ status: number; body: string }>((resolve, reject) => {
    const upload = request(`${url}/blobs?filename=bench.bin`, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${key}`,
        'content-type': 'application/octet-stream',
        'content-length': String(size),
      },
    });
    upload.on('response', async (response) => {
      let body = '';
      for await (const chunk of response) body += chunk;
      resolve({ status: response.statusCode!, body });
    });
    upload.on('error', reject);
    pipeline(createReadStream(source, { highWaterMark: MIB }), upload).catch(reject);
  });
  const elapsed = seconds(start);
  if (answer.status !== 201) throw new Error(`upload: HTTP ${answer.status} ${answer.body}`);
  return {
    elapsed,
    blob: JSON.parse(answer.body) as { id: string; sha256: string; size: number; url: string },
  };
}

/** GET into a file, fsynced (as a copy's target is); the seconds it took. */
export async function downloadFile(url: string, key: string, path: string, target: string) {
  const start = process.hrtime.bigint();
  await new Promise<void>((resolve, reject) => {
    request(`${url}${path}`, { headers: { authorization: `Bearer ${key}` } }, (response) => {
      if (response.statusCode !== 200) {
        reject(new Error(`download: HTTP ${response.statusCode}`));
        response.resume();
        return;
      }
      pipeline(response, createWriteStream(target, { flush: true })).then(resolve, reject);
    })
      .on('error', reject)
      .end();
  });
  return seconds(start);
}

export async function sha256File(path: string) {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path, { highWaterMark: MIB })) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** `size` incompressible bytes (a 64 MiB random block, repeated) written to `path`; their SHA-256. */
export async function makeSource(path: string, size: number) {
  const block = randomBytes(Math.min(size, 64 * MIB));
  const hash = createHash('sha256');
  const file = await open(path, 'w');
  try {
    for (let written = 0; written < size; written += block.length) {
      const part = block.subarray(0, Math.min(block.length, size - written));
      await file.write(part);
      hash.update(part);
    }
    await file.sync();
  } finally {
    await file.close();
  }
  return hash.digest('hex');
}
