import { serverAudits } from 'graphql-http';
import { it } from 'vitest';
import { startGateway } from './harness.ts';
it('audit', async () => {
  const portico = await startGateway();
  try {
    for (const audit of serverAudits({ url: `${portico.url}/graphql` })) {
      const r = await audit.fn();
      if (r.status !== 'ok') console.log(r.id, r.status, r.name, '::', r.reason, r.response.status, await r.response.clone().text().catch(()=>''));
      else console.log(r.id, 'ok', r.name);
    }
  } finally { await portico.close(); }
});
