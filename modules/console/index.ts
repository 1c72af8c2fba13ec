import { fileURLToPath } from 'node:url';
import { defineModule } from '../../src/index.ts';
import { consoleRoutes } from './routes.ts';

/** Where `npm run build:console` (run by `npm ci`) writes the app: dist/console at the project's root. */
export const CONSOLE_DIR = fileURLToPath(new URL('../../dist/console/', import.meta.url));

/**
 * The admin console at /admin: a Preact app (modules/console/app) built by Vite into
 * dist/console, talking to the gateway through the typed client like any other program.
 * It depends on the modules whose GraphQL fields its screens use.
 */
export default defineModule({
  name: 'console',
  dependsOn: [
    'roles',
    'users',
    'sessions',
    'api-keys',
    'invites',
    'device',
    'audit',
    'collections',
    'blobs',
    'leases',
    'store',
    'overview',
  ],
  setup: () => ({ routes: consoleRoutes(CONSOLE_DIR) }),
});
