import type { CodegenConfig } from '@graphql-codegen/cli';

/**
 * The typed client: `npm run codegen` turns client/operations/*.graphql into
 * TypedDocumentNodes in client/generated/ (committed), checked against the
 * committed schema. `npm run codegen -- --check` fails when they are stale.
 */
const config: CodegenConfig = {
  schema: 'schema/schema.graphql',
  documents: ['client/operations/**/*.graphql'],
  ignoreNoDocuments: false,
  generates: {
    'client/generated/': {
      preset: 'client',
      presetConfig: { fragmentMasking: false },
      config: {
        // The project's TypeScript settings: `import type`, no enums, `.ts` in relative imports.
        useTypeImports: true,
        enumType: 'string-literal',
        importExtension: '.ts',
        strictScalars: true,
        scalars: {
          DateTime: 'string',
          JSON: 'unknown',
          JSONObject: 'Record<string, unknown>',
          SafeInt: 'number',
          File: { input: 'File', output: 'never' },
        },
      },
    },
  },
};

export default config;
