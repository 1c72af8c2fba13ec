import { defineModule } from '../../src/index.ts';
import { registerOverview } from './graphql.ts';
import { Overview } from './instance.ts';

/**
 * The gateway's health for admins: `gatewayOverview` and `gatewayOverviewSampled` serve the
 * samples a sampler takes every second of the gateway's own counters (`runtime.metrics`, whether
 * or not GET /metrics shows them), with whether the system database and the store answer. The
 * console's Overview draws them. Each instance reports its own counters.
 */
export default defineModule({
  name: 'overview',
  dependsOn: ['roles'],
  setup: (runtime) => new Overview(runtime),
  graphql: registerOverview,
});
