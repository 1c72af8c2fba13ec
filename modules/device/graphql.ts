import type { Builder } from '../../src/index.ts';
import { answer } from './flows.ts';

export function registerDevice(builder: Builder) {
  builder.mutationFields((t) => ({
    approveDevice: t.boolean({
      description: 'Approves a pending device authorization (RFC 8628) for the viewer.',
      authScopes: { manageCredentials: true },
      args: { userCode: t.arg.string({ required: true }) },
      resolve: (_root, { userCode }, context) => answer(context, userCode, true),
    }),
    denyDevice: t.boolean({
      authScopes: { manageCredentials: true },
      args: { userCode: t.arg.string({ required: true }) },
      resolve: (_root, { userCode }, context) => answer(context, userCode, false),
    }),
  }));
}
