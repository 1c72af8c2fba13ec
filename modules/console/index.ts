import { fileURLToPath } from 'node:url';
import { defineModule } from '../../src/index.ts';
import sessions from '../sessions/index.ts';
import { docsRoutes } from './docs.ts';
import { landingRoutes } from './landing.ts';
import { consoleRoutes } from './routes.ts';

/** Where `npm run build:console` (run by `npm ci`) writes the app: dist/console at the project's root. */
const CONSOLE_DIR = fileURLToPath(new URL('../../dist/console/', import.meta.url));
/** The product's manual, served at /docs: docs/ at the project's root. */
const DOCS_DIR = fileURLToPath(new URL('../../docs/', import.meta.url));

/**
 * The admin console at /admin: a Preact app (modules/console/app) built by Vite into
 * dist/console, talking to the gateway through the typed client like any other program.
 * It depends on the modules whose GraphQL fields its screens use. Beside it, the start page
 * at / and the manual at /docs.
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
  setup: (_runtime, use) => ({
    routes: [...consoleRoutes(CONSOLE_DIR), ...landingRoutes(use(sessions)), ...docsRoutes(DOCS_DIR)],
  }),
});
