import { defineEntity, p } from '@mikro-orm/core';

export const DEVICE_STATES = ['pending', 'approved', 'denied', 'used'] as const;
export type DeviceState = (typeof DEVICE_STATES)[number];

/** One RFC 8628 device authorization: the device code (hashed) and the user code a person types. */
const DeviceAuthorizationSchema = defineEntity({
  name: 'DeviceAuthorization',
  tableName: 'device_authorizations',
  properties: {
    id: p.string().primary(),
    deviceCodeHash: p.string().length(64).unique(),
    /** Normalised (8 letters, no dash); unique among codes not yet expired is enough in practice. */
    userCode: p.string().length(8).index(),
    clientId: p.string().length(200),
    /** Requested scopes, space-separated. */
    scope: p.string().length(2000),
    state: p.enum(DEVICE_STATES),
    userId: p.string().nullable(),
    sessionId: p.string().nullable(),
    createdAt: p.datetime(),
    expiresAt: p.datetime(),
    intervalSeconds: p.integer(),
    lastPolledAt: p.datetime().nullable(),
  },
});
export class DeviceAuthorization extends DeviceAuthorizationSchema.class {}
DeviceAuthorizationSchema.setClass(DeviceAuthorization);

export { DeviceAuthorizationSchema };
