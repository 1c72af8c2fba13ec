// A lease holder for paused-holder.test.ts, run as its own process so the test can SIGSTOP it.
// It takes the lease once, then loops: read the counter, "work" a little, write counter + 1
// fenced by its token. It prints `read`, `ack <value>` and, when its write is refused, `fenced`.
import {
  AcquireLeaseDocument,
  createClient,
  DocumentDocument,
  PorticoClientError,
  PutDocumentDocument,
} from '../../client/index.ts';

const { PORTICO_URL: url = '', PORTICO_KEY: apiKey, LEASE: lease = '', FENCED } = process.env;
const client = createClient({ url, apiKey });

const granted = await client.mutate(AcquireLeaseDocument, { key: lease, ttlSeconds: 1, waitSeconds: 5 });
const token = granted.acquireLease?.token;
if (!token) throw new Error('no lease');
console.log(`token ${token}`);
for (;;) {
  const read = await client.query(DocumentDocument, { collection: 'counters', id: 'c' });
  const value = (read.document?.data.value as number | undefined) ?? 0;
  console.log('read');
  // Long enough for the test's SIGSTOP to land before the write is sent, even on a loaded machine.
  await new Promise((resolve) => setTimeout(resolve, 250));
  try {
    await client.mutate(PutDocumentDocument, {
      collection: 'counters',
      id: 'c',
      data: { value: value + 1 },
      fence: FENCED === '1' ? { lease, token } : null,
    });
  } catch (error) {
    if (!(error instanceof PorticoClientError) || error.code !== 'FENCE_REJECTED') throw error;
    console.log('fenced');
    process.exit(0);
  }
  console.log(`ack ${value + 1}`);
}
