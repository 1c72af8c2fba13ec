import { fileURLToPath } from 'node:url';
import preact from '@preact/preset-vite';
import { defineConfig } from 'vite';

/**
 * Builds the admin console (modules/console/app) into dist/console, which the console module
 * serves under /admin. `npm ci` runs it (the root `prepare` script); `npm run build:console` too.
 */
export default defineConfig({
  root: fileURLToPath(new URL('./app/', import.meta.url)),
  base: '/admin/',
  plugins: [preact()],
  logLevel: 'warn',
  build: {
    outDir: fileURLToPath(new URL('../../dist/console/', import.meta.url)),
    emptyOutDir: true,
    // The CSP allows no inline code and no data: URLs: every asset stays a file of its own.
    assetsInlineLimit: 0,
    modulePreload: { polyfill: false },
    target: 'es2022',
  },
});
