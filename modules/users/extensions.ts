import { ExtensionPoint, type RequestContext } from '../../src/index.ts';

declare module '../../src/pubsub.ts' {
  interface Topics {
    /** A user's record changed: cached copies must be dropped. */
    'user.changed': { userId: string };
  }
}

/**
 * What other modules do when an admin changes a user, inside the admin's request and before it
 * answers (the user's sessions and API keys end, the audit log records it). Each runs in module order.
 */
export interface UserLifecycle {
  rolesChanged?(
    context: RequestContext,
    change: { userId: string; from: string[]; to: string[] },
  ): Promise<void>;
  disabled?(context: RequestContext, userId: string): Promise<void>;
  enabled?(context: RequestContext, userId: string): Promise<void>;
}

export const userLifecycle = new ExtensionPoint<UserLifecycle>('users: lifecycle hooks');
