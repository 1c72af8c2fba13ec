import type { Builder, RequestContext } from '../../src/index.ts';
import { type LoginLinks, requestLoginLink } from './flows.ts';

export function registerLoginLinks(builder: Builder, self: (context: RequestContext) => LoginLinks) {
  builder.mutationField('requestLoginLink', (t) =>
    t.boolean({
      description: 'Always true, whether or not the address has an account.',
      authScopes: { public: true },
      args: { email: t.arg.string({ required: true }) },
      resolve: (_root, { email }, context) => requestLoginLink(self(context), context, email),
    }),
  );
}
