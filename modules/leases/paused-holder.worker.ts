// A lease holder for paused-holder.test.ts, run as its own process so the test can SIGSTOP it.
// It takes the lease once, then loops: read the counter, "work" a little, write counter + 1
// fenced by its token. It prints `read`, `ack <value>` and, when its write is refused, `fenced`.
const { PORTICO_URL: url, PORTICO_KEY: key, LEASE: lease, FENCED } = process.env;

interface Reply {
  data?: { acquireLease?: { token: number }; document?: { data: { value?: number } } | null };
  errors?: { extensions?: { code?: string } }[];
}

async function gql(query: string, variables: Record<string, unknown>) {
  const response = await fetch(`${url}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` },
    body: JSON.stringify({ query, variables }),
  });
  return (await response.json()) as Reply;
}

const granted = await gql(
  'mutation ($lease: String!) { acquireLease(key: $lease, ttlSeconds: 1, waitSeconds: 5) { token } }',
  { lease },
);
const token = granted.data?.acquireLease?.token;
if (!token) throw new Error('no lease');
console.log(`token ${token}`);
for (;;) {
  const read = await gql('query { document(collection: "counters", id: "c") { data } }', {});
  const value = read.data?.document?.data.value ?? 0;
  console.log('read');
  await new Promise((resolve) => setTimeout(resolve, 50));
  const written = await gql(
    'mutation ($data: JSONObject!, $fence: FenceInput) { putDocument(collection: "counters", id: "c", data: $data, fence: $fence) { version } }',
    { data: { value: value + 1 }, fence: FENCED === '1' ? { lease, token } : null },
  );
  const code = written.errors?.[0]?.extensions?.code;
  if (code === 'FENCE_REJECTED') {
    console.log('fenced');
    process.exit(0);
  }
  if (code) throw new Error(`unexpected ${code}`);
  console.log(`ack ${value + 1}`);
}
