import { filter, map, pipe, Repeater } from 'graphql-yoga';
import {
  type Builder,
  type Credential,
  credentialOf,
  fromGlobalId,
  MAX_PAGE_SIZE,
  PorticoError,
  paginate,
  type RequestContext,
  type Runtime,
  builder as schemaBuilder,
  toGlobalId,
  type Viewer,
} from '../../src/index.ts';
import users, { type UserRecord } from '../users/index.ts';
import { canSeeSession } from './access.ts';
import { REVOCATION_REASONS, type RevocationReason } from './entities.ts';
import * as flows from './flows.ts';
import type { Sessions } from './instance.ts';
import {
  effectiveExpiry,
  findSession,
  listActiveSessions,
  loadSessions,
  type SessionRecord,
  sessionRecord,
} from './service.ts';

const { UserRef } = users.api;

export const SessionRef = schemaBuilder.objectRef<SessionRecord>('Session');
/** Other modules add their fields to `Viewer` (e.g. the API keys module). */
export const ViewerRef = schemaBuilder.objectRef<Viewer>('Viewer');

/** The sessions module's schema: the Session and Viewer types, its queries, the account mutations and its subscriptions. */
export function registerSessions(builder: Builder, self: (context: RequestContext) => Sessions) {
  const SessionConnection = registerSessionTypes(builder, self);
  registerQueries(builder, self, SessionConnection);
  registerAccountMutations(builder, self);
  registerSubscriptions(builder);
}

/** Session (a Node), its connection, `User.sessions` and the Viewer's fields; returns the connection type. */
function registerSessionTypes(builder: Builder, self: (context: RequestContext) => Sessions) {
  builder.node(SessionRef, {
    id: { resolve: (session) => session.id },
    loadMany: async (ids, { db, viewer }) =>
      (await loadSessions(db.system, ids)).map((session) =>
        session && canSeeSession(viewer, session) ? session : null,
      ),
    authScopes: (session, { viewer }) => canSeeSession(viewer, session),
    fields: (t) => ({
      user: t.loadable({
        type: UserRef,
        load: async (ids: string[], { db }: RequestContext) =>
          (await users.api.loadUsers(db.system, ids)).map((user) => user ?? new Error('User not found')),
        resolve: (session) => session.userId,
      }),
      method: t.exposeString('method', {
        description:
          'The login method that started it: password, magic-link, invite, bootstrap, remote, device, ...',
      }),
      current: t.boolean({
        description: 'True for the session that authenticated this request.',
        resolve: (session, _args, { viewer }) => session.id === viewer.sessionId,
      }),
      createdAt: t.expose('createdAt', { type: 'DateTime' }),
      lastSeenAt: t.expose('lastSeenAt', { type: 'DateTime' }),
      expiresAt: t.field({
        type: 'DateTime',
        resolve: (session, _args, { runtime }) => effectiveExpiry(session, runtime.settings.session),
      }),
      revokedAt: t.field({
        type: 'DateTime',
        nullable: true,
        resolve: (session) => session.revokedAt ?? null,
      }),
      ip: t.string({ nullable: true, resolve: (session) => session.ip ?? null }),
      userAgent: t.string({ nullable: true, resolve: (session) => session.userAgent ?? null }),
    }),
  });
  const SessionConnection = builder.connectionObject(
    { type: SessionRef, name: 'SessionConnection' },
    { name: 'SessionEdge' },
  );

  const activeSessionsOf = (context: RequestContext, userId: string) =>
    listActiveSessions(context.db.system, context.runtime.settings.session, {
      now: context.runtime.clock.now(),
      userId,
      limit: MAX_PAGE_SIZE,
    });

  builder.objectField(UserRef, 'sessions', (t) =>
    t.field({
      type: [SessionRef],
      description: 'Visible to the user and to admins.',
      resolve: (user, _args, context) => activeSessionsOf(context, user.id),
    }),
  );

  ViewerRef.implement({
    fields: (t) => ({
      user: t.field({
        type: UserRef,
        nullable: true,
        description: 'Null for an anonymous request.',
        resolve: (viewer, _args, context) =>
          self(context).currentSnapshot(viewer)?.user ??
          (viewer.userId ? users.api.findUser(context.db.system, viewer.userId) : null),
      }),
      session: t.field({
        type: SessionRef,
        nullable: true,
        description: 'The session that authenticated this request; null for anonymous and API-key requests.',
        resolve: (viewer, _args, context) =>
          self(context).currentSnapshot(viewer)?.session ??
          (viewer.sessionId ? findSession(context.db.system, viewer.sessionId) : null),
      }),
      scopes: t.stringList({
        description:
          "Effective scopes: the union of the user's roles' scopes, narrowed to the API key's scopes when one is used.",
        resolve: (viewer) => [...viewer.scopes].sort(),
      }),
      sessions: t.field({
        type: [SessionRef],
        description: "The user's sessions that are still valid, newest first.",
        resolve: (viewer, _args, context) => (viewer.userId ? activeSessionsOf(context, viewer.userId) : []),
      }),
    }),
  });

  return SessionConnection;
}

function registerQueries(
  builder: Builder,
  self: (context: RequestContext) => Sessions,
  SessionConnection: ReturnType<typeof registerSessionTypes>,
) {
  const SignupModeEnum = builder.enumType('SignupMode', {
    values: {
      OPEN: { value: 'open', description: 'Anyone may sign up.' },
      INVITE: { value: 'invite', description: 'Sign-up needs an invite token.' },
      CLOSED: { value: 'closed', description: 'Nobody may sign up; admins invite.' },
    } as const,
  });

  const AuthInfoRef = builder.objectRef<Record<string, never>>('AuthInfo').implement({
    fields: (t) => ({
      signup: t.field({
        type: SignupModeEnum,
        resolve: (_info, _args, { runtime }) => runtime.settings.signup,
      }),
      methods: t.stringList({
        description: 'Ids of the login methods that are enabled, e.g. password, magic-link, remote, device.',
        resolve: (_info, _args, context) => self(context).signIn.enabled.map((method) => method.id),
      }),
      needsBootstrap: t.boolean({
        description: 'True until the first admin exists.',
        resolve: (_info, _args, context) => self(context).needsBootstrap(context.db.system),
      }),
    }),
  });

  builder.queryFields((t) => ({
    viewer: t.field({
      type: ViewerRef,
      authScopes: { public: true },
      resolve: (_root, _args, { viewer }) => viewer,
    }),
    auth: t.field({ type: AuthInfoRef, authScopes: { public: true }, resolve: () => ({}) }),
    sessions: t.field({
      type: SessionConnection,
      description: "Admin: all sessions, or one user's.",
      authScopes: { admin: true },
      args: { userId: t.arg.id(), first: t.arg.int(), after: t.arg.string() },
      resolve: (_root, args, { db, runtime }) => {
        const userId = args.userId ? fromGlobalId(String(args.userId), 'User') : undefined;
        return paginate(
          'session',
          args,
          (page) =>
            listActiveSessions(db.system, runtime.settings.session, {
              ...page,
              now: runtime.clock.now(),
              userId,
            }),
          (session) => session.id,
        );
      },
    }),
  }));
}

/** Sign-up, sign-in, sign-out, redeeming tokens and managing one's sessions. */
function registerAccountMutations(builder: Builder, self: (context: RequestContext) => Sessions) {
  const AuthPayloadRef = builder
    .objectRef<{ user: UserRecord; session: SessionRecord }>('AuthPayload')
    .implement({
      fields: (t) => ({
        user: t.field({ type: UserRef, resolve: (payload) => payload.user }),
        session: t.field({ type: SessionRef, resolve: (payload) => payload.session }),
      }),
    });

  const SignUpInput = builder.inputType('SignUpInput', {
    fields: (t) => ({
      email: t.string({ required: true }),
      password: t.string({ required: true }),
      name: t.string(),
      inviteToken: t.string({ description: 'Required when signup is INVITE.' }),
    }),
  });
  const ProfileInput = builder.inputType('ProfileInput', {
    fields: (t) => ({
      email: t.string(),
      name: t.string(),
      password: t.string(),
    }),
  });

  builder.mutationFields((t) => ({
    signUp: t.field({
      type: AuthPayloadRef,
      authScopes: { public: true },
      args: { input: t.arg({ type: SignUpInput, required: true }) },
      resolve: (_root, { input }, context) => flows.signUp(self(context), context, input),
    }),
    logIn: t.field({
      type: AuthPayloadRef,
      authScopes: { public: true },
      args: { email: t.arg.string({ required: true }), password: t.arg.string({ required: true }) },
      resolve: (_root, { email, password }, context) => flows.logIn(self(context), context, email, password),
    }),
    logInWith: t.field({
      type: AuthPayloadRef,
      description: 'Generic entry for pluggable login methods, e.g. method: "remote".',
      authScopes: { public: true },
      args: {
        method: t.arg.string({ required: true }),
        credentials: t.arg({ type: 'JSONObject', required: true }),
      },
      resolve: (_root, args, context) =>
        flows.logInWith(self(context), context, args.method, args.credentials),
    }),
    logOut: t.boolean({
      authScopes: { public: true },
      resolve: (_root, _args, context) => flows.logOut(self(context), context),
    }),
    redeemToken: t.field({
      type: AuthPayloadRef,
      description:
        'Redeems a single-use login, invite or bootstrap token. Invites and bootstrap take a profile.',
      authScopes: { public: true },
      args: { token: t.arg.string({ required: true }), profile: t.arg({ type: ProfileInput }) },
      resolve: (_root, { token, profile }, context) =>
        flows.redeemToken(self(context), context, token, profile),
    }),
    changePassword: t.boolean({
      description: 'Revokes every other session of the user. An API key needs scope admin.',
      authScopes: { manageCredentials: true },
      args: {
        currentPassword: t.arg.string({ required: true }),
        newPassword: t.arg.string({ required: true }),
      },
      resolve: (_root, args, context) =>
        flows.changePassword(self(context), context, args.currentPassword, args.newPassword),
    }),
    revokeSession: t.boolean({
      description: 'An API key needs scope admin.',
      authScopes: { manageCredentials: true },
      args: { id: t.arg.id({ required: true }) },
      resolve: (_root, { id }, context) =>
        flows.revokeSession(self(context), context, fromGlobalId(String(id), 'Session')),
    }),
    revokeOtherSessions: t.int({
      description: 'Returns how many sessions were revoked. An API key needs scope admin.',
      authScopes: { manageCredentials: true },
      resolve: (_root, _args, context) => flows.revokeOtherSessions(self(context), context),
    }),
    revokeUserSessions: t.int({
      description: 'Admin.',
      authScopes: { admin: true },
      args: { userId: t.arg.id({ required: true }) },
      resolve: (_root, args, context) =>
        flows.revokeUserSessions(self(context), context, fromGlobalId(String(args.userId), 'User')),
    }),
  }));
}

/** `sessionRevoked` for the subscriber's own credential, and the admins' `sessionEvents`. */
function registerSubscriptions(builder: Builder) {
  const RevocationReasonEnum = builder.enumType('RevocationReason', { values: REVOCATION_REASONS });
  const SessionRevocationRef = builder.objectRef<Revocation>('SessionRevocation').implement({
    fields: (t) => ({
      sessionId: t.id({
        description:
          "The revoked session's id: the same value as its Session.id (for a stream authenticated by an API key, the key's ApiKey.id).",
        resolve: ({ credential }) =>
          toGlobalId(credential.kind === 'session' ? 'Session' : 'ApiKey', credential.id),
      }),
      reason: t.field({ type: RevocationReasonEnum, resolve: (event) => event.reason }),
      at: t.field({ type: 'DateTime', resolve: (event) => event.at }),
    }),
  });

  const SessionEventKindEnum = builder.enumType('SessionEventKind', {
    values: ['CREATED', 'REVOKED'] as const,
  });
  const SessionEventRef = builder.objectRef<SessionEvent>('SessionEvent').implement({
    fields: (t) => ({
      kind: t.field({ type: SessionEventKindEnum, resolve: (event) => event.kind }),
      session: t.field({
        type: SessionRef,
        resolve: async (event, _args, { runtime }) => {
          const session = await sessionAsAnnounced(runtime, event);
          if (!session) throw new PorticoError('NOT_FOUND', 'The session is gone.');
          return session;
        },
      }),
      reason: t.field({ type: RevocationReasonEnum, nullable: true, resolve: (event) => event.reason }),
      at: t.field({ type: 'DateTime', resolve: (event) => event.at }),
    }),
  });

  builder.subscriptionFields((t) => ({
    sessionRevoked: t.field({
      type: SessionRevocationRef,
      description:
        "Emits once when the subscriber's own session (or API key) is revoked or expires, then completes.",
      authScopes: { authenticated: true },
      subscribe: (_root, _args, { viewer, runtime }) => {
        const credential = credentialOf(viewer);
        if (!credential) throw new PorticoError('UNAUTHENTICATED', 'Sign in first.');
        return pipe(
          runtime.live.ended(credential),
          map((end): Revocation => ({ credential, reason: asRevocationReason(end.reason), at: end.at })),
        );
      },
      resolve: (event) => event,
    }),
    sessionEvents: t.field({
      type: SessionEventRef,
      description: 'Admin: sessions created and revoked, for everyone or one user.',
      authScopes: { admin: true },
      args: { userId: t.arg.id() },
      subscribe: async (_root, args, { runtime }) => {
        const userId = args.userId ? fromGlobalId(String(args.userId), 'User') : null;
        const created = pipe(
          runtime.pubsub.subscribe('session.created'),
          map((event): SessionEvent => ({ kind: 'CREATED', announced: event, reason: null, at: event.at })),
        );
        const revoked = pipe(
          runtime.pubsub.subscribe('session.revoked'),
          map(
            (event): SessionEvent => ({
              kind: 'REVOKED',
              announced: event,
              reason: event.reason,
              at: event.at,
            }),
          ),
        );
        const events = pipe(
          Repeater.merge([created, revoked]),
          filter((event) => userId === null || event.announced.userId === userId),
        );
        await runtime.pubsub.ready();
        return events;
      },
      resolve: (event) => event,
    }),
  }));
}

interface Revocation {
  credential: Credential;
  reason: RevocationReason;
  at: string;
}

interface SessionEvent {
  kind: 'CREATED' | 'REVOKED';
  /** The pub/sub payload, shared by every subscriber of this instance. */
  announced: { sessionId: string; userId: string };
  reason: RevocationReason | null;
  at: string;
}

// API keys end for the same reasons as sessions; anything else reads as a plain revocation.
const asRevocationReason = (reason: string): RevocationReason =>
  (REVOCATION_REASONS as readonly string[]).includes(reason) ? (reason as RevocationReason) : 'REVOKED';

const announcedSessions = new WeakMap<object, Promise<SessionRecord | null>>();

/**
 * The session as it is when its event is delivered: read once per event and instance, however
 * many admins watch, from a fresh EntityManager (a subscription's own would serve stale rows).
 */
function sessionAsAnnounced(runtime: Runtime, event: SessionEvent): Promise<SessionRecord | null> {
  let loaded = announcedSessions.get(event.announced);
  if (!loaded) {
    loaded = findSession(runtime.db.system.em.fork(), event.announced.sessionId).then((session) =>
      session ? sessionRecord(session) : null,
    );
    announcedSessions.set(event.announced, loaded);
  }
  return loaded;
}
