import { PorticoError, type RequestContext } from '../../src/index.ts';
import roles from '../roles/index.ts';
import { userLifecycle } from './extensions.ts';
import { countActiveAdmins, findUser, setRoles } from './service.ts';

async function targetUser(context: RequestContext, userId: string) {
  const user = await findUser(context.db.system, userId);
  if (!user) throw new PorticoError('NOT_FOUND', 'No such user.');
  return user;
}

const hooks = (context: RequestContext) => context.runtime.instances.contributions(userLifecycle);

/** Admin. The other modules hear of the change (sessions end: ROLES_CHANGED); the last admin keeps "admin". */
export async function setUserRoles(context: RequestContext, userId: string, names: readonly string[]) {
  const { db, runtime } = context;
  const unknown = roles.api.unknownRoles(runtime.settings, names);
  if (unknown.length > 0) {
    throw new PorticoError('BAD_USER_INPUT', `Unknown roles: ${unknown.join(', ')}.`, { field: 'roles' });
  }
  const user = await targetUser(context, userId);
  const before = [...user.roles].sort().join(',');
  const losesAdmin = user.roles.includes(roles.api.ADMIN) && !names.includes(roles.api.ADMIN);
  if (losesAdmin && !user.disabled && (await countActiveAdmins(db.system)) <= 1) {
    throw new PorticoError('CONFLICT', 'This is the last admin; make another admin first.');
  }
  setRoles(user, names);
  if (user.roles.join(',') === before) return user;
  await db.system.flush();
  runtime.pubsub.publish('user.changed', { userId: user.id });
  const change = { userId: user.id, from: before ? before.split(',') : [], to: [...user.roles] };
  for (const hook of hooks(context)) await hook.rolesChanged?.(context, change);
  return user;
}

/** Admin. The other modules hear of it (sessions and API keys end); nobody disables themself. */
export async function setUserDisabled(context: RequestContext, userId: string, disabled: boolean) {
  const { db, runtime, viewer } = context;
  if (disabled && userId === viewer.userId) {
    throw new PorticoError('BAD_USER_INPUT', 'You cannot disable your own account.', { field: 'userId' });
  }
  const user = await targetUser(context, userId);
  if (user.disabled === disabled) return user;
  user.disabled = disabled;
  await db.system.flush();
  runtime.pubsub.publish('user.changed', { userId: user.id });
  for (const hook of hooks(context)) {
    await (disabled ? hook.disabled?.(context, user.id) : hook.enabled?.(context, user.id));
  }
  return user;
}
